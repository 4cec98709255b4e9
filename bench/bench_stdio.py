"""Stdio benchmark: ``coaia-store serve --tools memory`` against the official MCP memory server.

    python bench/bench_stdio.py [--sizes 10000,50000] [--ops 30] [--ours-ops 200] [--json FILE] [--ours-only]

Both servers are driven the way an agent drives them: an ``mcp.Client`` spawns the server
and talks JSON-RPC over its stdin/stdout. For each size, one file in the official server's
format (entities, about one relation each, some rare words planted in a few entities) is
written once; the official server reads a copy through ``MEMORY_FILE_PATH``, ours a copy
as ``<dir>/.coaia/charts.jsonl``, migrated to our format with ``coaia-store compact``
before anything is timed (our first write would otherwise do that one-time rewrite), then
*primed*: one session with one search, after which ``.coaia/.cache/`` holds the saved state
and search index, as on any store a server has run on once. Cold starts are then restarts.

Each server is measured by a *driver* subprocess (a fresh interpreter with the MCP client):
``--cold-runs`` cold starts (spawn to the first answered ``open_nodes``), then one session
that makes the same calls with the same arguments on both servers: untimed warm-up calls,
then the timed calls in rounds of one call of each kind. The parent only writes files,
orchestrates and prints. See bench/README.md.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import random
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_engine import (  # noqa: E402  (shared helpers: one definition of the data and the statistics)
    _ENTITY_TYPES,
    _RELATION_TYPES,
    _sentence,
    entity_name,
    filesystem_of,
    load_average,
    machine,
    percentile,
)

OFFICIAL_PACKAGE = "@modelcontextprotocol/server-memory"
OFFICIAL, OURS = "official", "ours"
TARGET_SIZE = 50_000
WARMUP_OPS = 3
RARE_WORDS = ("zephyrine", "quillmarsh", "obsidrake", "vantaglow", "kestrelwick")
PLANTS_PER_WORD = 3
CALL_TIMEOUT_S = 120.0
SPAWN_TIMEOUT_S = 1800
NPM_QUIET = {"NPM_CONFIG_LOGLEVEL": "error", "NPM_CONFIG_UPDATE_NOTIFIER": "false", "NO_UPDATE_NOTIFIER": "1"}

# ---------------------------------------------------------------- the calls


@dataclass(frozen=True)
class Call:
    key: str
    label: str
    tool: str
    ours_only: bool = False


CALLS: tuple[Call, ...] = (
    Call("create", "create_entities (1 new entity)", "create_entities"),
    Call("add_obs", "add_observations (1 observation)", "add_observations"),
    Call("relate", "create_relations (1 relation)", "create_relations"),
    Call("search", "search_nodes (rare word, 3 hits)", "search_nodes"),
    Call("open", "open_nodes (1 name)", "open_nodes"),
    Call("noop", "no-op: open_nodes names=[]", "open_nodes", ours_only=True),
)
Plants = dict[str, list[str]]  # rare word -> the entities that carry it


def call_arguments(key: str, rng: random.Random, size: int, k: int, tag: str) -> dict[str, Any]:
    """The arguments of call ``k`` of kind ``key``: the same on both servers (same seed, one rng per kind)."""
    if key == "create":
        return {"entities": [official_entity(rng, f"bench_{tag}_{k:05d}")]}
    if key == "add_obs":
        content = f"{_sentence(rng, 8)} ({tag} {k})"
        return {"observations": [{"entityName": entity_name(rng.randrange(size)), "contents": [content]}]}
    if key == "relate":
        source, target = (entity_name(i) for i in rng.sample(range(size), 2))
        return {"relations": [{"from": source, "to": target, "relationType": f"bench_{tag}_{k}"}]}
    if key == "search":
        return {"query": RARE_WORDS[k % len(RARE_WORDS)]}
    if key == "open":
        return {"names": [entity_name(rng.randrange(size))]}
    if key == "noop":
        return {"names": []}
    raise ValueError(f"unknown call {key!r}")


# ---------------------------------------------------------------- the pre-filled file (the official server's format)


def official_entity(rng: random.Random, name: str) -> dict[str, Any]:
    observations = [_sentence(rng, rng.randint(5, 9)) for _ in range(rng.randint(2, 3))]
    return {"name": name, "entityType": rng.choice(_ENTITY_TYPES), "observations": observations}


def plant_rare_words(size: int, seed: int) -> Plants:
    """Which entities carry each rare word: what a selective search must find, and nothing else."""
    rng = random.Random(f"{seed}-plants")
    chosen = rng.sample(range(size), min(size, len(RARE_WORDS) * PLANTS_PER_WORD))
    return {word: sorted(entity_name(i) for i in chosen[n :: len(RARE_WORDS)]) for n, word in enumerate(RARE_WORDS)}


def official_lines(size: int, seed: int, plants: Plants) -> list[str]:
    """Entities then relations, one JSON object per line, as the official server's saveGraph writes them."""
    rng = random.Random(seed)
    planted = {name: word for word, names in plants.items() for name in names}
    entities = []
    for i in range(size):
        entity = official_entity(rng, entity_name(i))
        if (word := planted.get(entity_name(i))) is not None:
            words = _sentence(rng, 6).rstrip(".").split()
            words.insert(rng.randrange(1, len(words) + 1), word)
            entity["observations"].append(" ".join(words) + ".")
        entities.append({"type": "entity", **entity})
    relations = []
    for i in range(size):
        j = (i + 1 + rng.randrange(size - 1)) % size
        relations.append(
            {
                "type": "relation",
                "from": entity_name(i),
                "to": entity_name(j),
                "relationType": _RELATION_TYPES[i % len(_RELATION_TYPES)],
            }
        )
    return [json.dumps(item, ensure_ascii=False, separators=(",", ":")) for item in entities + relations]


