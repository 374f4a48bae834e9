"""Layer 5, reporting: read a sweep's run folders (``collect``), statistics, tables and plots. Reads files
only; imports no training or modeling code."""
