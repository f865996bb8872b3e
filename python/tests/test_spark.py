"""Spark local mode: `mapInPandas` with the package and `RDD.pipe` with the CLI, both equal
to `saener annotate` record for record."""

from __future__ import annotations

import json
import os
import sys

import pytest

pytest.importorskip("pyspark")

from conftest import without_location  # noqa: E402


@pytest.fixture(scope="module")
def spark():
    from pyspark.sql import SparkSession

    os.environ.setdefault("PYSPARK_PYTHON", sys.executable)
    session = (
        SparkSession.builder.master("local[2]")
        .appName("saener-test")
        .config("spark.ui.enabled", "false")
        .config("spark.sql.execution.arrow.maxRecordsPerBatch", "64")
        .getOrCreate()
    )
    yield session
    session.stop()


def test_map_in_pandas_equals_cli(spark, records, cli_records):
    from saener.spark import annotate

    rows = [(r["id"], r.get("text") if isinstance(r.get("text"), str) else None) for r in records]
    df = spark.createDataFrame(rows, "id string, text string").repartition(2)
    out = {r["id"]: r for r in annotate(df, profile="conll2003").collect()}
    assert len(out) == len(records)
    for expected in cli_records:
        row = out[expected["id"]]
        if "error" in expected:
            # Spark's string column holds a number or a missing text as null.
            assert row["entities"] is None and "field 'text'" in row["error"]
        else:
            assert row["error"] is None
            assert json.loads(row["entities"]) == expected["entities"]


def cli_env() -> dict:
    """`RDD.pipe` starts the command with only the environment it is given (not even HOME),
    so pass what the CLI needs to find the model: without HOME or SAENER_HOME it would
    fetch a second copy into the working folder."""
    return {k: os.environ[k] for k in ("HOME", "SAENER_HOME", "PATH") if k in os.environ}


def test_rdd_pipe_with_cli_equals_cli(spark, saener_bin, records, cli_records):
    lines = [json.dumps(r) for r in records]
    out = (
        spark.sparkContext.parallelize(lines, 2)
        .pipe(f"{saener_bin} annotate --profile conll2003", env=cli_env())
        .collect()
    )
    got = {r["id"]: r for r in map(json.loads, out)}
    assert len(got) == len(records)
    # Each partition is its own stdin, so an error's line number counts within it.
    assert [without_location(got[r["id"]]) for r in cli_records] == [
        without_location(r) for r in cli_records
    ]
