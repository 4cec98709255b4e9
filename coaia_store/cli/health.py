"""How the store is, and keeping it in shape: ``status``, ``contexts``, ``validate``, ``doctor``, ``compact``."""

from __future__ import annotations

from typing import Annotated, Any

import typer
from rich import box
from rich.markup import escape
from rich.table import Table

from ..models import StoreStatus
from .options import DirOption, JsonFlag, open_store
from .output import EXIT_DEGRADED, EXIT_ERROR, busy, cli_names, emit_json, err, out, size


def status(as_json: JsonFlag = False, directory: DirOption = None) -> None:
    """Which .coaia directory is used and why, each context's counts and health.

    Example: coaia-store status --json
    """
    report = open_store(directory).status()
    if as_json:
        emit_json(report)
    else:
        out.print(f"[bold]{report.directory}[/bold]  ({report.reason})")
        out.print(_contexts_table(report.contexts))
        for problem in report.problems:
            out.print(f"[yellow]! {escape(cli_names(problem))}[/yellow]")
        if report.capacity is not None:
            _print_capacity(report.capacity)
        for note in _git_notes(report):
            out.print(f"note: {note}", highlight=False, markup=False)
        if report.git is not None:
            out.print(
                f"in the git work tree {report.git.repository}; automatic compaction {report.git.autoCompaction}",
                highlight=False,
                markup=False,
            )
        out.print("[red]degraded[/red]" if report.degraded else "[green]healthy[/green]")
    if report.degraded:
        raise typer.Exit(EXIT_DEGRADED)


def _print_capacity(found: Any) -> None:
    if found.daysLeft is None:
        left = "not growing"
    elif found.daysLeft > 36500:
        left = "more than 100 years left at that rate"
    else:
        left = f"about {found.daysLeft:.0f} days left at that rate"
    out.print(
        f"disk: {size(found.diskFreeBytes)} free of {size(found.diskTotalBytes)}; growing "
        f"{size(int(found.bytesPerDay))}/day; {left}",
        highlight=False,
    )
    for warning in found.warnings:
        out.print(f"[yellow]! {escape(warning)}[/yellow]", highlight=False)


def contexts(as_json: JsonFlag = False, directory: DirOption = None) -> None:
    """List the contexts (one JSONL file each) with counts, sizes and last change.

    Example: coaia-store contexts
    """
    infos = open_store(directory).list_contexts()
    if as_json:
        emit_json([i.model_dump(mode="json", by_alias=True) for i in infos])
    else:
        out.print(_contexts_table(infos))


def _contexts_table(infos: list[Any]) -> Table:
    table = Table(box=box.SIMPLE_HEAD, pad_edge=False, collapse_padding=True)
    for column in ("context", "file", "entities", "relations", "size", "changed (UTC)", "health"):
        table.add_column(
            column, no_wrap=True, justify="right" if column in ("entities", "relations", "size") else "left"
        )
    for info in infos:
        health = "[red]degraded[/red]" if info.degraded else ("ok" if info.checksummed else "ok (legacy)")
        changed = info.lastModified[:16].replace("T", " ") if info.lastModified else "-"
        table.add_row(info.name, info.file, str(info.entities), str(info.relations), size(info.bytes), changed, health)
    return table


def validate(
    context: Annotated[str | None, typer.Option("--context", "-c", help="Check only this context.")] = None,
    fix: Annotated[
        bool,
        typer.Option(
            "--fix",
            help="Apply the safe repairs (damaged lines, with lost records restored from "
            "backup or history; torn tail; dangling relations).",
        ),
    ] = False,
    as_json: JsonFlag = False,
    directory: DirOption = None,
) -> None:
    """Check every context: damaged lines, torn tail, dangling relations, orphan sub-charts, timeline, backups.

    Exits 3 when a problem remains. Example: coaia-store validate --fix
    """
    from ..store import validate_integrity

    with busy("repairing…" if fix else "checking…"):
        report = validate_integrity(open_store(directory), context=context, repair=fix)
    if as_json:
        emit_json(report)
    else:
        for ctx in report.contexts:
            out.print(
                f"[bold]{ctx.context}[/bold] ({ctx.file}): {ctx.linesRead} lines, "
                f"{ctx.recordsApplied} records " + ("[green]ok[/green]" if ctx.ok else "[red]problems[/red]")
            )
            for line in _integrity_lines(ctx):
                out.print(f"  {line}", highlight=False, markup=False)
        for line in report.problems + [f"repaired: {r}" for r in report.repairs]:
            out.print(line, highlight=False, markup=False)
    if not report.ok:
        raise typer.Exit(EXIT_DEGRADED)


