"""Public import path of the session brief (kept from 0.2); the code lives in ``reports/brief.py``."""

from .reports.brief import BRIEF_BYTES, build_brief

__all__ = ["BRIEF_BYTES", "build_brief"]
