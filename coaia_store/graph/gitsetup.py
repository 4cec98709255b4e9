"""Sharing a ``.coaia/`` directory through git: the work tree around it, the files ``init --git``
writes, and where the machine-local files of a shared store live.

A store is *shared* once its ``.gitattributes`` carries :data:`MARKER` (written by
``coaia-store init --git``). Its backups and quarantined bytes then live outside the work tree,
under the user's data directory, because ``git clean -fdX`` deletes ignored files and
``git clean -fdx`` untracked ones: inside the work tree, neither ignored nor untracked copies
are safe, and committing them would make every clone's backups collide in merges.
"""

from __future__ import annotations

import hashlib
import os
import re
import shutil
from collections.abc import Mapping
from fnmatch import fnmatch
from pathlib import Path

MARKER = "# coaia-store: shared through git"
GITATTRIBUTES = f"""{MARKER} (written by coaia-store init --git).
# Each clone only appends lines to these files; a union merge keeps the lines of both sides, and
# coaia-store replays them to the same state in any order. Keep this line:
*.jsonl merge=union
"""
MACHINE_LOCAL = (".locks/", ".cache/", "*.tmp")
GITIGNORE = """# coaia-store: chart files (*.jsonl), config.json, .gitattributes and history/ are versioned.
# Machine-local (each clone makes its own):
.locks/
.cache/
*.tmp
"""
LOCAL_DIRS = (".backup", ".recovery")
_SAMPLE = "charts.jsonl"


def work_tree(store_dir: Path) -> Path | None:
    """The git work tree holding ``store_dir`` (a ``.git`` directory or file above it), if any."""
    for folder in (store_dir, *store_dir.parents):
        if (folder / ".git").exists():
            return folder
    return None


def is_shared(store_dir: Path) -> bool:
    try:
        return MARKER in (store_dir / ".gitattributes").read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError):
        return False


def local_dir(store_dir: Path, env: Mapping[str, str] | None = None, home: Path | None = None) -> Path:
    """Where backups and quarantine go: ``store_dir`` itself, or, for a shared store, a folder of
    the user's data directory named after it (``$XDG_DATA_HOME/coaia-store/stores/<name>-<hash>``)."""
    if not is_shared(store_dir):
        return store_dir
    env = os.environ if env is None else env
    xdg = Path(env.get("XDG_DATA_HOME") or ".")
    base = xdg if xdg.is_absolute() else (home or Path.home()) / ".local" / "share"  # the XDG rule: relative is unset
    real = store_dir.resolve()
    slug = re.sub(r"[^A-Za-z0-9_.-]", "_", real.parent.name) or "store"
    return base / "coaia-store" / "stores" / f"{slug}-{hashlib.sha256(str(real).encode()).hexdigest()[:12]}"


def union_merge(store_dir: Path) -> bool:
    """Whether git merges the chart files with ``merge=union`` (by a ``.gitattributes`` of the work tree)."""
    tree = work_tree(store_dir)
    folders = [store_dir, *store_dir.parents]
    folders = folders[: folders.index(tree) + 1] if tree in folders else folders[:1]
    for folder in folders:
        try:
            text = (folder / ".gitattributes").read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError):
            continue
        for line in text.splitlines():
            words = [] if line.lstrip().startswith("#") else line.split()
            if len(words) > 1 and "merge=union" in words[1:] and fnmatch(_SAMPLE, words[0].rsplit("/", 1)[-1]):
                return True
    return False


def set_up(store_dir: Path, env: Mapping[str, str] | None = None, home: Path | None = None) -> list[str]:
    """Write ``.gitattributes`` and ``.gitignore`` (adding to existing ones, never removing a line) and
    move existing backups and quarantine out of the work tree. Returns what was done."""
    done = [_add_lines(store_dir / ".gitattributes", GITATTRIBUTES, [MARKER, "*.jsonl merge=union"])]
    done.append(_add_lines(store_dir / ".gitignore", GITIGNORE, list(MACHINE_LOCAL)))
    target = local_dir(store_dir, env, home)
    for name in LOCAL_DIRS:
        source = store_dir / name
        if source.is_dir() and not source.is_symlink():
            shutil.copytree(source, target / name, dirs_exist_ok=True)  # copied whole before the original goes
            shutil.rmtree(source)
            done.append(f"moved {source} to {target / name} (outside the work tree: git clean cannot delete it)")
    return [d for d in done if d]


def _add_lines(file: Path, text: str, needed: list[str]) -> str:
    try:
        present = file.read_text(encoding="utf-8")
    except FileNotFoundError:
        file.write_text(text, encoding="utf-8")
        return f"created {file}"
    lines = {line.strip() for line in present.splitlines()}
    missing = [line for line in text.splitlines() if line.strip() not in lines]
    if all(any(line.startswith(n) for line in lines) for n in needed) or not missing:
        return ""
    with file.open("a", encoding="utf-8") as handle:
        handle.write(("" if present.endswith("\n") or not present else "\n") + "\n".join(missing) + "\n")
    return f"added to {file}: {', '.join(m for m in missing if not m.startswith('#'))}"
