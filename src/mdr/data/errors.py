"""The data layer's error: a file exists but does not have its documented layout."""


class DataFormatError(ValueError):
    """A data file exists but does not have the documented layout; the message names the file, the line and
    the layout expected."""
