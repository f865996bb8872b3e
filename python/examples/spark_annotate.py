"""Annotate a JSONL corpus ({"id", "text"} per line) with Spark, two ways.

    spark-submit python/examples/spark_annotate.py corpus.jsonl out/            # the wheel
    spark-submit python/examples/spark_annotate.py corpus.jsonl out/ --cli saener  # RDD.pipe

With the wheel, every executor needs `saener` installed and the model fetched once per node;
with `--cli`, the `saener` binary on every node's PATH (and the model) instead.
"""

import argparse
import os

from pyspark.sql import SparkSession


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("input")
    parser.add_argument("output")
    parser.add_argument("--profile", default="conll2003")
    parser.add_argument("--cli", default=None, help="pipe through this saener binary instead")
    args = parser.parse_args()

    spark = SparkSession.builder.appName("saener").getOrCreate()
    if args.cli:
        lines = spark.sparkContext.textFile(args.input)
        # pipe() passes the command only `env`: HOME (or SAENER_HOME) locates the model.
        env = {k: os.environ[k] for k in ("HOME", "SAENER_HOME", "PATH") if k in os.environ}
        command = f"{args.cli} annotate --profile {args.profile}"
        lines.pipe(command, env=env).saveAsTextFile(args.output)
    else:
        from saener.spark import annotate

        df = spark.read.json(args.input)
        annotate(df, profile=args.profile).write.json(args.output)
    spark.stop()


if __name__ == "__main__":
    main()