# ---------------------------------------------------------------- driver subprocess (imports the MCP client)


def seconds_since(start: float) -> float:
    return time.perf_counter() - start


async def _checked(client: Any, tool: str, arguments: dict[str, Any]) -> dict[str, Any]:
    result = await client.call_tool(tool, arguments)
    if result.is_error:
        raise SystemExit(f"{tool}({json.dumps(arguments)[:200]}) failed: {result.content}")
    return result.structured_content or {}


async def cold_start(params: Any, name: str) -> dict[str, float]:
    """Spawn the server and time until its first ``open_nodes`` answer (the server loads the graph for it)."""
    from mcp import Client

    start = time.perf_counter()
    async with Client(params, read_timeout_seconds=CALL_TIMEOUT_S) as client:
        handshake = seconds_since(start)
        reply = await _checked(client, "open_nodes", {"names": [name]})
        first_call = seconds_since(start)
    if [e["name"] for e in reply.get("entities", [])] != [name]:
        raise SystemExit(f"cold start: open_nodes did not return {name!r}: {reply}")
    return {"cold_s": first_call, "handshake_s": handshake}


def _check_reply(call: Call, arguments: dict[str, Any], reply: dict[str, Any], plants: Plants) -> str | None:
    """A problem with the reply, if any: a fast call that answers something else would prove nothing."""
    if call.key == "search":
        found = sorted(e["name"] for e in reply.get("entities", []))
        if found != plants[arguments["query"]]:
            return f"search_nodes {arguments['query']!r} returned {found}, expected {plants[arguments['query']]}"
    if call.key == "open" and [e["name"] for e in reply.get("entities", [])] != arguments["names"]:
        return f"open_nodes {arguments['names']} returned {reply}"
    return None


