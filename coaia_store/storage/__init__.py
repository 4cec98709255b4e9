"""The storage engine: files, locks, the line format, recovery. Knows records, not entities."""
