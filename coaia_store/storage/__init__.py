"""Storage layer: files, checksummed lines, the journal (reader, writer, compaction, housekeeping), locks, the recovery log, caches.

Knows records, not entities. Imports nothing of coaia_store but ``errors``.
"""
