"""Safety layer: backups, history and undo, integrity checks and repair, import and export.

May import ``graph`` and ``storage``, never the ``Store`` facade or anything above it.
"""
