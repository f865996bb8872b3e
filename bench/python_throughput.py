"""Python `Pipeline.annotate` and Ray Data (2 actors) beside `saener annotate`, same input,
same batch size (16 sequences a pass, 64 records a call), in one run (BENCHMARKS.md).

    cargo build --release -p saener && pip install ./python
    python bench/python_throughput.py [--records 1000] [--repeats 2] [--ray]

Input: the generated test corpus of python/tests/corpus.py (templated news sentences and the
repository's examples; bad records removed). Every figure is records per second of wall
time over the whole input; the CLI's includes its model load (it is one process per run),
so the Python figure is given both with and without `Pipeline(...)`'s load.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "python" / "tests"))
import corpus  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--records", type=int, default=1000)
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--ray", action="store_true", help="also Ray Data with 2 actors")
    parser.add_argument("--bin", default=os.environ.get("SAENER_BIN", str(REPO / "target/release/saener")))
    args = parser.parse_args()

    import saener

    rows = [r for r in corpus.records(args.records) if isinstance(r.get("text"), str)]
    tmp = Path(tempfile.mkdtemp())
    path = corpus.write_jsonl(tmp / "corpus.jsonl", rows)
    n = len(rows)
    best = {}

    def note(name: str, seconds: float) -> None:
        best[name] = min(best.get(name, float("inf")), seconds)

    for _ in range(args.repeats):
        start = time.perf_counter()
        subprocess.run([args.bin, "annotate", "--profile", "conll2003", "--input", str(path),
                        "--output", str(tmp / "cli.jsonl"), "--batch-size", "16", "--chunk", "64"],
                       check=True, stderr=subprocess.DEVNULL)
        note("CLI `saener annotate` (process, load included)", time.perf_counter() - start)

        start = time.perf_counter()
        nlp = saener.Pipeline("conll2003", batch_size=16, chunk=64)
        loaded = time.perf_counter()
        out = nlp.annotate_records(rows)
        done = time.perf_counter()
        note("Python `Pipeline(...)` + `annotate_records` (load included)", done - start)
        note("Python `annotate_records` alone", done - loaded)
        del nlp
        cli = [json.loads(l) for l in (tmp / "cli.jsonl").read_text().splitlines()]
        assert out == cli, "Python and CLI outputs differ"

        if args.ray:
            import ray
            import saener.ray

            ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
            ray.data.DataContext.get_current().execution_options.preserve_order = True
            start = time.perf_counter()
            ds = ray.data.from_items(rows).map_batches(
                saener.ray.Annotator, fn_constructor_kwargs={"profile": "conll2003"},
                concurrency=2, batch_size=64, batch_format="pandas")
            got = ds.take_all()
            note("Ray Data, 2 actors (actor start and model loads included)", time.perf_counter() - start)
            ray.shutdown()
            assert [json.loads(r["entities"]) for r in got] == [r["entities"] for r in cli]

    cli_rate = n / best["CLI `saener annotate` (process, load included)"]
    print(f"{n} records, best of {args.repeats}; {os.cpu_count()} CPUs")
    print("| run | seconds | records/s | vs CLI |")
    print("|---|---|---|---|")
    for name, seconds in best.items():
        rate = n / seconds
        print(f"| {name} | {seconds:.1f} | {rate:.1f} | {100 * rate / cli_rate:.0f} % |")


if __name__ == "__main__":
    main()
