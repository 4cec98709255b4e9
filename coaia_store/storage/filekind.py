"""What a data file's name points at, what a person should do when it is not a plain file, and opening it safely.

A context file is read and written only as a regular file opened without following links
(``O_NOFOLLOW``) and without blocking (``O_NONBLOCK``): a symbolic link could alias another
context under a different write lock, or lead outside ``.coaia/``; a named pipe would block
every reader; a directory cannot be read. Such a file makes its context *unreadable*: it is
reported with what to do, skipped by every scan, and every other context keeps working.
"""

from __future__ import annotations

import errno
import os
import stat
from pathlib import Path

from ..errors import UnreadableFileError
from .fileio import FileIO

# Open flags for a data file: never follow a link, never block on a pipe or device.
_SAFE_OPEN = getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_NONBLOCK", 0)

_KINDS = {
    stat.S_IFDIR: ("a directory", "move it out of .coaia/ (nothing in it is read)"),
    stat.S_IFIFO: ("a named pipe (FIFO)", "remove it (rm {path})"),
    stat.S_IFSOCK: ("a socket", "remove it (rm {path})"),
    stat.S_IFCHR: ("a character device", "remove it (rm {path})"),
    stat.S_IFBLK: ("a block device", "remove it (rm {path})"),
}


def kind_problem(path: Path, st: os.stat_result) -> str | None:
    """``None`` if ``st`` (from ``lstat`` or ``fstat`` of ``path``) is a regular file, else why ``path`` is
    unreadable and what to do."""
    if stat.S_ISREG(st.st_mode):
        return None
    if stat.S_ISLNK(st.st_mode):
        return _link_problem(path)
    what, fix = _KINDS.get(stat.S_IFMT(st.st_mode), ("not a regular file", "remove it (rm {path})"))
    return f"{path.name} is {what}, not a file of records; coaia-store skips it. What to do: {fix.format(path=path)}"


def open_regular(io: FileIO, path: Path, flags: int) -> int:
    """Open ``path`` without following a link or blocking, and only if it is a regular file."""
    try:
        fd = io.open(path, flags | _SAFE_OPEN)
    except OSError as exc:
        if exc.errno == errno.ELOOP:  # O_NOFOLLOW met a link made since it was checked
            raise UnreadableFileError(kind_problem(path, os.lstat(path)) or str(exc)) from exc
        raise
    problem = kind_problem(path, io.fstat(fd))
    if problem is not None:
        io.close(fd)
        raise UnreadableFileError(problem)
    return fd


def regular_file_exists(io: FileIO, path: Path) -> bool:
    """Whether ``path`` is there as a regular file (anything else is never opened)."""
    try:
        st = io.lstat(path)
    except FileNotFoundError:
        return False
    return kind_problem(path, st) is None


def _link_problem(path: Path) -> str:
    try:
        target = os.readlink(path)
    except OSError:
        target = "?"
    resolved = path.parent / target
    if not resolved.exists():
        where, fix = f"{target}, which does not exist", f"remove the link (rm {path})"
    else:
        inside = resolved.resolve().parent == path.parent.resolve()
        where = f"{target}{'' if inside else ', outside .coaia/'}"
        fix = (
            f"to keep that data in this context, replace the link with a copy of the file "
            f'(cp --remove-destination "$(readlink -f {path})" {path}); otherwise remove the link (rm {path})'
        )
    return (
        f"{path.name} is a symbolic link (to {where}); coaia-store opens only regular files, so that one write "
        f"lock guards one file, and skips it. What to do: {fix}"
    )
