#!/usr/bin/env bash
# Layer sweep for the dense probe (issue 6): every other layer, a logistic-regression probe
# trained on the first 150 CoNLL-2003 train documents (to fit a session), scored on all of
# dev. Prints one "layer L: dev strict micro F1" line per layer; RESULTS.md quotes them.
set -euo pipefail
cd "$(dirname "$0")/.."
source bench/common.sh
OUT=${TMPDIR:-/tmp}/saener-layer-sweep
mkdir -p "$OUT"
for layer in ${LAYERS:-1 3 5 7 9 11 13 15 17}; do
  saener probe train --input dense --layer "$layer" --max-documents 150 \
    --data "$DATA/conll2003/train.conll" --dev "$DATA/conll2003/dev.conll" --l2 1e-4 \
    --out "$OUT/layer$layer.safetensors" 2>&1 | grep "dev strict" | sed "s/^saener: /layer $layer: /"
done
