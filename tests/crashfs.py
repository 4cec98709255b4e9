"""``CrashFS``: a power-loss simulator in the spirit of SQLite's ``test6.c`` (reliability.md 7.4).

It is the engine's I/O seam doing real I/O on a real directory, while it keeps a model of what
a power cut would leave behind:

* per file (an *inode*, numbered by us): the bytes made durable by ``fsync(fd)``, and the ordered
  list of data operations (writes at an offset, truncates) since then;
* per directory: the entries ``name -> inode | directory`` made durable by ``fsync_dir``, and the
  ordered list of entry operations since then (create, rename, link, unlink, mkdir).

:meth:`CrashFS.crash_state` picks one state that a weak file system (ALICE's model) could
produce, and :func:`materialise` writes it into a fresh directory:

* a file holds its durable bytes plus a random *prefix* of its unsynced data operations; when the
  last one kept is a write, it is kept whole, cut short, or its bytes replaced by garbage or NULs
  (file size persisted before the content, no SAFE_APPEND);
* a directory holds its durable entries, then each unsynced entry operation is applied or dropped
  *independently* (in order): weaker than a prefix, as on file systems that reorder directory
  updates (ext2, btrfs). A rename is atomic: applied whole or not at all;
* a file or directory is present only if an entry naming it survives, and a directory only if its
  own entry in its parent does.

Directories created behind the seam's back (``Path.mkdir``) are modelled as unsynced mkdirs at
the moment the seam first meets them; files and directories that exist when the simulator starts
are durable. The ``fsync`` methods do not call the real ones: only the model matters here.
"""

from __future__ import annotations

import os
import random
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path

from coaia_store.storage.fileio import FileIO

Entry = tuple[str, object]  # ("f", inode number) or ("d", relative directory path)
DirOp = tuple[str, str, str, Entry]  # (kind "set" | "del" | "mv", name, new name, entry)


@dataclass
class FileModel:
    durable: bytes = b""
    current: bytearray = field(default_factory=bytearray)
    pending: list[tuple[str, int, bytes]] = field(default_factory=list)  # ("w", offset, data) | ("t", length, b"")


@dataclass
class DirModel:
    durable: dict[str, Entry] = field(default_factory=dict)
    current: dict[str, Entry] = field(default_factory=dict)
    pending: list[DirOp] = field(default_factory=list)


@dataclass(frozen=True)
class CrashState:
    """Directory entries and file contents after one simulated power cut."""

    dirs: dict[Path, dict[str, Entry]]
    files: dict[int, bytes]


