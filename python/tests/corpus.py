"""A deterministic test corpus written for these tests (no third-party text): short news-like
sentences from templates, plus the repository's examples, plus a few bad records."""

from __future__ import annotations

import json
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]

PEOPLE = ["Maria Keller", "John Okafor", "Li Wei", "Anna Schmidt", "Carlos Mendes",
          "Fatima Haddad", "Peter Novak", "Yuki Tanaka", "Olga Petrova", "James Walker"]
PLACES = ["Paris", "Nairobi", "Geneva", "Toronto", "Osaka", "Lisbon", "Cairo", "Oslo",
          "Lima", "Hamburg"]
ORGS = ["the World Bank", "Siemens", "the United Nations", "Toyota", "the Red Cross",
        "Reuters", "Nordwind Energy", "the University of Geneva", "Airbus", "UNICEF"]
TEMPLATES = [
    "{p} flew to {c} on Monday to meet officials from {o}.",
    "{o} said {p} would lead its new office in {c}.",
    "In {c}, {p} told reporters that {o} had no plans to expand.",
    "{p} and {q} signed the agreement with {o} in {c} last week.",
    "Shares of {o} fell 3 percent in {c} after {p} resigned.",
    "The mayor of {c} thanked {o} for its support.",
    "{p}, a spokesman for {o}, declined to comment.",
    "Police in {c} said {p} was released on Tuesday.",
]


def records(n: int = 1000) -> list[dict]:
    """`n` JSONL records {"id", "text"}; every 97th record is bad (null text, a number, no
    text) so the error path is exercised too."""
    extra = [json.loads(l) for l in (REPO / "examples" / "news.jsonl").read_text().splitlines() if l.strip()]
    extra += [{"text": l} for l in (REPO / "examples" / "programming.txt").read_text().splitlines() if l.strip()]
    out = []
    for i in range(n):
        rid = f"doc-{i:04d}"
        if i % 97 == 50:
            bad = [{"id": rid, "text": None}, {"id": rid, "text": 7}, {"id": rid}][i % 3]
            out.append(bad)
        elif i % 5 == 4:
            out.append({"id": rid, "text": extra[i % len(extra)]["text"]})
        else:
            t = TEMPLATES[i % len(TEMPLATES)]
            out.append({"id": rid, "text": t.format(
                p=PEOPLE[i % 10], q=PEOPLE[(i * 7 + 3) % 10], c=PLACES[(i // 3) % 10],
                o=ORGS[(i // 7) % 10])})
    return out


def write_jsonl(path: Path, rows: list[dict]) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path
