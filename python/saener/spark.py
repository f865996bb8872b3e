"""Corpus-scale annotation on Spark with the Python package (``mapInPandas``):

    from saener.spark import annotate
    df = spark.read.json("corpus.jsonl")                # columns id, text
    annotate(df, profile="conll2003").write.json("entities/")

Each Python worker loads the pipeline once and keeps it for the tasks it runs after. The
result has columns ``id``, ``entities`` (the JSON array ``saener annotate`` writes) and
``error`` (``None``, or the CLI's message for a record it cannot annotate).

Without the package on the workers, pipe JSONL through the CLI instead (it reads JSONL on
stdin and writes one line per record, in order):

    lines = sc.textFile("corpus.jsonl")
    env = {"HOME": os.environ["HOME"], "PATH": os.environ["PATH"]}
    lines.pipe("saener annotate --profile conll2003", env=env).saveAsTextFile("entities/")

(``RDD.pipe`` gives the command only the environment passed as ``env``: without ``HOME`` or
``SAENER_HOME`` the CLI would not find the model it fetched and would fetch it again.)
"""

from __future__ import annotations

from typing import Any, Iterator, Optional

SCHEMA = "id string, entities string, error string"

_pipelines: dict = {}


def _pipeline(profile: str, sae: Optional[str], model: Optional[str], batch_size: int, chunk: int):
    from . import Pipeline

    key = (profile, sae, model, batch_size, chunk)
    if key not in _pipelines:
        _pipelines[key] = Pipeline(profile, sae, model, batch_size=batch_size, chunk=chunk)
    return _pipelines[key]


def annotate_batches(
    batches: Iterator[Any],
    profile: str = "conll2003",
    sae: Optional[str] = None,
    model: Optional[str] = None,
    batch_size: int = 16,
    chunk: int = 64,
) -> Iterator[Any]:
    """The function for ``DataFrame.mapInPandas`` (schema :data:`SCHEMA`): pandas frames
    with ``id`` and ``text`` columns in, ``id``, ``entities``, ``error`` out."""
    import pandas as pd

    from .ray import _values

    pipeline = _pipeline(profile, sae, model, batch_size, chunk)
    for frame in batches:
        texts = _values(frame["text"])
        ids = _values(frame["id"]) if "id" in frame.columns else [None] * len(texts)
        records = [
            {"text": t} if i is None else {"id": i, "text": t} for i, t in zip(ids, texts)
        ]
        results = pipeline.annotate_json(records, where="id")
        yield pd.DataFrame(
            {
                "id": [rid for rid, _, _ in results],
                "entities": [entities for _, entities, _ in results],
                "error": [error for _, _, error in results],
            }
        )


def annotate(df: Any, profile: str = "conll2003", **kwargs: Any) -> Any:
    """``df`` (a Spark DataFrame with ``id``, ``text``) annotated: see the module doc."""
    from functools import partial

    return df.mapInPandas(partial(annotate_batches, profile=profile, **kwargs), SCHEMA)
