"""Public import path of the history reader (kept from 0.2); the code lives in ``safety/history.py``."""

from .safety.history import History, PastGraph, parse_as_of

__all__ = ["History", "PastGraph", "parse_as_of"]
