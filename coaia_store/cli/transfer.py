"""Moving data in and out from the command line: ``export`` (jsonl, json, markdown), ``import`` and
``migrate`` (an import of an old memory.jsonl, with the client configuration to switch to)."""

from __future__ import annotations

import contextlib
import json
import os
import sys
from collections.abc import Iterable, Iterator
from contextlib import nullcontext
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.markup import escape

from ..errors import NotFoundError, os_errors_reported
from ..graph.contexts import context_file, validate_context_name
from ..safety import transfer
from ..store import Store
from .charts import all_summaries
from .options import DirOption, JsonFlag, one_of, open_store
from .output import EXIT_ERROR, emit_json, err, out, progress


def export_(
    context: Annotated[
        str | None,
        typer.Option("--context", "-c", help="The context to export (default: default).", show_default=False),
    ] = None,
    all_contexts: Annotated[bool, typer.Option("--all", help="Every context.")] = False,
    fmt: Annotated[str, typer.Option("--format", "-f", help="jsonl, json or markdown.")] = "jsonl",
    output: Annotated[
        str | None,
        typer.Option(
            "--output",
            "-o",
            help="A file (jsonl, json) or a directory (markdown, and jsonl with --all); default: stdout.",
            show_default=False,
        ),
    ] = None,
    as_json: JsonFlag = False,
    directory: DirOption = None,
) -> None:
    """Export contexts: jsonl is a clean snapshot the official memory server reads (no checksums, no
    history); json is {"entities", "relations"} per context; markdown is one file per chart (or one report).
    With --output, --json prints a summary of what was written.

    Example: coaia-store export --context work --format jsonl --output work-memory.jsonl
    """
    one_of(context, all_contexts)
    if fmt not in ("jsonl", "json", "markdown"):
        raise typer.BadParameter(f"{fmt!r}: choose jsonl, json or markdown", param_hint="--format")
    store = open_store(directory)
    names = store.contexts() if all_contexts else [_existing_context(store, context or "default")]
    with os_errors_reported(f"cannot export to {output}", "no file was left half-written"):
        written = _EXPORTERS[fmt](store, names, Path(output) if output else None, all_contexts)
    if output is None:
        return
    if as_json:
        emit_json({"format": fmt, "contexts": names, "files": [str(f) for f in written]})
    else:
        err.print(
            f"wrote {len(written)} file(s) for {len(names)} context(s): {', '.join(map(str, written[:5]))}"
            + (" ..." if len(written) > 5 else ""),
            highlight=False,
        )


def import_(
    file: Annotated[
        str,
        typer.Argument(
            help="A JSONL file: official memory server, coaia-memory, coaia-spiral, "
            "coaia-narrative, AIM or coaia-store."
        ),
    ],
    context: Annotated[str, typer.Option("--context", "-c", help="The context to import into.")] = "default",
    dry_run: Annotated[bool, typer.Option("--dry-run", help="Show what would change; write nothing.")] = False,
    on_conflict: Annotated[
        str,
        typer.Option(
            "--on-conflict",
            help="For names that exist: skip (leave them), merge "
            "(add what they lack), replace (the imported record wins).",
        ),
    ] = "skip",
    as_json: JsonFlag = False,
    directory: DirOption = None,
) -> None:
    """Import a knowledge-graph file into a context, in batches; relations whose ends are missing are reported
    and skipped. Merge rules: docs/cli.md#import.

    Example: coaia-store import ~/memory.jsonl --context work --on-conflict merge --dry-run
    """
    if on_conflict not in transfer.ON_CONFLICT:
        raise typer.BadParameter(f"{on_conflict!r}: choose skip, merge or replace", param_hint="--on-conflict")
    report = _run_import(open_store(directory), file, context, on_conflict, dry_run)
    if as_json:
        emit_json(report)
    else:
        _print_import(report)
    if report.failed:
        raise typer.Exit(EXIT_ERROR)


def migrate(
    memory_path: Annotated[
        str,
        typer.Option(
            "--memory-path", envvar="MEMORY_FILE_PATH", help="The old memory.jsonl (default: MEMORY_FILE_PATH)."
        ),
    ],
    context: Annotated[str, typer.Option("--context", "-c", help="The context to move it into.")] = "default",
    as_json: JsonFlag = False,
    directory: DirOption = None,
) -> None:
    """Move an old setup (the memory.jsonl of the official memory server or a coaia tool) into this .coaia/
    in one step: an import with --on-conflict merge. The old file is left untouched.

    Example: coaia-store --dir ~/project/.coaia migrate --memory-path ~/memory.jsonl --context work
    """
    store = open_store(directory)
    report = _run_import(store, memory_path, context, "merge", False)
    client = migrated_client_config(store.path)
    where = context_file(store.path, report.context)
    if as_json:
        emit_json(
            {
                "import": report.model_dump(mode="json"),
                "directory": str(store.path),
                "file": str(where),
                "clientConfig": client,
            }
        )
    else:
        _print_import(report)
        out.print(
            f"\nyour data now lives in {where} (context {report.context!r}); {memory_path} is unchanged.",
            highlight=False,
        )
        out.print(
            "in your MCP client's configuration (e.g. claude_desktop_config.json or .mcp.json), replace the "
            "memory server's entry with:",
            highlight=False,
        )
        out.print(json.dumps(client, indent=2), highlight=False, markup=False)
        out.print(
            "the server keeps its name and tools, so prompts and permissions that name them still work; "
            "drop --tools memory for the chart tools too (docs/clients.md)",
            highlight=False,
        )
    if report.failed:
        raise typer.Exit(EXIT_ERROR)


