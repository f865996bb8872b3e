#!/usr/bin/env bash
# saener and the PyTorch reference on the same sentences, one after the other, on one
# machine. The reference needs `pip install torch transformers gguf` (not a saener dependency).
set -euo pipefail
cd "$(dirname "$0")/.."
mkdir -p bench/out
data="${1:-../shared/data/conll2003/dev.conll}"
cargo run --release -q -p saener -- bench --data "$data" --write-sentences bench/out/sentences.txt
python3 bench/reference_forward.py --model "${SAENER_HOME:-$HOME/.cache/saener}/models/gemma-3-270m-q4_k_m.gguf" \
    --sentences bench/out/sentences.txt --threads 2
