"""Benchmark of the coaia-store engine through its public ``Store`` API.

    python bench/bench_engine.py [--sizes 1000,10000,100000] [--ops 500] [--json FILE]

For each size, a fresh ``.coaia`` directory is filled with that many entities (and about
one relation each) by a *builder* subprocess, then measured by two kinds of subprocess so
that no size and no phase pollutes another's memory figures:

* *cold* (``--cold-runs`` times): a fresh interpreter times ``Store(dir)`` plus its first
  ``open_entities`` call, and reports its peak RSS; once starting from the state cache that
  the build's compaction saved (the normal case), once with the cache deleted and off
  (a full replay of the file);
* *writer* (once): a fresh interpreter opens the store with the default config
  (``fsync="always"``), times single-item calls, and reports its peak RSS.

The parent only orchestrates and prints; it never imports the engine. See bench/README.md.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import random
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any

CONTEXT = "default"
CONTEXT_FILE = "charts.jsonl"
BUILD_BATCH = 500
WARMUP_OPS = 5
BENCH_RELATION = "bench_link"
TARGET_SIZE = 100_000

# ---------------------------------------------------------------- figures and targets


@dataclass(frozen=True)
class Figure:
    key: str
    label: str
    fmt: str


FIGURES: tuple[Figure, ...] = (
    Figure("create_median_ms", "create_entities 1/call median ms", "{:.3f}"),
    Figure("create_p99_ms", "create_entities 1/call p99 ms", "{:.3f}"),
    Figure("add_obs_median_ms", "add_observations 1/call median ms", "{:.3f}"),
    Figure("add_obs_p99_ms", "add_observations 1/call p99 ms", "{:.3f}"),
    Figure("relate_median_ms", "create_relations 1/call median ms", "{:.3f}"),
    Figure("relate_p99_ms", "create_relations 1/call p99 ms", "{:.3f}"),
    Figure("get_median_ms", "open_entities 1 name median ms", "{:.3f}"),
    Figure("get_p99_ms", "open_entities 1 name p99 ms", "{:.3f}"),
    Figure("cold_load_s", "cold load Store()+1st read s", "{:.3f}"),
    Figure("cold_replay_s", "  same without the state cache s (info)", "{:.3f}"),
    Figure("cold_cpu_s", "cold load CPU s (info)", "{:.3f}"),
    Figure("cold_rss_mb", "cold load peak RSS MB", "{:.1f}"),
    Figure("writer_rss_mb", "writer peak RSS MB", "{:.1f}"),
    Figure("file_mb", "file size on disk MB", "{:.2f}"),
    Figure("file_lines", "file lines", "{:,.0f}"),
    Figure("build_s", "build time s (info)", "{:.1f}"),
    Figure("import_s", "import coaia_store s (info)", "{:.3f}"),
)


@dataclass(frozen=True)
class Target:
    key: str
    what: str
    limit: float
    unit: str


TARGETS: tuple[Target, ...] = (
    Target("create_median_ms", "durable single-op write median", 0.5, "ms"),
    Target("get_median_ms", "get-by-name median", 0.1, "ms"),
    Target("cold_load_s", "cold load", 1.5, "s"),
    Target("writer_rss_mb", "RSS of the writer with the graph loaded", 400.0, "MB"),
    Target("cold_rss_mb", "RSS of a cold-loaded process", 400.0, "MB"),
)

# ---------------------------------------------------------------- synthetic, realistic data

_WORDS = (
    "desired outcome current reality tension action step chart progress morning routine write chapter "
    "publish release draft review client project garden health run walk energy focus learn practice piano "
    "spanish finish manuscript launch website budget savings family friends weekly monthly structural "
    "advancing oscillating pattern choice primary secondary vision clarity complete observe notice shift"
).split()
_ENTITY_TYPES = ("structural_tension_chart", "desired_outcome", "current_reality", "action_step", "person", "project")
_RELATION_TYPES = ("contains", "advances_toward", "part_of", "depends_on", "relates_to")


def _sentence(rng: random.Random, words: int) -> str:
    text = " ".join(rng.choice(_WORDS) for _ in range(words))
    return text[0].upper() + text[1:] + "."


def _stamp(rng: random.Random) -> str:
    return f"2025-{rng.randint(1, 12):02d}-{rng.randint(1, 28):02d}T{rng.randint(0, 23):02d}:{rng.randint(0, 59):02d}:00.000Z"


def entity_name(i: int) -> str:
    return f"chart_{i:07d}"


def make_entity(rng: random.Random, name: str) -> dict[str, Any]:
    """About 300 bytes per line once stamped and checksummed."""
    return {
        "name": name,
        "entityType": rng.choice(_ENTITY_TYPES),
        "observations": [_sentence(rng, rng.randint(5, 9)), _sentence(rng, rng.randint(3, 7))],
        "metadata": {
            "createdAt": _stamp(rng),
            "chartId": name,
            "level": rng.randint(0, 3),
            "tags": rng.sample(_WORDS, 2),
        },
    }


def make_relation(rng: random.Random, source: str, target: str, kind: str) -> dict[str, Any]:
    return {"from": source, "to": target, "relationType": kind, "metadata": {"createdAt": _stamp(rng)}}


def build_relation(rng: random.Random, i: int, size: int) -> dict[str, Any]:
    """Entity ``i`` -> a random other entity: one relation per entity, none repeated."""
    j = (i + 1 + rng.randrange(size - 1)) % size
    return make_relation(rng, entity_name(i), entity_name(j), _RELATION_TYPES[i % len(_RELATION_TYPES)])


# ---------------------------------------------------------------- measurement helpers


def percentile(samples: Sequence[float], pct: float) -> float:
    """Nearest-rank percentile (p99 of 500 samples is the 5th largest)."""
    ordered = sorted(samples)
    return ordered[max(0, math.ceil(pct / 100 * len(ordered)) - 1)]


def peak_rss_mb() -> float:
    """This process's peak resident set size (``ru_maxrss`` is KiB on Linux, bytes on macOS)."""
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak / (1 << 20) if sys.platform == "darwin" else peak / 1024


