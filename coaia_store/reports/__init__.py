"""Search and reports layer: the advancement report (and its plot) and the session brief.

May import ``store`` and the layers below it.
"""
