"""Storage layer: files, checksummed lines, the journal (writer and reader), locks, the recovery log, caches.

Knows records, not entities. Imports nothing of coaia_store but ``errors``.
"""