@dataclass
class Series:
    """The calls of one kind: its own rng per phase (so both servers get the same arguments), its samples."""

    call: Call
    spec: dict[str, Any]
    samples: list[float] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)
    first_ms: float = 0.0

    def __post_init__(self) -> None:
        self.rng = random.Random(f"{self.spec['seed']}-{self.call.key}-op")

    async def warm_up(self, client: Any) -> None:
        rng = random.Random(f"{self.spec['seed']}-{self.call.key}-warm")
        for k in range(WARMUP_OPS):
            elapsed = await self.one(client, call_arguments(self.call.key, rng, self.spec["size"], k, "warm"))
            self.first_ms = elapsed if k == 0 else self.first_ms

    async def timed(self, client: Any, k: int) -> None:
        arguments = call_arguments(self.call.key, self.rng, self.spec["size"], k, "op")
        self.samples.append(await self.one(client, arguments))

    async def one(self, client: Any, arguments: dict[str, Any]) -> float:
        start = time.perf_counter_ns()
        reply = await _checked(client, self.call.tool, arguments)
        elapsed = (time.perf_counter_ns() - start) / 1e6
        if (problem := _check_reply(self.call, arguments, reply, self.spec["plants"])) and len(self.problems) < 3:
            self.problems.append(problem)
        return elapsed

    def figures(self) -> dict[str, Any]:
        return {
            "median_ms": statistics.median(self.samples),
            "p90_ms": percentile(self.samples, 90),
            "calls": len(self.samples),
            "first_ms": self.first_ms,
            "problems": self.problems,
        }


async def time_calls(client: Any, series: list[Series], ops: int) -> None:
    """Warm-up calls kind by kind (untimed; the first of each is kept as ``first_ms``), then the timed calls
    in rounds, one call of each kind per round, so that every kind meets the same machine and the same graph
    (searches and reads come right after writes, as in an agent's session)."""
    for s in series:
        await s.warm_up(client)
    for k in range(ops):
        for s in series:
            await s.timed(client, k)


def server_params(spec: dict[str, Any]) -> Any:
    from mcp import StdioServerParameters

    return StdioServerParameters(command=spec["command"][0], args=spec["command"][1:], env=spec["env"])


async def prefetch(spec: dict[str, Any]) -> dict[str, Any]:
    """Start the server once and list its tools: npx downloads the package into its cache if need be."""
    from mcp import Client

    async with Client(server_params(spec), read_timeout_seconds=CALL_TIMEOUT_S) as client:
        return {"tools": sorted(t.name for t in (await client.list_tools()).tools)}


async def drive(spec: dict[str, Any]) -> dict[str, Any]:
    from mcp import Client

    params = server_params(spec)
    rng = random.Random(f"{spec['seed']}-cold")
    colds = [await cold_start(params, entity_name(rng.randrange(spec["size"]))) for _ in range(spec["cold_runs"])]
    out: dict[str, Any] = {
        "cold_runs_s": [c["cold_s"] for c in colds],
        "cold_s": statistics.median(c["cold_s"] for c in colds),
        "cold_handshake_s": statistics.median(c["handshake_s"] for c in colds),
        "calls": {},
    }
    async with Client(params, read_timeout_seconds=CALL_TIMEOUT_S) as client:
        info = client.server_info
        out["server_info"] = f"{info.name} {info.version}" if info else "unknown"
        out["protocol"] = client.protocol_version
        tools = {t.name for t in (await client.list_tools()).tools}
        out["tools"] = sorted(tools)
        calls = [c for c in CALLS if spec["server"] == OURS or not c.ours_only]
        series = [Series(c, spec) for c in calls if c.tool in tools]
        await time_calls(client, series, spec["ops"])
    # a tool this server does not publish gets no figure, never a made-up one
    out["calls"] = {c.key: None for c in calls} | {s.call.key: s.figures() for s in series}
    return out


async def prime(spec: dict[str, Any]) -> dict[str, Any]:
    """One session with one search: the server builds its search index and saves it, and its state, to
    ``.cache/``, as any server that has run on this store once has done (a cold start is then a restart)."""
    from mcp import Client

    async with Client(server_params(spec), read_timeout_seconds=CALL_TIMEOUT_S) as client:
        await _checked(client, "search_nodes", {"query": RARE_WORDS[0]})
    return {}


