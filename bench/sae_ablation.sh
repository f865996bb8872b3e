#!/usr/bin/env bash
# Issue 11's SAE levers at one training budget: layer (5, 9, 12) and width (16k, 32k), each
# SAE trained on the same documents (the first SHARDS shards of the rebuilt corpus, read at
# its layer, about 1 M tokens at the default 62) for one pass, given BatchTopK's threshold,
# then calibrated with the shipped decoder (common.sh's NB_FIXED_GRID, chosen on dev) and
# evaluated on test for CoNLL-2003 and NCBI-disease.
#
#   bash bench/sae_ablation.sh CORPUS RUNS [VARIANT...]
#     CORPUS   a `saener corpus build` folder (train.jsonl feeds the stores, heldout.jsonl the
#              threshold and `sae eval`)
#     RUNS     where stores, SAEs and profiles go; tables go to results/sae-ablation/
#     VARIANT  NAME:LAYER[:TRAIN FLAGS, comma-separated], default:
#              l9-16k:9  l9-32k:9:--d-sae,32768  l5-16k:5  l12-16k:12
#   SHARDS (default 62) store shards per layer; the trainer holds the last one out.
#   CE_TOKENS (default 512) tokens for `sae eval`'s CE loss, its slow part.
#
# Every step resumes or is skipped when its output exists, and the steps run phase by phase
# (all stores, all SAEs, then CoNLL-2003 for every SAE, then NCBI-disease), so an interrupted
# run has its most informative rows first. A store of the same corpus and layer with at
# least SHARDS shards can be linked in as RUNS/store-lLAYER (shard files and store.json).
set -euo pipefail
cd "$(dirname "$0")/.."
source bench/common.sh
CORPUS=$1 RUNS=$2
shift 2
if [ $# -gt 0 ]; then VARIANTS=("$@"); else
  VARIANTS=(l9-16k:9 l9-32k:9:--d-sae,32768 l5-16k:5 l12-16k:12)
fi
SHARDS=${SHARDS:-62}
OUT=results/sae-ablation
CONFIG=models/gemma3-270m-l9-topk64-16k/train-config.json
mkdir -p "$OUT" "$RUNS"

name() { echo "${1%%:*}"; }
layer() { local rest=${1#*:}; echo "${rest%%:*}"; }
flags() { local rest=${1#*:}; [[ $rest == *:* ]] && echo "${rest#*:}" | tr ',' ' ' || true; }

for v in "${VARIANTS[@]}"; do
  l=$(layer "$v")
  saener residuals --layer "$l" --input "$CORPUS/train.jsonl" --store "$RUNS/store-l$l" \
    --max-shards "$SHARDS"
done
for v in "${VARIANTS[@]}"; do
  n=$(name "$v") l=$(layer "$v")
  # One pass over the training shards (all but the held-out last one).
  tokens=$(jq -s 'map(.n_rows) | .[:-1] | add' \
    $(ls "$RUNS/store-l$l"/shard-*.json | head -n "$SHARDS"))
  # shellcheck disable=SC2046
  saener sae train --store "$RUNS/store-l$l" --out "$RUNS/$n" --config "$CONFIG" \
    --tokens "$tokens" $(flags "$v")
  [ -f "$RUNS/$n/sae-btk/config.json" ] ||
    saener sae threshold --text "$CORPUS/heldout.jsonl" --sae "$RUNS/$n/sae" --out "$RUNS/$n/sae-btk"
done
for ds in conll2003 ncbi_disease; do
  for v in "${VARIANTS[@]}"; do
    n=$(name "$v")
    calibrate_and_test "$RUNS/$n/sae-btk" "$ds" "$RUNS/$n/$ds.json" "$OUT/$n-$ds-test.json" \
      "${NB_FIXED_GRID[@]}"
  done
done
for v in "${VARIANTS[@]}"; do
  n=$(name "$v")
  [ -s "$OUT/$n-sae-eval.json" ] ||
    saener sae eval --text "$CORPUS/heldout.jsonl" --sae "$RUNS/$n/sae" \
      --ce-tokens "${CE_TOKENS:-512}" >"$OUT/$n-sae-eval.json"
done
# One row per SAE: held-out FVU / dead fraction / CE recovered under TopK, training speed,
# then the best dev F1 of each sweep and the test F1.
{
  echo "| SAE | layer | latents | training tokens | tokens/s (training) | FVU | dead | CE loss recovered | CoNLL dev | CoNLL test | NCBI dev | NCBI test |"
  echo "|---|---|---|---|---|---|---|---|---|---|---|---|"
  for v in "${VARIANTS[@]}"; do
    n=$(name "$v") l=$(layer "$v")
    cfg=$RUNS/$n/sae/config.json
    printf '| %s | %s | %s | %s | %s | %s | %s | %s | %s | %s | %s | %s |\n' "$n" "$l" \
      "$(jq .width "$cfg")" "$(jq .saener.training.stats.tokens "$cfg")" \
      "$(jq '.saener.training.stats | .tokens / .elapsed_secs | round' "$cfg")" \
      "$(jq '.fvu * 1000 | round / 1000' "$OUT/$n-sae-eval.json" 2>/dev/null || echo –)" \
      "$(pct "$OUT/$n-sae-eval.json" .dead_fraction)" \
      "$(pct "$OUT/$n-sae-eval.json" .ce_loss_recovered)" \
      "$(best_dev_f1 "$RUNS/$n/conll2003-sweep.jsonl")" \
      "$(pct "$OUT/$n-conll2003-test.json" .strict.micro.f1)" \
      "$(best_dev_f1 "$RUNS/$n/ncbi_disease-sweep.jsonl")" \
      "$(pct "$OUT/$n-ncbi_disease-test.json" .strict.micro.f1)"
  done
} | tee "$OUT/table.md"
