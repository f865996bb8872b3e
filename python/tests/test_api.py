"""The Python API against the CLI: same entities, same errors, thread sharing."""

from __future__ import annotations

import json
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest

import saener
from conftest import REPO, cli_annotate, cli_error, without_location


def example_rows() -> list[dict]:
    rows = [json.loads(l) for l in (REPO / "examples/news.jsonl").read_text().splitlines()]
    lines = (REPO / "examples/programming.txt").read_text().splitlines()
    return rows + [{"id": f"prog-{i}", "text": t} for i, t in enumerate(lines) if t.strip()]


def test_annotate_equals_cli(pipeline, saener_bin):
    rows = example_rows()
    expected = cli_annotate(saener_bin, rows)
    assert pipeline.annotate_records(rows) == expected
    # Plain strings give the same entities as {"id","text"} records.
    assert pipeline.annotate([r["text"] for r in rows]) == [r["entities"] for r in expected]
    assert any(r["entities"] for r in expected), "the examples have entities"


def test_entity_fields(pipeline):
    text = "Maria Keller met officials of the World Health Organization in Nairobi, Kenya."
    (entities,) = pipeline.annotate([text])
    assert entities
    for e in entities:
        assert set(e) == {"start", "end", "text", "label", "score", "evidence"}
        assert text[e["start"]:e["end"]] == e["text"]  # code points, as str indexes
        assert 0.0 <= e["score"] <= 1.0
        assert e["evidence"] and {"feature", "precision"} <= set(e["evidence"][0])


def test_code_point_offsets(pipeline, saener_bin):
    rows = [{"id": "u", "text": "Zoë Müller 😀 flew from Zürich to São Paulo with Renée."}]
    (expected,) = cli_annotate(saener_bin, rows)
    (got,) = pipeline.annotate(rows)
    assert got == expected["entities"]
    for e in got:
        assert rows[0]["text"][e["start"]:e["end"]] == e["text"]


def test_bad_records_match_cli(pipeline, saener_bin):
    rows = [{"id": "a", "text": None}, {"id": "b", "text": 3}, {"id": "c"}, [1, 2],
            {"id": 5, "text": "Paris is in France."}]
    expected = cli_annotate(saener_bin, rows)
    got = pipeline.annotate_records(rows)
    assert [without_location(r) for r in got] == [without_location(r) for r in expected]
    assert [r["id"] for r in got] == ["a", "b", "c", "line4", "5"]


@pytest.mark.parametrize("bad", [None, b"bytes", 3, ["ok", None], ["ok", b"x"], [{"id": "x"}], "one text"])
def test_bad_input_raises_input_error(pipeline, bad):
    with pytest.raises(saener.InputError) as e:
        pipeline.annotate(bad)
    assert isinstance(e.value, TypeError) and isinstance(e.value, saener.SaenerError)


def test_missing_profile_has_cli_message(saener_bin):
    expected = cli_error(saener_bin, ["annotate", "--profile", "no_such_profile"], "{}\n")
    with pytest.raises(saener.ProfileError) as e:
        saener.Pipeline(profile="no_such_profile")
    assert str(e.value) == expected
    assert "conll2003" in str(e.value)


def test_corrupt_model_has_cli_message(saener_bin, tmp_path):
    bad = tmp_path / "corrupt.gguf"
    bad.write_bytes(b"GGUF" + bytes(range(256)) * 8)
    expected = cli_error(saener_bin, ["annotate", "--profile", "conll2003", "--model", str(bad)],
                         '{"text":"x"}\n')
    with pytest.raises(saener.ModelError) as e:
        saener.Pipeline(profile="conll2003", model=bad)
    assert str(e.value) == expected


def test_missing_model_has_cli_message(saener_bin, tmp_path):
    missing = tmp_path / "absent.gguf"
    expected = cli_error(saener_bin, ["annotate", "--profile", "conll2003", "--model", str(missing)],
                         '{"text":"x"}\n')
    with pytest.raises(saener.ModelError) as e:
        saener.Pipeline(profile="conll2003", model=missing)
    assert str(e.value) == expected


def test_shared_between_threads(pipeline):
    rows = example_rows()
    alone = pipeline.annotate(rows)
    with ThreadPoolExecutor(4) as pool:
        results = list(pool.map(lambda part: pipeline.annotate(part), [rows[i::4] for i in range(4)]))
    for i, part in enumerate(results):
        assert part == alone[i::4]


def test_residuals(pipeline):
    r9 = pipeline.residuals("Paris is in France.", 9)
    r3 = pipeline.residuals("Paris is in France.", 3)
    assert r9.dtype == np.float32 and r9.ndim == 2 and r9.shape == r3.shape
    assert r9.shape[1] == 640 and r9.shape[0] >= 5
    assert np.isfinite(r9).all() and not np.allclose(r9, r3)
    with pytest.raises(saener.InputError, match="out of range"):
        pipeline.residuals("Paris", 99)


def test_codes_are_the_sae_of_the_residuals(pipeline):
    text = "Angela Merkel visited Paris."
    codes = pipeline.codes(text)
    residuals = pipeline.residuals(text, pipeline.layer)
    assert codes.shape == (residuals.shape[0], 16384)
    assert codes.indptr[-1] == len(codes.indices) == len(codes.data)
    assert (codes.data > 0).all()
    dense = codes.toarray()
    assert dense.shape == codes.shape and (dense > 0).sum() == len(codes.data)
    scipy = pytest.importorskip("scipy")  # noqa: F841
    assert np.array_equal(codes.to_scipy().toarray(), dense)


def test_profiles(pipeline):
    names = saener.profiles()
    assert {"conll2003", "ncbi_disease", "bc5cdr"} <= set(names)
    assert pipeline.profiles() == names


def test_other_profile(saener_bin):
    rows = [{"id": "bio", "text": "Patients with cystic fibrosis received ivacaftor, and two had acute pancreatitis."}]
    nlp = saener.Pipeline(profile="ncbi_disease")
    assert nlp.annotate_records(rows) == cli_annotate(saener_bin, rows, profile="ncbi_disease")