class CrashFS(FileIO):
    """The seam with a durability model; ``on_call(n)`` runs after the n-th primitive call."""

    def __init__(self, root: Path, on_call: Callable[[int], None] | None = None) -> None:
        self.root = root
        self.on_call = on_call
        self.calls = 0
        self.changing_calls: set[int] = set()  # calls that changed the model: the crash points worth taking
        self.external_dirs: list[Path] = []  # directories made behind the seam (unsynced mkdirs)
        self._files: dict[int, FileModel] = {}
        self._dirs: dict[Path, DirModel] = {}
        self._fds: dict[int, int] = {}  # descriptor -> inode
        self._adopt_dir(Path("."))

    # ------------------------------------------------------------------ model bookkeeping

    def _rel(self, path: str | Path) -> Path:
        return Path(os.path.relpath(os.path.abspath(path), self.root))

    def _adopt_dir(self, rel: Path) -> None:
        """A directory present at the start: durable, with durable contents."""
        model = self._dirs[rel] = DirModel()
        for name in sorted(os.listdir(self.root / rel)):
            child = rel / name
            if (self.root / child).is_dir():
                self._adopt_dir(child)
                entry: Entry = ("d", child)
            else:
                entry = ("f", self._new_file((self.root / child).read_bytes()))
            model.durable[name] = model.current[name] = entry

    def _new_file(self, content: bytes = b"") -> int:
        ino = len(self._files) + 1
        self._files[ino] = FileModel(durable=content, current=bytearray(content))
        return ino

    def _dir(self, rel: Path) -> DirModel:
        if rel not in self._dirs:  # made behind the seam: an unsynced mkdir in its parent
            parent = self._dir(rel.parent)
            self._dirs[rel] = DirModel()
            self.external_dirs.append(rel)
            self._dir_op(parent, ("set", rel.name, "", ("d", rel)))
        return self._dirs[rel]

    def _dir_op(self, model: DirModel, op: DirOp) -> None:
        self.changing_calls.add(self.calls + 1)
        _apply_dir_op(model.current, op)
        model.pending.append(op)

    def _lookup(self, rel: Path) -> int:
        model = self._dir(rel.parent)
        entry = model.current.get(rel.name)
        if entry is None:  # a file made behind the seam: treat it as durable
            entry = ("f", self._new_file((self.root / rel).read_bytes()))
            model.durable[rel.name] = model.current[rel.name] = entry
        assert entry[0] == "f", rel
        return int(entry[1])  # type: ignore[call-overload]

    def _file_op(self, ino: int, op: tuple[str, int, bytes]) -> None:
        self.changing_calls.add(self.calls + 1)
        model = self._files[ino]
        _apply_file_op(model.current, op)
        model.pending.append(op)

    def _tick(self) -> None:
        self.calls += 1
        if self.on_call is not None:
            self.on_call(self.calls)

    # ------------------------------------------------------------------ the seam

    def open(self, path: str | Path, flags: int, mode: int = 0o644) -> int:
        rel = self._rel(path)
        existed = os.path.exists(path)
        fd = super().open(path, flags, mode)
        if existed:
            ino = self._lookup(rel)
            if flags & os.O_TRUNC and flags & (os.O_WRONLY | os.O_RDWR):
                self._file_op(ino, ("t", 0, b""))
        else:
            ino = self._new_file()
            self._dir_op(self._dir(rel.parent), ("set", rel.name, "", ("f", ino)))
        self._fds[fd] = ino
        self._tick()
        return fd

    def close(self, fd: int) -> None:
        self._fds.pop(fd, None)
        super().close(fd)
        self._tick()

    def write(self, fd: int, data: bytes | memoryview) -> int:
        written = super().write(fd, data)
        end = os.lseek(fd, 0, os.SEEK_CUR)
        self._file_op(self._fds[fd], ("w", end - written, bytes(data[:written])))
        self._tick()
        return written

    def truncate(self, fd: int, length: int) -> None:
        super().truncate(fd, length)
        self._file_op(self._fds[fd], ("t", length, b""))
        self._tick()

    def fsync(self, fd: int) -> None:
        model = self._files[self._fds[fd]]
        model.durable, model.pending = bytes(model.current), []
        self.changing_calls.add(self.calls + 1)
        self._tick()

    def fsync_dir(self, path: str | Path) -> None:
        model = self._dir(self._rel(path))
        model.durable, model.pending = dict(model.current), []
        self.changing_calls.add(self.calls + 1)
        self._tick()

    def replace(self, src: str | Path, dst: str | Path) -> None:
        super().replace(src, dst)
        self._move(self._rel(src), self._rel(dst))
        self._tick()

    def _move(self, src: Path, dst: Path) -> None:
        entry = ("f", self._lookup(src))
        if src.parent == dst.parent:
            self._dir_op(self._dir(src.parent), ("mv", src.name, dst.name, entry))
        else:  # two directories: two independent entry updates
            self._dir_op(self._dir(src.parent), ("del", src.name, "", entry))
            self._dir_op(self._dir(dst.parent), ("set", dst.name, "", entry))

    def link(self, src: str | Path, dst: str | Path) -> None:
        super().link(src, dst)
        rel = self._rel(dst)
        self._dir_op(self._dir(rel.parent), ("set", rel.name, "", ("f", self._lookup(self._rel(src)))))
        self._tick()

    def unlink(self, path: str | Path) -> None:
        super().unlink(path)
        rel = self._rel(path)
        self._dir_op(self._dir(rel.parent), ("del", rel.name, "", ("d", rel)))
        self._tick()

    def mkdir(self, path: str | Path) -> None:
        super().mkdir(path)
        rel = self._rel(path)
        parent = self._dir(rel.parent)
        self._dirs[rel] = DirModel()
        self._dir_op(parent, ("set", rel.name, "", ("d", rel)))
        self._tick()

    def pread(self, fd: int, size: int, offset: int) -> bytes:
        data = super().pread(fd, size, offset)
        self._tick()
        return data

    def fstat(self, fd: int) -> os.stat_result:
        result = super().fstat(fd)
        self._tick()
        return result

    def stat(self, path: str | Path) -> os.stat_result:
        result = super().stat(path)
        self._tick()
        return result

    def lstat(self, path: str | Path) -> os.stat_result:
        result = super().lstat(path)
        self._tick()
        return result

    def listdir(self, path: str | Path) -> list[str]:
        result = super().listdir(path)
        self._tick()
        return result

    # ------------------------------------------------------------------ power cut

    def crash_state(self, rng: random.Random) -> CrashState:
        dirs = {rel: _crash_entries(model, rng) for rel, model in self._dirs.items()}
        files = {ino: _crash_content(model, rng) for ino, model in self._files.items()}
        return CrashState(dirs, files)


