#!/usr/bin/env bash
# The silver-data and annotation-noise study of RESULTS.md, for the given datasets (default:
# all three). Resumable: finished runs in results/study/<dataset>/runs.jsonl are skipped.
# SAENER_BIN overrides the binary (e.g. a copied release build while you keep editing).
set -euo pipefail
cd "$(dirname "$0")/.."
BIN=${SAENER_BIN:-"cargo run --release -q -p saener --"}
datasets=("$@")
[ ${#datasets[@]} -gt 0 ] || datasets=(conll2003 ncbi_disease bc5cdr)
for dataset in "${datasets[@]}"; do
  $BIN study --dataset "$dataset"
done
