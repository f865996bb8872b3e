#!/usr/bin/env bash
# The probing baselines of RESULTS.md: logistic regression on each word's SAE code and on
# its dense residual (layer 9), trained on the same train splits the profiles were
# calibrated on, L2 chosen on dev (BC5CDR: fixed at 1e-4, since its dev split is the one
# reported), then one head-to-head table against the shipped profiles.
#
#   bash bench/results.sh eval    # SAE-NER reports first
#   bash bench/probes.sh          # ~30 min cold (dense residuals are extracted once and cached)
#   INPUTS=sae bash bench/probes.sh   # only the probes on SAE codes (after a new SAE); the
#                                     # table then reads the dense reports already in results/
set -euo pipefail
cd "$(dirname "$0")/.."
source bench/common.sh
OUT=results/probes
mkdir -p "$OUT"
for input in ${INPUTS:-sae dense}; do
  for ds in conll2003 ncbi_disease; do
    saener probe train --input $input --data "$DATA/$ds/train.conll" --dev "$DATA/$ds/dev.conll" \
      --l2 1e-5,1e-4,1e-3 --out "$OUT/$ds-$input.safetensors"
    saener probe eval --probe "$OUT/$ds-$input.safetensors" --data "$DATA/$ds/test.conll" \
      --json "$OUT/$ds-test-$input.json"
  done
  saener probe train --input $input --data "$DATA/bc5cdr/train.conll" --l2 1e-4 \
    --out "$OUT/bc5cdr-$input.safetensors"
  saener probe eval --probe "$OUT/bc5cdr-$input.safetensors" --data "$DATA/bc5cdr/dev.conll" \
    --json "$OUT/bc5cdr-dev-$input.json"
done
reports=()
for split in conll2003-test ncbi_disease-test bc5cdr-dev; do
  reports+=("results/$split.json" "$OUT/$split-sae.json" "$OUT/$split-dense.json")
done
saener compare "${reports[@]}"
