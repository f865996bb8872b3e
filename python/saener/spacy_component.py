"""The spaCy component ``saener_ner``:

    nlp = spacy.blank("en")
    nlp.add_pipe("saener_ner", config={"profile": "conll2003"})

registered through the ``spacy_factories`` entry point, so spaCy finds it without an import.

Alignment rule: saener finds entities as character spans (code points, which are spaCy's
character offsets too). Each becomes the smallest run of spaCy tokens that covers it
(``Doc.char_span(..., alignment_mode="expand")``): an entity that starts or ends inside a
token takes the whole token. If two entities then overlap, the longer is kept (then the
earlier; ``spacy.util.filter_spans``). With the tokenizer of ``spacy.blank("en")`` and
ordinary text the two agree almost always; they differ where spaCy's tokens are coarser
than saener's words (e.g. "U.S.-based").

Entities go to ``doc.ents`` (replacing any there), or to ``doc.spans[spans_key]`` when
``spans_key`` is set. Each span carries ``span._.saener_score`` (the mean word score, 0-1)
and ``span._.saener_evidence`` (the features that voted, as ``saener annotate`` writes
them). ``nlp.pipe`` sends ``batch_size`` documents per call to the model; a document the model
fails on raises :class:`saener.SaenerError`.
"""

from __future__ import annotations

import json
from typing import Iterable, Iterator, Optional

from spacy.language import Language
from spacy.tokens import Doc, Span
from spacy.util import filter_spans, minibatch

from . import Pipeline
from .errors import SaenerError

for _name in ("saener_score", "saener_evidence"):
    if not Span.has_extension(_name):
        Span.set_extension(_name, default=None)


class SaenerNER:
    """Writes saener's entities onto spaCy docs (see the module doc for the rules)."""

    def __init__(
        self,
        nlp: Language,
        name: str,
        profile: str,
        sae: Optional[str],
        model: Optional[str],
        spans_key: Optional[str],
        batch_size: int,
        model_batch_size: int,
    ) -> None:
        self.name = name
        self.spans_key = spans_key
        self.batch_size = max(1, batch_size)
        self.pipeline = Pipeline(
            profile, sae, model, batch_size=model_batch_size, chunk=self.batch_size
        )

    def __call__(self, doc: Doc) -> Doc:
        return next(iter(self.pipe([doc])))

    def pipe(self, stream: Iterable[Doc], *, batch_size: Optional[int] = None) -> Iterator[Doc]:
        for docs in minibatch(stream, size=batch_size or self.batch_size):
            results = self.pipeline.annotate_json([doc.text for doc in docs])
            for doc, (_, entities, error) in zip(docs, results):
                if error is not None:
                    raise SaenerError(error)
                self.set_annotations(doc, json.loads(entities))
                yield doc

    def set_annotations(self, doc: Doc, entities: list[dict]) -> None:
        spans = []
        for entity in entities:
            span = doc.char_span(
                entity["start"], entity["end"], label=entity["label"], alignment_mode="expand"
            )
            if span is None:  # only whitespace between tokens: nothing to cover
                continue
            span._.saener_score = entity["score"]
            span._.saener_evidence = entity["evidence"]
            spans.append(span)
        spans = filter_spans(spans)
        if self.spans_key is None:
            doc.ents = spans
        else:
            doc.spans[self.spans_key] = spans


@Language.factory(
    "saener_ner",
    default_config={
        "profile": "conll2003",
        "sae": None,
        "model": None,
        "spans_key": None,
        "batch_size": 64,
        "model_batch_size": 16,
    },
)
def make_saener_ner(
    nlp: Language,
    name: str,
    profile: str,
    sae: Optional[str],
    model: Optional[str],
    spans_key: Optional[str],
    batch_size: int,
    model_batch_size: int,
) -> SaenerNER:
    """``profile``, ``sae``, ``model``: as :class:`saener.Pipeline`; ``spans_key``: write
    ``doc.spans[spans_key]`` instead of ``doc.ents``; ``batch_size``: documents per model
    call in ``nlp.pipe``; ``model_batch_size``: sequences per forward pass."""
    return SaenerNER(nlp, name, profile, sae, model, spans_key, batch_size, model_batch_size)
