#!/usr/bin/env bash
# The longest request `saener serve` accepts by default against its request timeout
# (BENCHMARKS.md, "Serving: the longest document"): one document of exactly the per-document
# limit (100,000 characters of news-style sentences written for this test from a seeded
# template, no corpus text), timed with curl after a one-sentence warm-up request.
#
#   cargo build --release -p saener && bash bench/longest_request.sh
set -euo pipefail
cd "$(dirname "$0")/.."
BIN=${SAENER_BIN:-target/release/saener}
PORT=${PORT:-8097}
WORK=$(mktemp -d)
trap 'kill $SERVER 2>/dev/null || true; rm -rf "$WORK"' EXIT
python3 - "$WORK/doc.json" <<'PY'
import json, random, sys
rng = random.Random(26)
names = ["Angela Merkel", "Maria Keller", "John Smith", "Aiko Tanaka", "Pedro Alvarez"]
places = ["Paris", "Nairobi", "Frankfurt", "Osaka", "Lima", "Geneva"]
orgs = ["the World Health Organization", "Nordwind Energy", "the University of Geneva",
        "Reuters", "the European Commission"]
verbs = ["met officials of", "criticised", "signed an agreement with", "visited"]
text = ""
while len(text) < 100_000:
    text += (f"{rng.choice(names)} {rng.choice(verbs)} {rng.choice(orgs)} in "
             f"{rng.choice(places)} on Monday, a spokesman said. ")
json.dump({"documents": [{"text": text[:100_000]}]}, open(sys.argv[1], "w"))
PY
lscpu | sed -n 's/^Model name: *//p'
"$BIN" serve --port "$PORT" --profile conll2003 --timeout-secs 900 >"$WORK/serve.log" 2>&1 &
SERVER=$!
for _ in $(seq 300); do curl -sf "http://127.0.0.1:$PORT/healthz" >/dev/null && break; sleep 1; done
curl -sf "http://127.0.0.1:$PORT/v1/annotate" -H 'content-type: application/json' \
  -d '{"documents":[{"text":"Angela Merkel visited Paris."}]}' >/dev/null
seconds=$(curl -sf -o "$WORK/out.json" -w '%{time_total}' "http://127.0.0.1:$PORT/v1/annotate" \
  -H 'content-type: application/json' --data-binary @"$WORK/doc.json")
entities=$(python3 -c 'import json,sys; print(len(json.load(open(sys.argv[1]))["documents"][0]["entities"]))' "$WORK/out.json")
echo "100,000 characters: ${seconds} s, ${entities} entities (default --timeout-secs: 120)"
