"""Corpus-scale annotation on Ray Data, one model per actor:

    import ray, saener.ray
    ds = ray.data.read_json("corpus.jsonl")             # rows {"id", "text"}
    out = ds.map_batches(
        saener.ray.Annotator,
        fn_constructor_kwargs={"profile": "conll2003"},
        concurrency=2,          # actors, each loads the model once
        batch_size=64,          # rows per call; the CLI's --chunk
    )
    out.write_json("entities/")

Each output row is the input row plus ``entities`` (the JSON array ``saener annotate``
writes, as a string) and ``error`` (``None``, or the CLI's message for a record it cannot
annotate, e.g. a null or non-string ``text``): the job goes on past bad records.
"""

from __future__ import annotations

from typing import Any, Optional

from . import Pipeline


class Annotator:
    """A callable class for ``Dataset.map_batches``: loads the pipeline once per actor."""

    def __init__(
        self,
        profile: str = "conll2003",
        sae: Optional[str] = None,
        model: Optional[str] = None,
        batch_size: int = 16,
        chunk: int = 64,
        id_column: str = "id",
        text_column: str = "text",
    ) -> None:
        self.pipeline = Pipeline(profile, sae, model, batch_size=batch_size, chunk=chunk)
        self.id_column = id_column
        self.text_column = text_column

    def __call__(self, batch: Any) -> Any:
        """Adds ``entities`` and ``error`` to a batch (a dict of columns, numpy or pandas)."""
        columns = {k: _values(v) for k, v in _columns(batch).items()}
        ids = columns.get(self.id_column)
        texts = columns.get(self.text_column)
        if texts is None:
            raise KeyError(f"the dataset has no {self.text_column!r} column")
        records = []
        for i, text in enumerate(texts):
            record = {"text": text}
            if ids is not None:
                record["id"] = ids[i]
            records.append(record)
        results = self.pipeline.annotate_json(records, where="id")
        columns["entities"] = [entities for _, entities, _ in results]
        columns["error"] = [error for _, _, error in results]
        return columns


def _columns(batch: Any) -> dict:
    if hasattr(batch, "to_dict") and hasattr(batch, "columns"):  # pandas
        return {c: batch[c] for c in batch.columns}
    return dict(batch)


def _values(column: Any) -> list:
    """Plain Python values: numpy scalars as Python ones, pandas' nulls (NA, NaN) as None."""
    values = column.tolist() if hasattr(column, "tolist") else list(column)
    if hasattr(column, "isna"):  # pandas
        return [None if null else v for v, null in zip(values, column.isna().tolist())]
    return [None if isinstance(v, float) and v != v else v for v in values]
