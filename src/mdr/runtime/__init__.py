"""Layer 0, below everything: what any layer may need from the machine (precision) and the file system
(atomic writes). Imports nothing else of mdr."""