def _apply_dir_op(entries: dict[str, Entry], op: DirOp) -> None:
    kind, name, new_name, entry = op
    if kind == "set":
        entries[name] = entry
    elif kind == "del":
        entries.pop(name, None)
    else:  # "mv": atomic, carries its inode even if the source entry never reached the disk
        entries.pop(name, None)
        entries[new_name] = entry


def _apply_file_op(content: bytearray, op: tuple[str, int, bytes]) -> None:
    kind, offset, data = op
    if kind == "t":
        del content[offset:]
        return
    if len(content) < offset:
        content.extend(bytes(offset - len(content)))
    content[offset : offset + len(data)] = data


def _crash_entries(model: DirModel, rng: random.Random) -> dict[str, Entry]:
    entries = dict(model.durable)
    for op in model.pending:
        if rng.random() < 0.5:
            _apply_dir_op(entries, op)
    return entries


def _crash_content(model: FileModel, rng: random.Random) -> bytes:
    content = bytearray(model.durable)
    kept = model.pending[: rng.randint(0, len(model.pending))]
    for op in kept:
        _apply_file_op(content, op)
    if kept and kept[-1][0] == "w" and kept[-1][2]:
        _, offset, data = kept[-1]
        _damage_last_write(content, offset, len(data), rng)
    return bytes(content)


def _damage_last_write(content: bytearray, offset: int, length: int, rng: random.Random) -> None:
    """The last write persisted whole, cut short, or with its bytes garbage or NULs."""
    fate = rng.choice(("whole", "whole", "short", "garbage", "nul"))
    if fate == "short":
        cut = offset + rng.randrange(length)
        if cut < len(content) and offset + length >= len(content):  # an append: the file ends early
            del content[cut:]
    elif fate == "garbage":
        content[offset : offset + length] = rng.randbytes(length)
    elif fate == "nul":
        content[offset : offset + length] = bytes(length)


def materialise(state: CrashState, target: Path) -> None:
    """Write ``state`` as a real tree at ``target`` (which must not exist)."""
    _materialise_dir(state, Path("."), target)


def _materialise_dir(state: CrashState, rel: Path, target: Path) -> None:
    target.mkdir()
    for name, (kind, what) in state.dirs.get(rel, {}).items():
        if kind == "d":
            assert isinstance(what, Path)
            if what in state.dirs:
                _materialise_dir(state, what, target / name)
        else:
            (target / name).write_bytes(state.files[int(what)])  # type: ignore[call-overload]


def durable_paths(state: CrashState) -> Iterable[Path]:
    """Every file path present in ``state`` (for failure messages)."""
    stack = [Path(".")]
    while stack:
        rel = stack.pop()
        for name, (kind, what) in state.dirs.get(rel, {}).items():
            if kind == "d":
                stack.append(what)  # type: ignore[arg-type]
            else:
                yield rel / name
