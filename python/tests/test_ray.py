"""Ray Data on a local cluster: `map_batches(saener.ray.Annotator, ...)` over 1,000 records
equals `saener annotate` record for record, bad records included."""

from __future__ import annotations

import json

import pytest

ray = pytest.importorskip("ray")



@pytest.fixture(scope="module")
def local_ray():
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    yield
    ray.shutdown()


def test_ray_equals_cli(local_ray, records, cli_records):
    import saener.ray

    ctx = ray.data.DataContext.get_current()
    ctx.execution_options.preserve_order = True
    # An Arrow column holds one type: a text that is a number or missing travels as null.
    rows = [{"id": r["id"], "text": r.get("text") if isinstance(r.get("text"), str) else None}
            for r in records]
    out = (
        ray.data.from_items(rows)
        .map_batches(
            saener.ray.Annotator,
            fn_constructor_kwargs={"profile": "conll2003"},
            concurrency=2,
            batch_size=64,
            batch_format="pandas",
        )
        .take_all()
    )
    assert len(out) == len(records) >= 1000
    assert [row["id"] for row in out] == [r["id"] for r in cli_records]
    errors = 0
    for row, expected in zip(out, cli_records):
        if "error" in expected:
            # The CLI names a bad record by its line, Ray by its id.
            assert row["entities"] is None
            assert row["error"] == f"id {row['id']}: field 'text': expected a string, found null"
            errors += 1
        else:
            assert row["error"] is None, row["error"]
            assert json.loads(row["entities"]) == expected["entities"], row["id"]
    assert errors >= 10
