"""The spaCy component against `saener annotate`, modulo the documented token alignment."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

spacy = pytest.importorskip("spacy")

from conftest import REPO, cli_annotate  # noqa: E402


def expected_spans(doc, entities):
    """The CLI's entities under the component's documented rule: each expanded to the
    tokens it overlaps, overlaps resolved by `filter_spans`."""
    spans = [doc.char_span(e["start"], e["end"], label=e["label"], alignment_mode="expand")
             for e in entities]
    return [(s.start_char, s.end_char, s.label_)
            for s in spacy.util.filter_spans([s for s in spans if s is not None])]


def check_pipe(nlp, saener_bin, texts, profile="conll2003"):
    rows = [{"id": str(i), "text": t} for i, t in enumerate(texts)]
    cli = cli_annotate(saener_bin, rows, profile=profile)
    docs = list(nlp.pipe(texts, batch_size=16))
    exact = 0
    for doc, record in zip(docs, cli):
        got = [(e.start_char, e.end_char, e.label_) for e in doc.ents]
        assert got == expected_spans(doc, record["entities"])
        cli_spans = [(e["start"], e["end"], e["label"]) for e in record["entities"]]
        exact += got == cli_spans
    return docs, cli, exact


@pytest.fixture(scope="module")
def nlp():
    nlp = spacy.blank("en")
    nlp.add_pipe("saener_ner", config={"profile": "conll2003"})  # found by entry point
    return nlp


def example_texts():
    rows = [json.loads(l) for l in (REPO / "examples/news.jsonl").read_text().splitlines()]
    lines = (REPO / "examples/programming.txt").read_text().splitlines()
    return [r["text"] for r in rows] + [l for l in lines if l.strip()]


def test_pipe_equals_cli(nlp, saener_bin):
    docs, cli, exact = check_pipe(nlp, saener_bin, example_texts())
    assert sum(len(d.ents) for d in docs) > 0
    # spaCy's English tokens and saener's words agree on nearly all of this text.
    assert exact >= 0.9 * len(docs)


def test_extensions_and_single_call(nlp, saener_bin):
    text = "Maria Keller, a researcher at the University of Geneva, told Reuters on Monday."
    doc = nlp(text)
    (record,) = cli_annotate(saener_bin, [{"id": "x", "text": text}])
    assert doc.ents
    by_span = {(e["start"], e["end"]): e for e in record["entities"]}
    for ent in doc.ents:
        source = by_span.get((ent.start_char, ent.end_char))
        if source is not None:
            assert ent._.saener_score == source["score"]
            assert ent._.saener_evidence == source["evidence"]


def test_spans_key(saener_bin):
    nlp = spacy.blank("en")
    nlp.add_pipe("saener_ner", config={"spans_key": "sae"})
    doc = nlp("Angela Merkel visited Paris and London.")
    assert not doc.ents and len(doc.spans["sae"]) > 0


# The shared reference folder, found as the Rust tests find it (crates/test-support):
# $SAENER_SHARED, else shared/ beside the checkout; with SAENER_REQUIRE_SHARED set (CI) a
# missing file fails the test instead of skipping it.
SHARED = Path(os.environ.get("SAENER_SHARED") or REPO.parent / "shared")
CONLL = SHARED / "data/conll2003/test.conll"
REQUIRE_SHARED = os.environ.get("SAENER_REQUIRE_SHARED", "") not in ("", "0")


@pytest.mark.skipif(not CONLL.exists() and not REQUIRE_SHARED,
                    reason="CoNLL-2003 is not in the repository (research-only); set SAENER_SHARED")
def test_conll_test_text(nlp, saener_bin):
    """CoNLL-2003 test sentences (read from ../shared at run time, never copied)."""
    sentences, words = [], []
    for line in CONLL.read_text().splitlines() + [""]:
        if not line.strip() or line.startswith("-DOCSTART-"):
            if words:
                sentences.append(" ".join(words))
                words = []
            continue
        words.append(line.split()[0])
    docs, _, exact = check_pipe(nlp, saener_bin, sentences[:300])
    assert exact >= 0.9 * len(docs)
