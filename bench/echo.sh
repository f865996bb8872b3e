#!/usr/bin/env bash
# Lever 2 of issue 11 (right context): every measurement of the shipped configuration
# repeated with echo reading (`--echo`: each document read twice, the second copy's
# residuals kept), on CoNLL-2003 and NCBI-disease. Same SAE, same grids, same splits as the
# plain rows: SAE-NER with the shipped decoder (bench/decoders.sh's nb-window-viterbi, chosen
# on dev, scored on test) and both probes (bench/probes.sh's L2 grid).
#
#   bash bench/echo.sh                 # both benchmarks, the shipped SAE
#   bash bench/echo.sh conll2003       # one benchmark
#   SAE=path/to/sae bash bench/echo.sh # another SAE (the plain rows must use it too)
#
# Residuals go through the residual cache (--keep-residuals), so the model reads each file
# once for codes and dense rows. Writes results/echo/<benchmark>-*.json and
# results/echo/table.md; the plain rows come from the files bench/decoders.sh and
# bench/probes.sh write (run those first, with the same SAE).
set -euo pipefail
cd "$(dirname "$0")/.."
source bench/common.sh
OUT=results/echo
mkdir -p "$OUT"
BENCHES=("$@")
[ ${#BENCHES[@]} -gt 0 ] || BENCHES=(conll2003 ncbi_disease)
SAE_ARG=()
[ -n "${SAE:-}" ] && SAE_ARG=(--sae "$SAE")
ECHO=(--echo --keep-residuals "${SAE_ARG[@]}")
for ds in "${BENCHES[@]}"; do
  [ -f "$OUT/$ds-echo.json" ] ||
    saener calibrate "${ECHO[@]}" --data "$DATA/$ds/train.conll" --dev "$DATA/$ds/dev.conll" \
      "${NB_GRID[@]}" --nb-viterbi true --nb-offsets=-1,1,2 --out "$OUT/$ds-echo.json" \
      --sweep-out "$OUT/$ds-echo.sweep.jsonl" 2> >(tee "$OUT/$ds-echo.log" >&2)
  saener eval --keep-residuals "${SAE_ARG[@]}" --profile "$OUT/$ds-echo.json" \
    --data "$DATA/$ds/test.conll" --json "$OUT/$ds-echo-test.json"
  for input in sae dense; do
    [ -f "$OUT/$ds-echo-$input.safetensors" ] ||
      saener probe train "${ECHO[@]}" --input $input --data "$DATA/$ds/train.conll" \
        --dev "$DATA/$ds/dev.conll" --l2 1e-5,1e-4,1e-3 --out "$OUT/$ds-echo-$input.safetensors"
    saener probe eval --keep-residuals "${SAE_ARG[@]}" --probe "$OUT/$ds-echo-$input.safetensors" \
      --data "$DATA/$ds/test.conll" --json "$OUT/$ds-echo-test-$input.json"
  done
done
f1() { pct "$1" .strict.micro.f1; }
{
  echo "| benchmark (test) | SAE-NER plain | SAE-NER echo | SAE probe plain | SAE probe echo | dense probe plain | dense probe echo |"
  echo "|---|---|---|---|---|---|---|"
  for ds in "${BENCHES[@]}"; do
    printf '| %s | %s | %s | %s | %s | %s | %s |\n' "$ds" \
      "$(f1 "results/decoders/$ds-nb-window-viterbi.eval.json")" "$(f1 "$OUT/$ds-echo-test.json")" \
      "$(f1 "results/probes/$ds-test-sae.json")" "$(f1 "$OUT/$ds-echo-test-sae.json")" \
      "$(f1 "results/probes/$ds-test-dense.json")" "$(f1 "$OUT/$ds-echo-test-dense.json")"
  done
} | tee "$OUT/table.md"
