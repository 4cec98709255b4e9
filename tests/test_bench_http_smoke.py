"""bench/bench_http.py keeps working: a tiny run as a real subprocess; it must count nothing lost or misattributed.

Nothing here looks at how fast anything is (performance figures live in bench/README.md).
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

BENCH = Path(__file__).resolve().parents[1] / "bench" / "bench_http.py"


def test_bench_http_runs_and_reports_no_loss() -> None:
    done = subprocess.run(
        [sys.executable, str(BENCH), "--clients", "2", "--calls", "6"],
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    figures = json.loads(done.stdout)

    assert figures["calls"] == 12 and (figures["errors"], figures["lost"], figures["misattributed"]) == (0, 0, 0)
    assert figures["stored"] == figures["acknowledged"] == 6
