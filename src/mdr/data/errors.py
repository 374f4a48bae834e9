"""The data layer's error: a file exists but does not have its documented layout."""

from mdr.runtime.errors import InputError


class DataFormatError(InputError):
    """A data file exists but does not have the documented layout; the message names the file, the line and
    the layout expected."""
