#!/usr/bin/env bash
# The SAE-scale lever of issue 11: SAE-NER F1 against the tokens its SAE was trained on.
# Each SAE has the shipped SAE's config (16,384 latents, TopK k = 64, same store: the first
# 115 shards of the layer-9 store of the model card), only --tokens differs; each is given
# BatchTopK's threshold as the shipped one was, scored by `sae eval` on the held-out corpus
# slice, then calibrated (train, parameters on dev) and evaluated (test) on CoNLL-2003 and
# NCBI-disease twice: with the noisy-or decoder (bench/results.sh's former grid) and with the
# shipped naive-Bayes decoder (common.sh's NB_FIXED_GRID). Every step resumes or is skipped
# when done.
#
#   bash bench/sae_curve.sh STORE CORPUS RUNS [TOKENS...]
#     STORE   the activation store (`saener residuals --store`, 115 shards)
#     CORPUS  the `saener corpus build` folder (its heldout.jsonl is read)
#     RUNS    where the SAEs and their reports go (tables to results/sae-curve/)
#     TOKENS  training tokens of each SAE (default: 500000 1000000 2000000)
#   CE_TOKENS (default 4096, as in the model card) sets `sae eval --ce-tokens`, its slow part.
#
# Codes come through the residual cache (--keep-residuals): the model runs over each
# corpus once, and every further SAE only re-encodes (~2.5 KB of disk per token).
set -euo pipefail
cd "$(dirname "$0")/.."
source bench/common.sh
STORE=$1 CORPUS=$2 RUNS=$3
shift 3
if [ $# -gt 0 ]; then TOKENS=("$@"); else TOKENS=(500000 1000000 2000000); fi
OUT=results/sae-curve
CONFIG=models/gemma3-270m-l9-topk64-16k/train-config.json
GRID=(--tau 80,100,125,150 --p-min 0.1,0.15,0.2,0.3 --s-min 3,10
      --threshold 0.6,0.7,0.8,0.9,0.95 --extend none,0.4,0.5,0.7)
mkdir -p "$OUT"
for t in "${TOKENS[@]}"; do
  run=$RUNS/t$t
  saener sae train --store "$STORE" --out "$run" --config "$CONFIG" --tokens "$t"
  [ -f "$run/sae-btk/config.json" ] ||
    saener sae threshold --text "$CORPUS/heldout.jsonl" --sae "$run/sae" --out "$run/sae-btk"
  [ -s "$OUT/t$t-sae-eval.json" ] ||
    saener sae eval --text "$CORPUS/heldout.jsonl" --sae "$run/sae" --ce-tokens "${CE_TOKENS:-4096}" \
      >"$OUT/t$t-sae-eval.json"
  for ds in conll2003 ncbi_disease; do
    calibrate_and_test "$run/sae-btk" "$ds" "$run/$ds.json" "$OUT/t$t-$ds-test.json" "${GRID[@]}"
    calibrate_and_test "$run/sae-btk" "$ds" "$run/$ds-nb.json" "$OUT/t$t-$ds-nb-test.json" \
      "${NB_FIXED_GRID[@]}"
  done
done
# One row per SAE: held-out FVU / dead fraction / CE recovered under TopK, then the best dev
# F1 of each sweep and the test F1, noisy-or then naive Bayes.
{
  echo "| training tokens | FVU | dead fraction | CE loss recovered | noisy-or: CoNLL dev | CoNLL test | NCBI dev | NCBI test | naive Bayes: CoNLL dev | CoNLL test | NCBI dev | NCBI test |"
  echo "|---|---|---|---|---|---|---|---|---|---|---|---|"
  for t in "${TOKENS[@]}"; do
    run=$RUNS/t$t
    dev() { best_dev_f1 "$run/$1-sweep.jsonl"; }
    test_f1() { pct "$OUT/t$t-$1-test.json" .strict.micro.f1; }
    printf '| %s | %s | %s | %s | %s | %s | %s | %s | %s | %s | %s | %s |\n' "$t" \
      "$(jq '.fvu * 1000 | round / 1000' "$OUT/t$t-sae-eval.json")" \
      "$(pct "$OUT/t$t-sae-eval.json" .dead_fraction)" \
      "$(pct "$OUT/t$t-sae-eval.json" .ce_loss_recovered)" \
      "$(dev conll2003)" "$(test_f1 conll2003)" "$(dev ncbi_disease)" "$(test_f1 ncbi_disease)" \
      "$(dev conll2003-nb)" "$(test_f1 conll2003-nb)" "$(dev ncbi_disease-nb)" "$(test_f1 ncbi_disease-nb)"
  done
} | tee "$OUT/table.md"
