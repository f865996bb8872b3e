"""Shared fixtures: the `saener` CLI that outputs are compared with, one loaded pipeline, the
test corpus and its CLI annotation (computed once per session)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))
import corpus  # noqa: E402

import saener  # noqa: E402

REPO = corpus.REPO


def cli_binary() -> str | None:
    """`$SAENER_BIN`, else the workspace's release or debug build."""
    for candidate in (os.environ.get("SAENER_BIN"), REPO / "target/release/saener",
                      REPO / "target/debug/saener"):
        if candidate and Path(candidate).is_file():
            return str(Path(candidate).resolve())
    return None


@pytest.fixture(scope="session")
def saener_bin() -> str:
    binary = cli_binary()
    if binary is None:
        pytest.skip("no saener binary: build it (cargo build -p saener) or set SAENER_BIN")
    return binary


def run_cli(binary: str, args: list[str], stdin: str) -> subprocess.CompletedProcess:
    return subprocess.run([binary, *args], input=stdin, capture_output=True, text=True)


def cli_annotate(binary: str, rows: list[dict], profile: str = "conll2003",
                 extra: tuple[str, ...] = ()) -> list[dict]:
    """`saener annotate` on `rows` as JSONL on stdin: its output records, parsed."""
    stdin = "".join(json.dumps(r) + "\n" for r in rows)
    done = run_cli(binary, ["annotate", "--profile", profile, *extra], stdin)
    assert done.returncode == 0, done.stderr
    return [json.loads(line) for line in done.stdout.splitlines()]


def cli_error(binary: str, args: list[str], stdin: str = "") -> str:
    """The message of a failing CLI run (its `error: ` line without the prefix)."""
    done = run_cli(binary, args, stdin)
    assert done.returncode != 0
    line = [l for l in done.stderr.splitlines() if l.startswith("error: ")][-1]
    return line[len("error: "):]


@pytest.fixture(scope="session")
def pipeline() -> saener.Pipeline:
    return saener.Pipeline(profile="conll2003")


@pytest.fixture(scope="session")
def records() -> list[dict]:
    return corpus.records(1000)


@pytest.fixture(scope="session")
def cli_records(saener_bin, records) -> list[dict]:
    return cli_annotate(saener_bin, records)


def without_location(record: dict) -> dict:
    """A record with its error's location ("stdin: line N: " / "id X: ") cut off, for
    comparing the CLI's errors with the Python package's ones."""
    if "error" not in record:
        return record
    message = record["error"]
    for marker in ("missing field", "field 'text'", "expected a JSON object"):
        at = message.find(marker)
        if at >= 0:
            return {"id": record["id"], "error": message[at:]}
    return record