def time_calls(calls: Iterator[Callable[[], object]]) -> list[float]:
    """Run each call once and return its latency in ms."""
    samples = []
    for call in calls:
        start = time.perf_counter_ns()
        call()
        samples.append((time.perf_counter_ns() - start) / 1e6)
    return samples


def summarise(prefix: str, samples: list[float]) -> dict[str, float]:
    return {f"{prefix}_median_ms": statistics.median(samples), f"{prefix}_p99_ms": percentile(samples, 99)}


# ---------------------------------------------------------------- child processes (import the engine)


def child_build(directory: Path, size: int, seed: int) -> dict[str, Any]:
    """Fill a fresh store in batches, then compact it to one record per line, as years of use would leave it."""
    from coaia_store import Store, StoreConfig

    rng = random.Random(seed)
    start = time.perf_counter()
    with Store(directory, config=StoreConfig(maxRecordBytes=64 << 20)) as store:
        for lo in range(0, size, BUILD_BATCH):
            hi = min(size, lo + BUILD_BATCH)
            store.create_entities([make_entity(rng, entity_name(i)) for i in range(lo, hi)], context=CONTEXT)
        for lo in range(0, size, BUILD_BATCH):
            hi = min(size, lo + BUILD_BATCH)
            store.create_relations([build_relation(rng, i, size) for i in range(lo, hi)], context=CONTEXT)
        store.compact(CONTEXT)
    return {"build_s": time.perf_counter() - start}