CHILD_MODES = {"drive": drive, "prefetch": prefetch, "prime": prime}


def run_child(argv: list[str]) -> None:
    if argv[0] not in CHILD_MODES:
        raise SystemExit(f"unknown child mode {argv[0]!r}")
    print(json.dumps(asyncio.run(CHILD_MODES[argv[0]](json.loads(argv[1])))))


# ---------------------------------------------------------------- parent: orchestration


def spawn(mode: str, spec: dict[str, Any], failure: str) -> dict[str, Any]:
    """Run this script as a child in a fresh interpreter and return the JSON it prints last."""
    cmd = [sys.executable, str(Path(__file__).resolve()), "--child", mode, json.dumps(spec)]
    proc = subprocess.run(cmd, capture_output=True, text=True, check=False, timeout=SPAWN_TIMEOUT_S)
    if proc.returncode != 0:
        output = f"{proc.stdout[-2000:]}\n{proc.stderr[-4000:]}"
        raise SystemExit(f"{failure} ({mode} child exited {proc.returncode}):\n{output}")
    result: dict[str, Any] = json.loads(proc.stdout.strip().splitlines()[-1])
    return result


def spawn_driver(spec: dict[str, Any]) -> dict[str, Any]:
    return spawn("drive", spec, f"measuring the {spec['server']} server at {spec['size']:,} entities failed")


def ours_command() -> list[str]:
    """``coaia-store`` from the interpreter running this script (its venv), else ``python -m coaia_store``."""
    script = Path(sys.executable).with_name("coaia-store")
    return [str(script)] if script.exists() else [sys.executable, "-m", "coaia_store"]


def official_command(package: str) -> list[str]:
    npx = shutil.which("npx")
    if npx is None:
        raise SystemExit("npx (Node.js) is not installed: install Node.js, or pass --ours-only")
    return [npx, "-y", package]


def prefetch_official(root: Path, package: str) -> float:
    """One untimed spawn, so npx has the package in its cache before anything is timed."""
    empty = root / "prefetch" / "memory.jsonl"
    empty.parent.mkdir(parents=True)
    spec = {"command": official_command(package), "env": {**NPM_QUIET, "MEMORY_FILE_PATH": str(empty.resolve())}}
    started = time.perf_counter()
    spawn(
        "prefetch",
        spec,
        f"could not start the official server with `npx -y {package}` (is the npm registry "
        "reachable? --ours-only measures coaia-store alone)",
    )
    return seconds_since(started)