def migrated_client_config(directory: Path) -> dict[str, Any]:
    """The switching advice of docs/clients.md: the official server's name and its nine tools, on this directory."""
    return {
        "mcpServers": {
            "memory": {"command": "coaia-store", "args": ["serve", "--tools", "memory", "--dir", str(directory)]}
        }
    }


def _existing_context(store: Store, name: str) -> str:
    validate_context_name(name)
    if name not in store.contexts():
        raise NotFoundError(f"no context {name!r} in {store.path}; `coaia-store contexts` lists them")
    return name


def _run_import(store: Store, file: str, context: str, on_conflict: str, dry_run: bool) -> transfer.ImportReport:
    bar = progress("importing")
    with bar or nullcontext():
        task = bar.add_task("import", total=None) if bar is not None else None
        tick = None if bar is None else lambda done, total: bar.update(task, advance=done, total=total)
        return transfer.import_file(
            store,
            file,
            context=context,
            on_conflict=on_conflict,  # type: ignore[arg-type]
            dry_run=dry_run,
            progress=tick,
        )


_SHOWN = 8


def _print_import(report: transfer.ImportReport) -> None:
    verb = "would import" if report.dryRun else "imported"
    out.print(
        f"{verb} {report.file} into context {report.context!r} (on conflict: {report.onConflict})", highlight=False
    )
    for label, names in (
        ("entities added", report.added),
        ("merged", report.merged),
        ("replaced", report.replaced),
        ("skipped (exist)", report.skipped),
        ("unchanged", report.unchanged),
        ("relations added", report.relationsAdded),
        ("relations merged", report.relationsMerged),
        ("relations replaced", report.relationsReplaced),
        ("relations skipped (exist)", report.relationsSkipped),
        ("relations unchanged", report.relationsUnchanged),
    ):
        if names:
            shown = ", ".join(names[:_SHOWN]) + (f", ... ({len(names) - _SHOWN} more)" if len(names) > _SHOWN else "")
            out.print(f"  {len(names):>5} {label}: {shown}", highlight=False, markup=False, soft_wrap=True)
    for relation in report.dangling:
        out.print(f"[yellow]! relation not imported, an end is missing: {escape(relation)}[/yellow]", highlight=False)
    for line in report.invalidLines:
        where = f"line {line.line}" if line.line is not None else "record"
        out.print(f"[yellow]! {where} skipped: {escape(line.problem)}[/yellow]", highlight=False)
    for failure in report.failed:
        err.print(f"[red]error:[/red] not imported: {escape(failure)}", highlight=False)
    if report.dryRun:
        out.print("dry run: nothing was written (--json lists every name)")


def _write_bytes(path: Path, chunks: Iterable[bytes]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    try:
        with tmp.open("wb") as handle:
            for chunk in chunks:
                handle.write(chunk)
        os.replace(tmp, path)
    except OSError:
        with contextlib.suppress(OSError):
            tmp.unlink()  # an output that is a directory: leave nothing half-made beside it
        raise
    return path


def _export_jsonl(store: Store, names: list[str], output: Path | None, all_contexts: bool) -> list[Path]:
    if output is None and all_contexts:
        raise typer.BadParameter(
            "jsonl of every context needs --output DIR (one file per context)", param_hint="--output"
        )
    written = []
    bar = progress("exporting") if output is not None else None
    with bar or nullcontext():
        for name in names:
            entities, relations = transfer.export_records(store, name)
            lines = transfer.jsonl_lines(entities, relations)
            if output is None:
                sys.stdout.buffer.writelines(lines)
                sys.stdout.flush()
                continue
            target = context_file(output, name) if all_contexts else output
            if bar is not None:
                task = bar.add_task(name, total=len(entities) + len(relations))
                lines = _counted(lines, lambda: bar.advance(task))
            written.append(_write_bytes(target, lines))
    return written


def _counted(lines: Iterable[bytes], tick: Any) -> Iterator[bytes]:
    for line in lines:
        tick()
        yield line


def _export_json(store: Store, names: list[str], output: Path | None, all_contexts: bool) -> list[Path]:
    documents = [transfer.json_document(n, *transfer.export_records(store, n)) for n in names]
    data = documents if all_contexts else documents[0]
    text = json.dumps(data, indent=2, ensure_ascii=False) + "\n"
    if output is None:
        sys.stdout.write(text)
        return []
    return [_write_bytes(output, [text.encode()])]


def _export_markdown(store: Store, names: list[str], output: Path | None, all_contexts: bool) -> list[Path]:
    from ..charts import Charts
    from ..charts.markdown import chart_markdown

    api = Charts(store)
    tops = [s for n in names for s in all_summaries(api, context=n, status="all") if not s.parentChart]
    written: list[Path] = []
    bar = progress("exporting") if output is not None else None
    with bar or nullcontext():
        task = bar.add_task("charts", total=len(tops)) if bar is not None else None
        for summary in tops:
            text = chart_markdown(api.get_chart(chartId=summary.chartId, context=summary.context))
            if output is None:
                sys.stdout.write(text + "\n")
            else:
                folder = output / summary.context if all_contexts else output  # one chart id may be in two contexts
                written.append(_write_bytes(folder / f"{summary.chartId}.md", [text.encode()]))
            if bar is not None and task is not None:
                bar.advance(task)
    return written


_EXPORTERS = {"jsonl": _export_jsonl, "json": _export_json, "markdown": _export_markdown}
