#!/usr/bin/env bash
# Reproduces the "Count-based decoders (issue 11)" ablation of RESULTS.md: for each benchmark,
# the shipped noisy-or profile, then naive-Bayes profiles with (1) the word's own features,
# (2) + neighbour words' features, (3) + Viterbi decoding with counted transitions. Every
# parameter is chosen on dev (BC5CDR: on the last 20 % of train, as bench/results.sh does);
# the reported split (test; BC5CDR dev) is evaluated once per profile.
#
#   bash bench/decoders.sh            # all three benchmarks (~20 min with warm code caches)
#   bash bench/decoders.sh ncbi_disease
#
# Writes results/decoders/<benchmark>-<decoder>.{json,sweep.jsonl,eval.json,log}.
set -euo pipefail
cd "$(dirname "$0")/.."
DATA=${SAENER_SHARED:-../shared}/data
OUT=results/decoders
mkdir -p "$OUT"
saener() {
  if [ -n "${SAENER_BIN:-}" ]; then "$SAENER_BIN" "$@"; else cargo run --release --quiet -p saener -- "$@"; fi
}

# One grid for every benchmark and naive-Bayes variant; the variants differ only in the
# offsets and the decoding mode.
GRID=(--decoder naive-bayes --tau 80,125 --s-min 3 --nb-alpha 0.5
      --nb-scale 0.12,0.25,0.5 --nb-absence 0.5,1 --nb-bias=-8,-6,-4,-2,0,2 --nb-weight 0,0.5,1)
declare -A VARIANT=(
  [nb]="--nb-viterbi false"
  [nb-window]="--nb-viterbi false --nb-offsets=-1,1,2"
  [nb-window-viterbi]="--nb-viterbi true --nb-offsets=-1,1,2"
)

BENCHES=("$@")
[ ${#BENCHES[@]} -gt 0 ] || BENCHES=(conll2003 ncbi_disease bc5cdr)
for bench in "${BENCHES[@]}"; do
  if [ "$bench" = bc5cdr ]; then
    choose=(--holdout 0.2); report="$DATA/bc5cdr/dev.conll"
  else
    choose=(--dev "$DATA/$bench/dev.conll"); report="$DATA/$bench/test.conll"
  fi
  # Baseline: the shipped noisy-or profile.
  saener eval --profile "$bench" --data "$report" --json "$OUT/$bench-noisy-or.eval.json" \
    2> >(tee "$OUT/$bench-noisy-or.log" >&2)
  for variant in nb nb-window nb-window-viterbi; do
    # shellcheck disable=SC2086
    saener calibrate --data "$DATA/$bench/train.conll" "${choose[@]}" "${GRID[@]}" \
      ${VARIANT[$variant]} --out "$OUT/$bench-$variant.json" \
      --sweep-out "$OUT/$bench-$variant.sweep.jsonl" 2> >(tee "$OUT/$bench-$variant.log" >&2)
    saener eval --profile "$OUT/$bench-$variant.json" --data "$report" \
      --json "$OUT/$bench-$variant.eval.json" 2> >(tee -a "$OUT/$bench-$variant.log" >&2)
  done
done
