"""kill -9 during a repair (issue 9 item 3): rerunning it reaches the records an uninterrupted repair reaches.

The store: 24 entities and 3 relations, a manual backup, then more writes; three lines are damaged
(two batches of four entities the backup holds, and the entity ``late`` the backup does not hold,
which the relation ``late -> e00`` needs). An uninterrupted repair restores the eight entities and
the relation ``e05 -> e13`` from the backup and keeps ``late -> e00`` waiting for its end.

For each interface (``validate --fix``, ``doctor --fix``, ``validate_integrity(repair=True)``, the MCP
tool) a real process (tests/proc_repair.py) SIGKILLs itself just before its Nth changing I/O call;
then the same repair runs again to the end, and the store must hold exactly what the uninterrupted
repair left (records compared without their ``_op``/``_ts``), and report itself ok. By default every
``STRIDE``-th call is tried; ``COAIA_TORTURE_SCALE`` >= STRIDE tries every one.
"""

from __future__ import annotations

import shutil
import signal
import subprocess
import sys
from pathlib import Path

import pytest
from faults import SCALE, Snapshot, damage_line, entity, load_state, relation

from coaia_store import Store
from coaia_store.store import validate_integrity

pytestmark = pytest.mark.slow

RUNNER = Path(__file__).with_name("proc_repair.py")
STRIDES = {"validate": 5, "doctor": 5, "library": 5, "mcp": 15}
DAMAGED_LINES = (2, 4, 8)  # the batches e04-e07 and e12-e15, and the entity "late"


def build(store_dir: Path) -> None:
    with Store(store_dir) as store:
        for i in range(0, 24, 4):
            store.create_entities([entity(f"e{j:02d}", f"observation {j}") for j in range(i, i + 4)])
        store.create_relations([relation("e01", "e05"), relation("e05", "e13"), relation("e02", "e20")])
        store.backups.backup_context(None, "manual")
        store.create_entities([entity("late")])
        store.create_relations([relation("late", "e00")])
        store.add_observations([{"entityName": "e00", "contents": ["after the backup"]}])
    for index in DAMAGED_LINES:
        damage_line(store_dir, index)


def run(store_dir: Path, command: str, kill_at: int) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, str(RUNNER), str(store_dir), command, str(kill_at)],
        capture_output=True,
        text=True,
        timeout=120,
    )


def records(state: Snapshot) -> int:
    return len(state[0]) + len(state[1])


@pytest.fixture(scope="module")
def template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    store_dir = tmp_path_factory.mktemp("template") / ".coaia"
    build(store_dir)
    return store_dir


def copy(template: Path, where: Path) -> Path:
    shutil.copytree(template.parent, where)
    return where / template.name


@pytest.mark.parametrize("command", STRIDES)
def test_a_repair_killed_at_any_point_then_rerun_reaches_the_uninterrupted_result(
    command: str, template: Path, tmp_path: Path
) -> None:
    damaged = load_state(template, envelope=False)
    reference = copy(template, tmp_path / "reference")
    done = run(reference, command, 0)
    assert done.returncode in (0, 3), done.stderr
    calls = int(done.stdout.strip().splitlines()[-1].split()[1])
    expected = load_state(reference, envelope=False)
    assert "e13" in expected[0] and ("late", "relates_to", "e00") in expected[1], "precondition: restored and kept"
    stride = max(1, STRIDES[command] // SCALE)
    kills, differ = 0, []
    for n in range(1, calls + 1, stride):
        store_dir = copy(template, tmp_path / f"kill-{n}")
        killed = run(store_dir, command, n)
        assert killed.returncode == -signal.SIGKILL, (
            f"kill at call {n} of {calls}: {killed.returncode} {killed.stderr[-500:]}"
        )
        kills += 1
        rerun = run(store_dir, command, 0)
        assert rerun.returncode in (0, 3), rerun.stderr
        state = load_state(store_dir, envelope=False)
        with Store(store_dir) as store:
            ok = validate_integrity(store).ok
        if state != expected or not ok:
            differ.append(f"kill before call {n}: {records(state)} records (expected {records(expected)}), ok={ok}")
        shutil.rmtree(store_dir.parent)
    print(
        f"\nFIGURE repair kill -9 ({command}): {kills} kills of {calls} changing calls; uninterrupted repair "
        f"recovered {records(expected) - records(damaged)} records; reruns reaching a different result: {len(differ)}"
    )
    assert not differ, "\n".join(differ[:10])
