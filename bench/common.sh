# Sourced by the bench scripts (from the repository root): the binary they run and the
# shared-data folder.
DATA=${SAENER_SHARED:-../shared}/data
# RESULTS.md's figures are the f32 reference on every CPU: `auto` would pick bf16 or int8
# where the CPU has them (set SAENER_PRECISION to measure those).
export SAENER_PRECISION=${SAENER_PRECISION:-f32}
# `saener ARGS`: $SAENER_BIN if set (a prebuilt binary), else a release build of this tree.
saener() {
  if [ -n "${SAENER_BIN:-}" ]; then "$SAENER_BIN" "$@"; else cargo run --release --quiet -p saener -- "$@"; fi
}
# The naive-Bayes grid of the shipped decoder (bench/decoders.sh's nb-window-viterbi).
NB_GRID=(--decoder naive-bayes --tau 80,125 --s-min 3 --nb-alpha 0.1,0.5
         --nb-scale 0.12,0.25,0.5 --nb-absence 0.5,1 --nb-bias=-8,-6,-4,-2,0,2 --nb-weight 0,0.5,1)
# That grid with τ = 80 and α = 0.1 fixed (the values it chose on every benchmark), and
# neighbours and Viterbi on as shipped: the SAE comparisons' cheaper calibration.
NB_FIXED_GRID=(--decoder naive-bayes --tau 80 --s-min 3 --nb-alpha 0.1 --nb-scale 0.12,0.25,0.5
               --nb-absence 0.5,1 --nb-bias=-8,-6,-4,-2,0,2 --nb-weight 0,0.5,1
               --nb-viterbi true --nb-offsets=-1,1,2)
# `calibrate_and_test SAE DATASET PROFILE REPORT GRID...`: calibrates PROFILE for SAE on the
# dataset's train split, GRID chosen on dev (every point in PROFILE's -sweep.jsonl beside
# it), then evaluates it on test into REPORT; each step is skipped when its output exists.
calibrate_and_test() {
  local sae=$1 ds=$2 profile=$3 report=$4
  shift 4
  [ -f "$profile" ] ||
    saener calibrate --sae "$sae" --keep-residuals --data "$DATA/$ds/train.conll" \
      --dev "$DATA/$ds/dev.conll" "$@" --out "$profile" --sweep-out "${profile%.json}-sweep.jsonl"
  [ -s "$report" ] ||
    saener eval --sae "$sae" --keep-residuals --profile "$profile" \
      --data "$DATA/$ds/test.conll" --json "$report" >/dev/null
}
# Table cells for the bench scripts: `pct FILE FILTER` is FILTER's value in the JSON FILE as
# a percentage to one decimal, `best_dev_f1 SWEEP` the best F1 of a `--sweep-out` file, the
# same way; either is "–" when its file is missing or empty (a run not finished).
pct() { [ -s "$1" ] && jq "$2 * 1000 | round / 10" "$1" || echo –; }
best_dev_f1() { [ -s "$1" ] && jq -s 'map(.f1) | max * 1000 | round / 10' "$1" || echo –; }