def doctor(
    fix: Annotated[
        bool, typer.Option("--fix", help="Back up, then apply every safe repair (as validate --fix).")
    ] = False,
    as_json: JsonFlag = False,
    directory: DirOption = None,
) -> None:
    """One check of everything: where the data lives and why, every context's integrity and backups, and what to do.

    Check first, fix second: run it without --fix to see, then with --fix to repair. Exits 3 while a
    problem remains. Example: coaia-store doctor --fix
    """
    from ..store import validate_integrity

    store = open_store(directory)
    with busy("repairing…" if fix else "checking…"):
        report = validate_integrity(store, repair=fix)
        status = store.status()
    if as_json:
        emit_json(
            {"status": status.model_dump(mode="json", by_alias=True), "integrity": report.model_dump(mode="json")}
        )
    else:
        out.print(f"[bold]{status.directory}[/bold]  ({status.reason})")
        for ctx in report.contexts:
            mark = "[green]ok[/green]" if ctx.ok else "[red]problems[/red]"
            out.print(f"{ctx.context} ({ctx.file}): {ctx.linesRead} lines, {ctx.recordsApplied} records {mark}")
            for line in _integrity_lines(ctx):
                out.print(f"  {line}", highlight=False, markup=False)
        for line in [f"repaired: {r}" for r in report.repairs] + [
            f"! {cli_names(problem)}" for problem in status.problems
        ]:
            out.print(line, highlight=False, markup=False)
        for note in _git_notes(status):
            out.print(f"note: {note}", highlight=False, markup=False)
        healthy = report.ok and not status.degraded
        advice = (
            "nothing to do"
            if healthy
            else ("some problems need a look (above)" if fix else "run: coaia-store doctor --fix")
        )
        out.print(("[green]healthy[/green]: " if healthy else "[red]not healthy[/red]: ") + advice)
    if not report.ok or status.degraded:
        raise typer.Exit(EXIT_DEGRADED)


def _git_notes(status: StoreStatus) -> list[str]:
    notes = list(status.git.advice) if status.git else []
    notes += [
        f"conflict in {c.context}: {c.target} {c.field}: {' / '.join(repr(v.value) for v in c.values)} "
        f"(showing {c.chosen!r}; write the value you want to settle it)"
        for c in status.conflicts
    ]
    if status.conflictCount > len(status.conflicts):
        notes.append(f"{status.conflictCount - len(status.conflicts)} more conflicts: coaia-store status --json")
    return notes


def _integrity_lines(ctx: Any) -> list[str]:
    found = [f"line {d.line}: {d.problem}" for d in ctx.damagedLines]
    if ctx.tornTail:
        found.append(f"torn tail of {ctx.tornTail.length} bytes (the next write, or --fix, cuts it)")
    found += [f"dangling relation {r}" for r in ctx.danglingRelations]
    found += [
        f"relation {r} waits for an end lost with a damaged line (kept; create that entity again, "
        "or delete the relation)"
        for r in ctx.waitingRelations
    ]
    found += [f"orphan sub-chart {c}" for c in ctx.orphanSubCharts]
    found += [
        f"entity {n!r} is written more than once (the last is used; the next write migrates the file)"
        for n in ctx.duplicateNames
    ]
    found += [problem for problem in (ctx.readOnly, ctx.lostSinceBackup) if problem]
    return (
        found
        + ctx.timelineViolations
        + ctx.openUnderCompleted
        + ctx.backupProblems
        + [f"repaired: {r}" for r in ctx.repairs]
    )


def compact(
    context: Annotated[str, typer.Option("--context", "-c", help="The context to compact.")] = "default",
    force: Annotated[
        bool,
        typer.Option(
            "--force",
            help="In a store shared through git (init --git): compact anyway "
            "(only when every clone has pulled; see the git guide).",
        ),
    ] = False,
    as_json: JsonFlag = False,
    directory: DirOption = None,
) -> None:
    """Rewrite a context's file to its current state; the old file is kept in .coaia/history/.

    Example: coaia-store compact --context work
    """
    with busy(f"compacting {context}…"):
        done = open_store(directory).compact(context, force=force)
    if as_json:
        emit_json({"context": context, "compacted": done})
    elif done:
        out.print(f"compacted context {context!r}")
    else:
        err.print(
            f"context {context!r} was not compacted: it has no file yet, or damaged lines that need a repair first"
        )
        raise typer.Exit(EXIT_ERROR)
