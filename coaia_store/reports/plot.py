"""The advancement report as a PNG: bars of action steps completed per week, one colour per context.

matplotlib is an optional extra (``pip install 'coaia-store[plot]'``), imported only when a plot is drawn,
with the non-interactive Agg backend (no display needed).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from ..errors import CoaiaError
from .advancement import AdvancementReport

INSTALL_HINT = "pip install 'coaia-store[plot]'"


def _pyplot() -> Any:
    try:
        import matplotlib
    except ImportError:
        raise CoaiaError(f"drawing the report needs matplotlib, which is not installed: {INSTALL_HINT}") from None
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def plot_report(report: AdvancementReport, path: str | Path) -> Path:
    """Write ``report``'s steps completed per week per context as grouped bars to the PNG ``path``."""
    plt = _pyplot()
    target = Path(path)
    weeks = [w.weekStart for w in report.totals.stepsCompletedPerWeek]
    rows = report.contexts or []
    width = 0.8 / max(len(rows), 1)
    figure, axes = plt.subplots(figsize=(max(6.0, 0.6 * len(weeks) + 3), 4), dpi=100)
    try:
        for i, row in enumerate(rows):
            positions = [x - 0.4 + width * (i + 0.5) for x in range(len(weeks))]
            axes.bar(positions, [w.count for w in row.stepsCompletedPerWeek], width, label=row.context)
        axes.set_xticks(range(len(weeks)), weeks, rotation=45, ha="right")
        axes.set_xlabel("week starting (Monday, UTC)")
        axes.set_ylabel("action steps completed")
        axes.yaxis.get_major_locator().set_params(integer=True)
        axes.set_title(
            f"Action steps completed per week, last {report.windowDays} days\n"
            f"{report.totals.stepsCompleted} steps, {report.totals.chartsCompleted} charts completed",
            fontsize=10,
        )
        if rows:
            axes.legend(title="context")
        figure.tight_layout()
        target.parent.mkdir(parents=True, exist_ok=True)
        figure.savefig(target, format="png")
    except OSError as exc:
        raise CoaiaError(f"cannot write the plot to {target}: {exc.strerror or exc}") from None
    finally:
        plt.close(figure)
    return target
