"""Benchmark of ranked search (coaia_store.search.index): index build, keeping in step, query latency.

    python bench/bench_search.py [--sizes 10000,100000] [--repeats 20]

For each size a fresh store is filled with bench_engine.py's synthetic entities (fsync off:
building is not what is measured), reopened, loaded, and then timed through the public
API only: the first search (full index build, which saves the index to ``.cache/``), the
first search of a second index (which starts from that saved index, as a new process
does), ``rebuild()``, a search after nothing
changed, after one write, after another Store compacted the file (a reload: every record
is a new object), and the median latency of some queries. Figures only, no verdicts.
"""

from __future__ import annotations

import argparse
import random
import shutil
import statistics
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_engine import entity_name, make_entity  # noqa: E402

from coaia_store import Store, StoreConfig  # noqa: E402
from coaia_store.search.index import SearchIndex  # noqa: E402

QUERIES = ("piano", "pia", "garden health", "spanish manuscript launch", "piano zzzz", "chart_0001234", "zzzz")


def median_ms(fn: Callable[[], object], repeats: int) -> float:
    samples = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        samples.append((time.perf_counter() - start) * 1000)
    return statistics.median(samples)


def build(directory: Path, size: int) -> None:
    rng = random.Random(1)
    with Store(directory, config=StoreConfig(maxRecordBytes=64 << 20, fsync="never")) as store:
        for lo in range(0, size, 1000):
            store.create_entities([make_entity(rng, entity_name(i)) for i in range(lo, min(size, lo + 1000))])
        store.compact()


def measure(directory: Path, size: int, repeats: int) -> None:
    rng = random.Random(2)
    with Store(directory) as store, Store(directory) as other:
        store.read_graph(limit=1)  # load the journal first: time the index only
        index = SearchIndex(store)

        def search_after_a_write() -> float:
            name = entity_name(rng.randrange(size))
            other.add_observations([{"entityName": name, "contents": [f"note {rng.random()}"]}])
            return median_ms(lambda: index.search("zzzz"), 1)

        def search_after_compaction() -> float:
            other.compact()
            return median_ms(lambda: index.search("zzzz"), 1)

        def first_search_of_a_new_index() -> float:
            second = SearchIndex(store)
            try:
                return median_ms(lambda: second.search("zzzz"), 1)
            finally:
                second.close()

        rows = {
            "first search (full build)": median_ms(lambda: index.search("zzzz"), 1),
            "first search of a new index (from the saved one)": first_search_of_a_new_index(),
            "rebuild() + search": median_ms(lambda: (index.rebuild(), index.search("zzzz")), 1),
            "search, nothing changed": median_ms(lambda: index.search("zzzz"), repeats),
            "search after 1 write by another Store": statistics.median(search_after_a_write() for _ in range(repeats)),
            "search after another Store compacted (incl. reload)": search_after_compaction(),
        }
        for label, ms in rows.items():
            print(f"  {label:52} {ms:9.1f} ms")
        for query in QUERIES:
            page = index.search(query)
            ms = median_ms(lambda query=query: index.search(query), repeats)
            print(f"  query {query!r:44} {ms:9.1f} ms  ({page.total} hits, match={page.match})")
        index.close()


def main(argv: Sequence[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="10000,100000", help="entity counts, comma-separated")
    parser.add_argument("--repeats", type=int, default=20, help="timed calls per figure (median shown)")
    args = parser.parse_args(argv)
    for size in (int(s) for s in args.sizes.split(",")):
        workdir = Path(tempfile.mkdtemp(prefix="coaia-bench-search-"))
        try:
            build(workdir / ".coaia", size)
            print(f"{size} entities:")
            measure(workdir / ".coaia", size, args.repeats)
        finally:
            shutil.rmtree(workdir)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
