#!/usr/bin/env bash
# Memory and time of the forward pass against document length (BENCHMARKS.md, "Long
# documents"): one document of about N tokens, made of NCBI-disease abstracts from fixtures/
# (public domain), through `saener residuals --layer L`, timed with GNU time (wall seconds and
# peak RSS of the whole process, model load included). Each length is one run.
#
#   bash bench/long_documents.sh                   # layer 9; 1k to 32k tokens
#   LAYER=17 LENGTHS="1024 8192" bash bench/long_documents.sh
#
# With the default window (the model's 32k context) every length here is read whole; the
# longest is past the context and shows a seam.
set -euo pipefail
cd "$(dirname "$0")/.."
source bench/common.sh
LAYER=${LAYER:-9}
LENGTHS=${LENGTHS:-"1024 2048 4096 8192 16384 32768 40000"}
BIN=${SAENER_BIN:-target/release/saener}
[ -n "${SAENER_BIN:-}" ] || cargo build --release --quiet -p saener
WORK=$(mktemp -d)
trap 'rm -rf "$WORK"' EXIT
# The abstracts' words, sentence by sentence, repeated as often as the longest length needs.
python3 - "$WORK/words.txt" <<'PY'
import sys
words = [l.split("\t")[0] for l in open("fixtures/data/ncbi_disease/train.conll", encoding="utf-8")
         if l.strip() and not l.startswith("-DOCSTART-")]
open(sys.argv[1], "w", encoding="utf-8").write(" ".join(words))
PY
lscpu | sed -n 's/^Model name: *//p'
printf '%8s %10s %10s %12s\n' tokens words seconds peak_RSS_MB
for n in $LENGTHS; do
  # About 1.4 tokens a word in this text; the exact count is printed.
  python3 - "$WORK/words.txt" "$n" "$WORK/doc.jsonl" <<'PY'
import json, sys
words = open(sys.argv[1], encoding="utf-8").read().split()
want = int(int(sys.argv[2]) / 1.4)
text = " ".join((words * (want // len(words) + 1))[:want])
open(sys.argv[3], "w", encoding="utf-8").write(json.dumps({"id": "doc", "text": text}) + "\n")
PY
  /usr/bin/time -f '%e %M' -o "$WORK/time" "$BIN" residuals --layer "$LAYER" \
    --input "$WORK/doc.jsonl" --out "$WORK/out" > "$WORK/status.jsonl"
  tokens=$(jq -r '.tokens' "$WORK/status.jsonl")
  read -r secs kb < "$WORK/time"
  printf '%8s %10s %10s %12s\n' "$tokens" "$(jq -r '.text | split(" ") | length' "$WORK/doc.jsonl")" \
    "$secs" "$((kb / 1024))"
done
