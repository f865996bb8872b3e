"""Annotate a JSONL corpus ({"id", "text"} per line) on a Ray cluster, one model per actor.

    python python/examples/ray_annotate.py corpus.jsonl out/ --actors 2 --profile conll2003

On a multi-node cluster, start Ray on each node first (`ray start --head` on one,
`ray start --address=HEAD:6379` on the others) with the saener wheel installed and the model
fetched (`python -c "import saener; saener.fetch_model()"`) on every node; then run this on
the head node with `--address auto`.
"""

import argparse
import time

import ray

import saener.ray


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("input")
    parser.add_argument("output")
    parser.add_argument("--profile", default="conll2003")
    parser.add_argument("--actors", type=int, default=2)
    parser.add_argument("--batch-size", type=int, default=64, help="rows per actor call")
    parser.add_argument("--address", default=None, help="an existing cluster ('auto')")
    args = parser.parse_args()

    ray.init(address=args.address)
    ray.data.DataContext.get_current().execution_options.preserve_order = True
    started = time.perf_counter()
    ds = ray.data.read_json(args.input).map_batches(
        saener.ray.Annotator,
        fn_constructor_kwargs={"profile": args.profile},
        concurrency=args.actors,
        batch_size=args.batch_size,
    )
    ds.write_json(args.output)
    print(f"annotated in {time.perf_counter() - started:.1f} s")


if __name__ == "__main__":
    main()
