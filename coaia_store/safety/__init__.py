"""Safety layer: backups, history and undo, integrity checks and repair, import and export.

May import ``graph``, ``storage``, ``models`` and ``errors``; never ``charts``, the ``Store`` facade or anything
above (the integrity check is handed the chart checks by its caller).
"""