def child_cold(directory: Path, name: str, t0: float, cache: str) -> dict[str, Any]:
    """Time a fresh ``Store`` and its first read; ``t0`` is when this interpreter started importing.

    ``cache`` "off": the state cache is deleted and not saved, so the whole file is replayed."""
    from coaia_store import Store, StoreConfig

    imported = time.perf_counter()
    config = None
    if cache == "off":
        shutil.rmtree(directory / ".cache", ignore_errors=True)
        config = StoreConfig(stateCacheMinBytes=1 << 62)
    start, cpu = time.perf_counter(), time.process_time()
    store = Store(directory, config=config)
    result = store.open_entities([name], context=CONTEXT)
    loaded, cpu = time.perf_counter() - start, time.process_time() - cpu
    if [e.name for e in result.entities] != [name]:
        raise SystemExit(f"cold load did not find {name!r}")
    return {"cold_load_s": loaded, "cold_cpu_s": cpu, "cold_rss_mb": peak_rss_mb(), "import_s": imported - t0}


def child_build_cache(directory: Path) -> dict[str, Any]:
    """One load with the default config: its replay saves the state cache the cold runs start from
    (unless the file is under ``stateCacheMinBytes``: small files are always replayed)."""
    from coaia_store import Store

    with Store(directory) as store:
        store.read_graph(context=CONTEXT, limit=1)
    return {"state_cache": (directory / ".cache").is_dir()}


def child_writer(directory: Path, size: int, ops: int, seed: int) -> dict[str, Any]:
    """Open the store with the default config and time one-item calls of each kind."""
    from coaia_store import Store

    rng = random.Random(seed + 1)
    store = Store(directory)
    if store.config.fsync != "always":
        raise SystemExit("the writer must measure the default, durable config (fsync='always')")
    store.open_entities([entity_name(0)], context=CONTEXT)  # load the graph before timing anything
    figures: dict[str, Any] = {}
    for prefix, make in _WRITER_OPS:
        time_calls(make(store, rng, size, WARMUP_OPS, f"warm_{prefix}"))
        figures |= summarise(prefix, time_calls(make(store, rng, size, ops, prefix)))
    figures["writer_rss_mb"] = peak_rss_mb()
    store.close()
    return figures


OpFactory = Callable[[Any, random.Random, int, int, str], Iterator[Callable[[], object]]]


def _creates(store: Any, rng: random.Random, size: int, ops: int, tag: str) -> Iterator[Callable[[], object]]:
    for k in range(ops):
        entity = make_entity(rng, f"{tag}_{k:06d}")
        yield partial(store.create_entities, [entity], context=CONTEXT)


def _adds(store: Any, rng: random.Random, size: int, ops: int, tag: str) -> Iterator[Callable[[], object]]:
    for k in range(ops):
        item = {"entityName": entity_name(rng.randrange(size)), "contents": [f"{_sentence(rng, 8)} ({tag} {k})"]}
        yield partial(store.add_observations, [item], context=CONTEXT)


def _relates(store: Any, rng: random.Random, size: int, ops: int, tag: str) -> Iterator[Callable[[], object]]:
    # The relation type names the call, so every call writes a new relation (never "unchanged").
    for k in range(ops):
        source, target = rng.sample(range(size), 2)
        relation = make_relation(rng, entity_name(source), entity_name(target), f"{BENCH_RELATION}_{tag}_{k}")
        yield partial(store.create_relations, [relation], context=CONTEXT)


def _gets(store: Any, rng: random.Random, size: int, ops: int, tag: str) -> Iterator[Callable[[], object]]:
    for _ in range(ops):
        name = entity_name(rng.randrange(size))
        yield partial(store.open_entities, [name], context=CONTEXT)


_WRITER_OPS: tuple[tuple[str, OpFactory], ...] = (
    ("create", _creates),
    ("add_obs", _adds),
    ("relate", _relates),
    ("get", _gets),
)


def run_child(argv: list[str]) -> None:
    t0 = time.perf_counter()
    mode, directory = argv[0], Path(argv[1])
    if mode == "build":
        out = child_build(directory, int(argv[2]), int(argv[3]))
    elif mode == "cold":
        out = child_cold(directory, argv[2], t0, argv[3])
    elif mode == "build-cache":
        out = child_build_cache(directory)
    elif mode == "writer":
        out = child_writer(directory, int(argv[2]), int(argv[3]), int(argv[4]))
    else:
        raise SystemExit(f"unknown child mode {mode!r}")
    print(json.dumps(out))


