"""A damaged or hostile ``.backup/MANIFEST.json`` (issue 9 item 7): reported with its fix, rebuilt by
``doctor --fix`` from the backup files that verify, never a reason to orphan a backup, and never a way
to make the store open a file outside ``.backup/``."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import pytest
from faults import SCALE, FaultyIO, entity

from coaia_store import Store
from coaia_store.store import validate_integrity

MANIFEST = Path(".backup") / "MANIFEST.json"


@pytest.fixture
def backed_up(store_dir: Path) -> list[str]:
    """A store with two manual backups of ``default`` and one of ``work`` (and the day's automatic ones)."""
    with Store(store_dir) as store:
        store.create_entities([entity("a")])
        store.create_entities([entity("w")], context="work")
        store.backups.backup_all()
        store.create_entities([entity("b")])
        store.backups.backup_context()
        return sorted(b.id for b in store.backups.list_backups())


def damage_manifest(store_dir: Path) -> None:
    path = store_dir / MANIFEST
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])


def cli(store_dir: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "coaia_store", *args, "--dir", str(store_dir)],
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, "COLUMNS": "200"},
    )


def test_status_reports_a_damaged_manifest_as_a_problem_naming_the_fix(store_dir: Path, backed_up: list[str]) -> None:
    damage_manifest(store_dir)

    status = Store(store_dir).status()

    assert status.degraded
    assert [p for p in status.problems if "MANIFEST.json is unreadable" in p and "coaia-store doctor --fix" in p]


def test_a_damaged_manifest_still_lists_every_backup_file_that_verifies(store_dir: Path, backed_up: list[str]) -> None:
    damage_manifest(store_dir)
    store = Store(store_dir)

    listed, problem = store.backups.listing()

    assert sorted(b.id for b in listed) == backed_up and problem is not None
    assert all(result.ok for result in store.backups.verify())


def test_the_backups_command_lists_them_and_names_the_problem(store_dir: Path, backed_up: list[str]) -> None:
    damage_manifest(store_dir)

    done = cli(store_dir, "backups", "--json")

    assert done.returncode == 3 and "doctor --fix" in done.stderr
    assert sorted(b["id"] for b in json.loads(done.stdout)) == backed_up


def test_doctor_fix_rebuilds_the_manifest_from_the_backup_files(store_dir: Path, backed_up: list[str]) -> None:
    damage_manifest(store_dir)

    fixed = cli(store_dir, "doctor", "--fix")
    store = Store(store_dir)

    assert fixed.returncode == 0, fixed.stdout + fixed.stderr
    assert f"rebuilt .backup/MANIFEST.json from {len(backed_up)} backup file(s)" in fixed.stdout
    assert store.backups.manifest_problem() is None and not store.status().degraded
    assert sorted(b.id for b in store.backups.list_backups()) == backed_up
    assert list((store_dir / ".backup").glob("MANIFEST.json.unreadable-*"))  # the damaged one is kept


def test_a_restore_works_from_a_rebuilt_manifest(store_dir: Path, backed_up: list[str]) -> None:
    damage_manifest(store_dir)
    store = Store(store_dir)
    validate_integrity(store, repair=True)
    [first] = [b for b in store.backups.list_backups("default") if b.kind == "manual"][:1]

    store.backups.restore_backup(first.id)

    assert [e.name for e in store.read_graph(context="default").entities] == ["a"]


def test_the_next_backup_after_a_damaged_manifest_orphans_no_earlier_backup(
    store_dir: Path, backed_up: list[str]
) -> None:
    damage_manifest(store_dir)
    store = Store(store_dir)

    taken = store.backups.backup_context()

    assert taken is not None
    assert sorted(b.id for b in Store(store_dir).backups.list_backups()) == sorted([*backed_up, taken.id])
    assert Store(store_dir).backups.manifest_problem() is None


# ---------------------------------------------------------------- entries pointing outside .backup/


def point_first_entry_at(store_dir: Path, file: str) -> str:
    manifest = json.loads((store_dir / MANIFEST).read_text())
    manifest["backups"][0]["file"] = file
    (store_dir / MANIFEST).write_text(json.dumps(manifest))
    return str(manifest["backups"][0]["id"])


@pytest.mark.parametrize("where", ["absolute", "dot-dot"])
def test_a_manifest_entry_pointing_outside_the_backup_folder_is_refused_and_never_opened(
    store_dir: Path, backed_up: list[str], where: str
) -> None:
    outside = store_dir.parent / "outside-secret.jsonl.gz"
    outside.write_bytes(b"not yours")
    point_first_entry_at(store_dir, str(outside) if where == "absolute" else "../outside-secret.jsonl.gz")
    io = FaultyIO()
    store = Store(store_dir, io=io)

    problem = store.backups.manifest_problem()
    store.status()
    store.backups.verify()
    validate_integrity(store)

    assert problem is not None and "points outside .backup/" in problem
    assert not [call for call in io.trace if call[1] == outside.name]