def migrate_ours(directory: Path) -> float:
    """Our first write would migrate the foreign file (one-time rewrite with checksums): do it before timing."""
    started = time.perf_counter()
    command = [*ours_command(), "--dir", str(directory), "compact"]
    proc = subprocess.run(command, capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        raise SystemExit(f"coaia-store compact failed ({proc.returncode}):\n{proc.stdout}\n{proc.stderr}")
    return seconds_since(started)


def measure_size(root: Path, size: int, args: argparse.Namespace) -> dict[str, Any]:
    base = root / f"size-{size}"
    plants = plant_rare_words(size, args.seed)
    data = "\n".join(official_lines(size, args.seed, plants))  # no final newline: as the official server writes it
    figures: dict[str, Any] = {"file_mb": len(data.encode()) / 1e6, "file_lines": 2 * size, "plants": plants}
    common = {"size": size, "seed": args.seed, "plants": plants, "cold_runs": args.cold_runs}
    if not args.ours_only:
        official_file = base / "official" / "memory.jsonl"
        official_file.parent.mkdir(parents=True)
        official_file.write_text(data, encoding="utf-8")
        figures[OFFICIAL] = spawn_driver(
            {
                **common,
                "server": OFFICIAL,
                "ops": args.ops,
                "command": official_command(args.official_package),
                "env": {**NPM_QUIET, "MEMORY_FILE_PATH": str(official_file.resolve())},
            }
        )
    store_dir = base / "ours" / ".coaia"
    store_dir.mkdir(parents=True)
    (store_dir / "charts.jsonl").write_text(data, encoding="utf-8")
    figures["migrate_s"] = migrate_ours(store_dir)
    figures["ours_file_mb"] = (store_dir / "charts.jsonl").stat().st_size / 1e6
    serve = [*ours_command(), "serve", "--dir", str(store_dir.resolve()), "--tools", "memory"]
    started = time.perf_counter()
    spawn("prime", {"command": serve, "env": {}}, "priming coaia-store's .cache/ failed")
    figures["prime_s"] = seconds_since(started)
    figures[OURS] = spawn_driver({**common, "server": OURS, "ops": args.ours_ops, "command": serve, "env": {}})
    shutil.rmtree(base, ignore_errors=True)
    return figures


# ---------------------------------------------------------------- parent: reporting


def _call_figure(result: dict[str, Any], server: str, key: str) -> dict[str, Any] | None:
    if server not in result:
        return None
    figure: dict[str, Any] | None = result[server]["calls"].get(key)
    return figure


def ratio(official: float | None, ours: float | None) -> float | None:
    return official / ours if official is not None and ours else None


def _cell(value: float | None, fmt: str, missing: str = "-") -> str:
    return fmt.format(value) if value is not None else missing


def row_values(result: dict[str, Any], call: Call) -> tuple[str, str, str]:
    """The official, ours and ratio cells of one call's row."""
    cells = []
    for server in (OFFICIAL, OURS):
        if server not in result or (call.ours_only and server == OFFICIAL):
            cells.append("-")
            continue
        fig = _call_figure(result, server, call.key)
        cells.append("not published by this server" if fig is None else f"{fig['median_ms']:.2f} / {fig['p90_ms']:.2f}")
    official, ours = _call_figure(result, OFFICIAL, call.key), _call_figure(result, OURS, call.key)
    r = ratio(official and official["median_ms"], ours and ours["median_ms"])
    return cells[0], cells[1], _cell(r, "{:.1f}x")


def cold_values(result: dict[str, Any], key: str) -> tuple[str, str, str]:
    official = result[OFFICIAL][key] if OFFICIAL in result else None
    ours = result[OURS][key]
    return _cell(official, "{:.3f}"), f"{ours:.3f}", _cell(ratio(official, ours), "{:.1f}x")


def print_table(results: dict[int, dict[str, Any]]) -> None:
    head = f"{'call: median / p90 ms':<40}{'entities':>9}  {'official':>17}  {'ours':>28}  {'official/ours':>13}"
    print(head)
    print("-" * len(head))
    rows: list[tuple[str, Callable[[dict[str, Any]], tuple[str, str, str]]]] = [
        *((c.label, partial(row_values, call=c)) for c in CALLS),
        ("cold start: spawn to 1st open_nodes, s", partial(cold_values, key="cold_s")),
        ("  of which spawn + handshake, s (info)", partial(cold_values, key="cold_handshake_s")),
    ]
    for label, values in rows:
        for size, result in results.items():
            official, ours, r = values(result)
            print(f"{label:<40}{size:>9,}  {official:>17}  {ours:>28}  {r:>13}")
            label = ""


def print_files(results: dict[int, dict[str, Any]]) -> None:
    print()
    for size, r in results.items():
        print(
            f"{size:>7,} entities: official-format file {r['file_mb']:.2f} MB, {r['file_lines']:,} lines; ours "
            f"migrated before measuring (`coaia-store compact`, one-time) in {r['migrate_s']:.2f} s "
            f"-> {r['ours_file_mb']:.2f} MB, then primed (one session with one search: .cache/) in "
            f"{r['prime_s']:.2f} s"
        )
        for server in (OFFICIAL, OURS):
            if server in r:
                d = r[server]
                firsts = ", ".join(f"{k} {v['first_ms']:.1f}" for k, v in d["calls"].items() if v)
                print(
                    f"    {server:<8} {d['server_info']} (protocol {d['protocol']}); "
                    f"first call of each kind, ms: {firsts}"
                )
                for key, fig in d["calls"].items():
                    for problem in (fig or {}).get("problems", []):
                        print(f"    WARNING {server} {key}: {problem}")


@dataclass(frozen=True)
class Target:
    what: str
    kind: str  # "baseline": ours <= factor x ours no-op;  "speedup": official/ours >= factor
    key: str
    factor: float


TARGETS: tuple[Target, ...] = (
    Target("create_entities within 2x of our no-op call", "baseline", "create", 2),
    Target("add_observations within 2x of our no-op call", "baseline", "add_obs", 2),
    Target("create_relations within 2x of our no-op call", "baseline", "relate", 2),
    Target("create_entities >= 50x faster than official", "speedup", "create", 50),
    Target("add_observations >= 50x faster than official", "speedup", "add_obs", 50),
    Target("create_relations >= 50x faster than official", "speedup", "relate", 50),
    Target("cold start >= 10x faster than official", "speedup", "cold", 10),
    Target("search_nodes >= 10x faster than official", "speedup", "search", 10),
)


def _median(result: dict[str, Any], server: str, key: str) -> float | None:
    if server not in result:
        return None
    if key == "cold":
        value: float = result[server]["cold_s"] * 1000
        return value
    fig = _call_figure(result, server, key)
    return fig["median_ms"] if fig else None


def verdict(t: Target, result: dict[str, Any]) -> dict[str, Any]:
    ours = _median(result, OURS, t.key)
    other = _median(result, OURS, "noop") if t.kind == "baseline" else _median(result, OFFICIAL, t.key)
    out = {**t.__dict__, "ours_ms": ours, "compared_ms": other}
    if ours is None:
        tool = next(c.tool for c in CALLS if c.key == t.key)
        return {**out, "verdict": "n/a", "measured": None, "note": f"{tool} is not published by this server"}
    if other is None:
        return {**out, "verdict": "n/a", "measured": None, "note": "official server not measured (--ours-only)"}
    if t.kind == "baseline":
        measured = ours / other
        return {
            **out,
            "measured": measured,
            "verdict": "PASS" if measured <= t.factor else "MISS",
            "note": f"ours {ours:.3f} ms vs no-op {other:.3f} ms = {measured:.2f}x (limit {t.factor:g}x)",
        }
    measured = other / ours
    return {
        **out,
        "measured": measured,
        "verdict": "PASS" if measured >= t.factor else "MISS",
        "note": f"official {other:.2f} ms / ours {ours:.2f} ms = {measured:.1f}x (needs {t.factor:g}x)",
    }


def evaluate_targets(results: dict[int, dict[str, Any]]) -> tuple[int, list[dict[str, Any]]]:
    size = TARGET_SIZE if TARGET_SIZE in results else max(results)
    return size, [verdict(t, results[size]) for t in TARGETS]


def print_targets(size: int, verdicts: list[dict[str, Any]]) -> None:
    note = "" if size == TARGET_SIZE else f"  (NOTE: measured at {size:,} entities, not {TARGET_SIZE:,})"
    print(f"\ntargets at {TARGET_SIZE:,} entities (medians; for reference, nothing here fails a build){note}")
    for v in verdicts:
        print(f"  {v['verdict']:<4}  {v['what']:<46} {v['note']}")


def print_load(before: float | None, after: float | None) -> None:
    """Only the load before the run says whether other work was running: the run itself keeps a client and a
    server busy, which lifts the load average it ends with."""
    if before is None or after is None:
        return
    cpus = os.cpu_count() or 1
    print(
        f"\nload average (1 min) before {before:.2f}, after {after:.2f} (this run's own load included) on {cpus} CPUs",
        end="",
    )
    print(": the machine was busy before the run, so latencies are pessimistic" if before > 0.5 * cpus else "")


# ---------------------------------------------------------------- main


def parse_args(argv: Sequence[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", default="10000,50000", help="comma-separated entity counts (default: %(default)s)")
    parser.add_argument(
        "--ops", type=int, default=30, help="timed calls per kind on the official server (default: %(default)s)"
    )
    parser.add_argument(
        "--ours-ops",
        type=int,
        default=200,
        help="timed calls per kind on ours (default: %(default)s); the first --ops of them are "
        "the official server's calls",
    )
    parser.add_argument(
        "--cold-runs", type=int, default=3, help="cold starts per server and size; the median is reported"
    )
    parser.add_argument("--ours-only", action="store_true", help="measure coaia-store only (no Node.js needed)")
    parser.add_argument(
        "--official-package", default=OFFICIAL_PACKAGE, help="the npm package npx runs (pin a version with @version)"
    )
    parser.add_argument("--json", type=Path, help="also write every figure to this JSON file")
    parser.add_argument("--workdir", type=Path, help="where the temporary files go (default: the system temp dir)")
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args(argv)
    args.sizes = [int(s.replace("_", "")) for s in args.sizes.split(",") if s.strip()]
    smallest = len(RARE_WORDS) * PLANTS_PER_WORD
    if any(s < smallest for s in args.sizes) or min(args.ops, args.ours_ops, args.cold_runs) < 1:
        parser.error(f"sizes must be at least {smallest}; --ops, --ours-ops and --cold-runs at least 1")
    return args


def main(argv: Sequence[str]) -> int:
    if argv[:1] == ["--child"]:
        run_child(list(argv[1:]))
        return 0
    args = parse_args(argv)
    root = Path(tempfile.mkdtemp(prefix="coaia-bench-stdio-", dir=args.workdir))
    began, load_before = time.perf_counter(), load_average()
    servers = "coaia-store only" if args.ours_only else f"official (npx -y {args.official_package}) vs coaia-store"
    print(
        f"MCP stdio benchmark, {servers} (serve --tools memory): sizes {args.sizes}; timed calls per kind: "
        f"official {args.ops}, ours {args.ours_ops} (after {WARMUP_OPS} untimed); cold starts {args.cold_runs}"
    )
    print(f"files on {filesystem_of(root.resolve())}; python {platform.python_version()}, {os.cpu_count()} CPUs")
    print(
        "ours: the official-format file is migrated (coaia-store compact) before anything is timed; "
        "our writes are durable (fdatasync), the official server's are not\n"
    )
    results: dict[int, dict[str, Any]] = {}
    prefetch_s = None
    try:
        if not args.ours_only:
            prefetch_s = prefetch_official(root, args.official_package)
            print(f"  untimed first spawn of the official server (npx cache) took {prefetch_s:.1f} s", flush=True)
        for size in args.sizes:
            results[size] = measure_size(root, size, args)
            print(f"  measured {size:,} entities ({seconds_since(began):.0f} s elapsed)", flush=True)
    finally:
        shutil.rmtree(root, ignore_errors=True)
    print()
    print_table(results)
    print_files(results)
    target_size, verdicts = evaluate_targets(results)
    print_targets(target_size, verdicts)
    elapsed, load_after = seconds_since(began), load_average()
    print_load(load_before, load_after)
    print(f"total benchmark time {elapsed:.0f} s")
    if args.json:
        report = {
            "machine": machine(),
            "filesystem": filesystem_of(root),
            "ops": args.ops,
            "ours_ops": args.ours_ops,
            "cold_runs": args.cold_runs,
            "official_package": None if args.ours_only else args.official_package,
            "prefetch_s": prefetch_s,
            "load_average": [load_before, load_after],
            "results": {str(s): r for s, r in results.items()},
            "targets": verdicts,
            "elapsed_s": elapsed,
        }
        args.json.write_text(json.dumps(report, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