# ---------------------------------------------------------------- parent: orchestration


def spawn(*args: object) -> dict[str, Any]:
    """Run this script as a child in a fresh interpreter and return the JSON it prints last."""
    cmd = [sys.executable, str(Path(__file__).resolve()), "--child", *map(str, args)]
    proc = subprocess.run(cmd, capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        raise SystemExit(f"child {args[0]} failed ({proc.returncode}):\n{proc.stderr}")
    result: dict[str, Any] = json.loads(proc.stdout.strip().splitlines()[-1])
    return result


def measure_size(root: Path, size: int, ops: int, cold_runs: int, seed: int) -> dict[str, Any]:
    directory = root / f"size-{size}" / ".coaia"
    figures = spawn("build", directory, size, seed)
    journal = directory / CONTEXT_FILE
    figures["file_mb"] = journal.stat().st_size / 1e6
    with journal.open("rb") as f:
        figures["file_lines"] = sum(1 for _ in f)
    rng = random.Random(seed + 2)
    names = [entity_name(rng.randrange(size)) for _ in range(cold_runs)]
    replays = [spawn("cold", directory, name, "off") for name in names]
    figures["cold_replay_s"] = statistics.median(c["cold_load_s"] for c in replays)
    figures |= spawn("build-cache", directory)
    colds = [spawn("cold", directory, name, "on") for name in names]
    figures["cold_load_runs_s"] = [c["cold_load_s"] for c in colds]
    for key in ("cold_load_s", "cold_cpu_s", "cold_rss_mb", "import_s"):
        figures[key] = statistics.median(c[key] for c in colds)
    figures |= spawn("writer", directory, size, ops, seed)
    figures["file_after_writes_mb"] = journal.stat().st_size / 1e6
    shutil.rmtree(directory.parent, ignore_errors=True)
    return figures


def filesystem_of(path: Path) -> str:
    """The mount (type and device) holding ``path``: fsync on tmpfs costs nothing, so say where we ran."""
    best, found = "", "unknown"
    try:
        with open("/proc/mounts") as mounts:
            for line in mounts:
                device, mount, kind = line.split()[:3]
                if path.is_relative_to(mount) and len(mount) >= len(best):
                    best, found = mount, f"{kind} on {device} (mounted at {mount})"
    except OSError:
        pass
    return found


def load_average() -> float | None:
    """The 1-minute load average: other work on the machine inflates every figure here."""
    try:
        return os.getloadavg()[0]
    except OSError:
        return None


def print_load(before: float | None, after: float | None) -> None:
    if before is None or after is None:
        return
    cpus = os.cpu_count() or 1
    print(f"\nload average (1 min) before {before:.2f}, after {after:.2f} on {cpus} CPUs", end="")
    busy = max(before, after) > 0.5 * cpus
    print(": the machine was busy, so latencies are pessimistic; rerun when it is idle" if busy else "")


def machine() -> dict[str, Any]:
    return {
        "python": platform.python_version(),
        "platform": platform.platform(),
        "cpus": os.cpu_count(),
        "processor": platform.processor() or platform.machine(),
    }


# ---------------------------------------------------------------- parent: reporting


def print_table(results: dict[int, dict[str, Any]]) -> None:
    sizes = list(results)
    width = max(len(f.label) for f in FIGURES) + 2
    print(f"{'figure':<{width}}" + "".join(f"{size:>14,}" for size in sizes))
    print("-" * (width + 14 * len(sizes)))
    for fig in FIGURES:
        print(f"{fig.label:<{width}}" + "".join(f"{fig.fmt.format(results[s][fig.key]):>14}" for s in sizes))


def print_scaling(results: dict[int, dict[str, Any]]) -> None:
    medians = {s: r["create_median_ms"] for s, r in results.items()}
    first, last = medians[min(medians)], medians[max(medians)]
    series = "  ".join(f"{s:,}: {m:.3f} ms" for s, m in medians.items())
    print(f"\nwrite cost vs graph size (create_entities 1/call median): {series}")
    print(f"  largest/smallest = {last / first:.2f}x (about 1x means the write cost does not grow with the graph)")


def evaluate_targets(results: dict[int, dict[str, Any]]) -> tuple[int, list[dict[str, Any]]]:
    size = TARGET_SIZE if TARGET_SIZE in results else max(results)
    verdicts = []
    for t in TARGETS:
        value = results[size][t.key]
        verdicts.append(
            {**t.__dict__, "measured": value, "size": size, "verdict": "PASS" if value < t.limit else "MISS"}
        )
    return size, verdicts


def print_targets(size: int, verdicts: list[dict[str, Any]]) -> None:
    note = (
        "" if size == TARGET_SIZE else f"  (NOTE: measured at {size:,} entities; the targets are for {TARGET_SIZE:,})"
    )
    print(f"\nissue targets at {TARGET_SIZE:,} entities (for reference; nothing here fails a build){note}")
    for v in verdicts:
        shown = f"{v['measured']:.1f}" if v["unit"] == "MB" else f"{v['measured']:.3f}"
        print(
            f"  {v['verdict']:<4}  {v['what']:<42} target < {v['limit']:g} {v['unit']:<3} measured {shown} {v['unit']}"
        )


# ---------------------------------------------------------------- main


def parse_args(argv: Sequence[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument(
        "--sizes", default="1000,10000,100000", help="comma-separated entity counts (default: %(default)s)"
    )
    parser.add_argument("--ops", type=int, default=500, help="timed calls per operation kind (default: %(default)s)")
    parser.add_argument(
        "--cold-runs", type=int, default=3, help="cold-load subprocesses per size; the median is reported"
    )
    parser.add_argument("--json", type=Path, help="also write every figure to this JSON file")
    parser.add_argument("--workdir", type=Path, help="where the temporary stores go (default: the system temp dir)")
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args(argv)
    args.sizes = [int(s.replace("_", "")) for s in args.sizes.split(",") if s.strip()]
    if any(s < 2 for s in args.sizes) or args.ops < 1 or args.cold_runs < 1:
        parser.error("sizes must be at least 2, --ops and --cold-runs at least 1")
    return args


def main(argv: Sequence[str]) -> int:
    if argv[:1] == ["--child"]:
        run_child(list(argv[1:]))
        return 0
    args = parse_args(argv)
    root = Path(tempfile.mkdtemp(prefix="coaia-bench-", dir=args.workdir))
    began, load_before = time.perf_counter(), load_average()
    print(f"coaia-store engine benchmark: sizes {args.sizes}, {args.ops} timed calls per kind, fsync='always'")
    print(
        f"store directory on {filesystem_of(root.resolve())}; python {platform.python_version()}, {os.cpu_count()} CPUs\n"
    )
    results: dict[int, dict[str, Any]] = {}
    try:
        for size in args.sizes:
            results[size] = measure_size(root, size, args.ops, args.cold_runs, args.seed)
            print(f"  measured {size:,} entities ({time.perf_counter() - began:.0f} s elapsed)", flush=True)
    finally:
        shutil.rmtree(root, ignore_errors=True)
    print()
    print_table(results)
    print_scaling(results)
    target_size, verdicts = evaluate_targets(results)
    print_targets(target_size, verdicts)
    elapsed, load_after = time.perf_counter() - began, load_average()
    print_load(load_before, load_after)
    print(f"total benchmark time {elapsed:.0f} s")
    if args.json:
        report = {
            "machine": machine(),
            "filesystem": filesystem_of(root),
            "ops": args.ops,
            "cold_runs": args.cold_runs,
            "load_average": [load_before, load_after],
            "results": {str(s): r for s, r in results.items()},
            "targets": verdicts,
            "elapsed_s": elapsed,
        }
        args.json.write_text(json.dumps(report, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
