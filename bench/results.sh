#!/usr/bin/env bash
# Reproduces RESULTS.md: calibrates the three shipped profiles (parameters chosen on dev, or
# for BC5CDR on 20 % of train, never on the reported split) and evaluates them.
#
#   bash bench/results.sh profiles   # re-calibrate models/<sae>/profiles/*.json (~15 min cold)
#   bash bench/results.sh eval       # evaluate the shipped profiles into results/ (~5 min cold)
#
# Codes are cached under $SAENER_HOME/codes, so a second run takes seconds per step.
set -euo pipefail
cd "$(dirname "$0")/.."
DATA=${SAENER_SHARED:-../shared}/data
PROFILES=models/gemma3-270m-l9-topk64-16k/profiles
saener() {
  if [ -n "${SAENER_BIN:-}" ]; then "$SAENER_BIN" "$@"; else cargo run --release --quiet -p saener -- "$@"; fi
}

case "${1:-}" in
profiles)
  mkdir -p results
  # One grid for all three; the sweeps that narrowed it are in RESULTS.md.
  GRID=(--tau 80,100,125,150 --p-min 0.1,0.15,0.2,0.3 --s-min 3,10
        --threshold 0.6,0.7,0.8,0.9,0.95 --extend none,0.4,0.5,0.7)
  saener calibrate --data "$DATA/conll2003/train.conll" --dev "$DATA/conll2003/dev.conll" \
    "${GRID[@]}" --out "$PROFILES/conll2003.json" --sweep-out results/conll2003-sweep.jsonl
  saener calibrate --data "$DATA/ncbi_disease/train.conll" --dev "$DATA/ncbi_disease/dev.conll" \
    "${GRID[@]}" --out "$PROFILES/ncbi_disease.json" --sweep-out results/ncbi_disease-sweep.jsonl
  saener calibrate --data "$DATA/bc5cdr/train.conll" --holdout 0.2 \
    "${GRID[@]}" --out "$PROFILES/bc5cdr.json" --sweep-out results/bc5cdr-sweep.jsonl
  ;;
eval)
  mkdir -p results
  saener eval --profile conll2003 --data "$DATA/conll2003/test.conll" --json results/conll2003-test.json
  saener eval --profile conll2003 --data "$DATA/conll2003/test.conll" --context sentence \
    --json results/conll2003-test-sentence.json
  saener eval --profile ncbi_disease --data "$DATA/ncbi_disease/test.conll" --json results/ncbi_disease-test.json
  saener eval --profile bc5cdr --data "$DATA/bc5cdr/dev.conll" --json results/bc5cdr-dev.json
  ;;
*)
  echo "usage: bash bench/results.sh profiles|eval" >&2
  exit 2
  ;;
esac