def test_a_backup_file_that_is_a_symbolic_link_is_refused_and_not_followed(
    store_dir: Path, backed_up: list[str]
) -> None:
    store = Store(store_dir)
    info = store.backups.list_backups()[0]
    outside = store_dir.parent / "outside-secret.jsonl.gz"
    (store_dir / info.file).rename(outside)
    (store_dir / info.file).symlink_to(outside)

    [result] = store.backups.verify(info.id)

    assert not result.ok and "symbolic link: refused" in result.problems[0]


def test_a_backup_folder_that_is_a_symbolic_link_is_refused(store_dir: Path, backed_up: list[str]) -> None:
    store = Store(store_dir)
    info = [b for b in store.backups.list_backups() if b.kind == "manual"][0]
    folder = (store_dir / info.file).parent
    folder.rename(store_dir.parent / "elsewhere")
    folder.symlink_to(store_dir.parent / "elsewhere")

    [result] = store.backups.verify(info.id)

    assert not result.ok and "symbolic link: refused" in result.problems[0]


def test_a_backup_that_is_a_fifo_is_refused_without_blocking(store_dir: Path, backed_up: list[str]) -> None:
    store = Store(store_dir)
    info = store.backups.list_backups()[0]
    (store_dir / info.file).unlink()
    os.mkfifo(store_dir / info.file)

    [result] = store.backups.verify(info.id)

    assert not result.ok and "not a regular file" in result.problems[0]


def test_a_deleted_manifest_with_backup_files_left_is_a_problem_that_doctor_fix_rebuilds(
    store_dir: Path, backed_up: list[str]
) -> None:
    (store_dir / MANIFEST).unlink()
    store = Store(store_dir)

    problem = store.backups.manifest_problem()
    validate_integrity(store, repair=True)

    assert problem is not None and "is missing, but backup files are in .backup/" in problem
    assert sorted(b.id for b in Store(store_dir).backups.list_backups()) == backed_up


def test_the_first_backup_of_a_store_is_recorded_without_a_rebuild(store_dir: Path) -> None:
    with Store(store_dir) as store:
        store.create_entities([entity("a")])  # the day's daily and weekly are the first backups

        assert store.backups.manifest_problem() is None
        assert not [e for e in store.recovery.entries() if "rebuilt" in str(e.get("action"))]


@pytest.mark.parametrize("odd", ["symlink", "directory", "fifo"])
def test_a_manifest_that_is_not_a_regular_file_is_reported_and_rebuilt_without_being_followed(
    store_dir: Path, backed_up: list[str], odd: str
) -> None:
    manifest = store_dir / MANIFEST
    outside = store_dir.parent / "outside-manifest.json"
    manifest.rename(outside)
    {"symlink": lambda: manifest.symlink_to(outside), "directory": manifest.mkdir, "fifo": lambda: os.mkfifo(manifest)}[
        odd
    ]()
    store = Store(store_dir)

    problem = store.backups.manifest_problem()
    validate_integrity(store, repair=True)

    assert problem is not None and "refused" in problem
    assert manifest.is_file() and not manifest.is_symlink() and outside.stat().st_nlink == 1
    assert sorted(b.id for b in Store(store_dir).backups.list_backups()) == backed_up


# ---------------------------------------------------------------- kill -9 of a backup over a damaged manifest


@pytest.mark.slow
def test_a_backup_killed_at_any_point_over_a_damaged_manifest_orphans_no_backup(
    store_dir: Path, backed_up: list[str], tmp_path: Path
) -> None:
    damage_manifest(store_dir)
    runner = [sys.executable, str(Path(__file__).with_name("proc_repair.py"))]
    reference = tmp_path / "reference"
    shutil.copytree(store_dir.parent, reference)
    done = subprocess.run(
        [*runner, str(reference / ".coaia"), "backup", "0"], capture_output=True, text=True, timeout=60
    )
    calls = int(done.stdout.strip().splitlines()[-1].split()[1])
    kills, orphaned = 0, []
    for n in range(1, calls + 1, max(1, 3 // SCALE)):
        trial = tmp_path / f"kill-{n}"
        shutil.copytree(store_dir.parent, trial)
        killed = subprocess.run(
            [*runner, str(trial / ".coaia"), "backup", str(n)], capture_output=True, text=True, timeout=60
        )
        assert killed.returncode == -signal.SIGKILL, killed.stderr[-300:]
        kills += 1
        with Store(trial / ".coaia") as store:
            validate_integrity(store, repair=True)
            listed = {b.file for b in store.backups.list_backups()}
            ids = {b.id for b in store.backups.list_backups()}
            on_disk = {str(p.relative_to(store.path)) for p in (store.path / ".backup").glob("*/*.jsonl.gz")}
        orphaned += [
            f"kill before call {n}: {sorted(on_disk - listed)} unlisted, {sorted(set(backed_up) - ids)} lost"
            for _ in [0]
            if on_disk - listed or set(backed_up) - ids
        ]
        shutil.rmtree(trial)
    print(
        f"\nFIGURE backup kill -9 over a damaged manifest: {kills} kills of {calls} changing calls; "
        f"{len(orphaned)} left a backup unlisted or lost an earlier one"
    )
    assert not orphaned, "\n".join(orphaned[:10])
