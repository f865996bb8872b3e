#!/usr/bin/env bash
# Label-free SAE-NER (RESULTS.md, "Label-free calibration"): profiles calibrated from a
# hand-written lexicon, or from 10 annotated example sentences per type (3 draws), matched
# in the *text* of each benchmark's train split (its labels are never read), with every
# parameter chosen by the label-free criterion on held-out lexicon names; then evaluated on
# CoNLL-2003 test, NCBI-disease test and BC5CDR dev.
#
#   bash bench/label_free.sh            # all three benchmarks (~30 min on 2 busy cores, warm cache)
#   bash bench/label_free.sh conll2003  # one of conll2003, ncbi_disease, bc5cdr
#   DECODER=naive-bayes bash bench/label_free.sh ...  # the shipped decoder instead of noisy-or
#                                                     # (files named <...>-nb*; ~15 min for all)
#   bash bench/label_free.sh dev-threshold  # NOT label-free: the lexicon profiles' decision
#                                           # threshold chosen on labelled dev (CoNLL, NCBI)
#   GAZETTEERS=DIR bash bench/label_free.sh gazetteer [conll2003|ncbi_disease|bc5cdr]
#       # issue 21: lexicons built by `saener lexicon build` from the package name lists in DIR
#       # (lexicons/gazetteers.py writes them; lexicons/README.md), naive Bayes, each with
#       # both label-free criteria (--pu-recall words, names); and the hand-written lexicons
#       # with --pu-recall names. Files <benchmark>-{gazetteer,lexicon}-nb-<recall>*; the
#       # built lexicons go to target/gazetteers/ (too large to commit), their manifests
#       # to lexicons/*.gazetteer.manifest.json.
#
# Writes results/label_free/<benchmark>-{lexicon,examples-s<seed>}.json (profiles),
# <...>-sweep.jsonl (every grid point's label-free score) and <...>-eval.json (the
# evaluation reports); the train codes come from the cache that bench/results.sh fills. The
# drawn examples are sentences of the train splits (CoNLL-2003 is research-only), so they
# go to a temporary folder, never into the repository; `saener corpus examples` with the
# same seed draws them again.
set -euo pipefail
cd "$(dirname "$0")/.."
source bench/common.sh
OUT=results/label_free
EXAMPLES=$(mktemp -d)
trap 'rm -rf "$EXAMPLES"' EXIT
mkdir -p "$OUT"
# One grid for every benchmark and both modes; the choice is made without labels.
if [ "${DECODER:-noisy-or}" = naive-bayes ]; then
  # τ and α are fixed at the values labelled calibration chose on every benchmark's dev split
  # (the one choice here informed by labels); the rest is chosen without labels.
  GRID=(--decoder naive-bayes --tau 80 --s-min 3 --nb-alpha 0.1 --nb-scale 0.12,0.25,0.5
        --nb-absence 0.5,1 --nb-bias=-8,-6,-4,-2,0,2 --nb-weight 0,0.5 --nb-offsets=-1,1
        --nb-viterbi true)
  NB=-nb
else
  GRID=(--tau 60,80,100,125 --p-min 0.1,0.2,0.3 --threshold 0.5,0.7,0.9 --extend none,0.5)
  NB=
fi

run() { # name lexicon-args labels eval-split
  local name=$1 lexicon=$2 labels=$3 split=$4
  local train="$DATA/$name/train.conll" eval="$DATA/$name/$split.conll"
  saener calibrate --lexicon "$lexicon" ${labels:+--labels "$labels"} \
    --text "$train" --text-format conll "${GRID[@]}" \
    --out "$OUT/$name-lexicon$NB.json" --sweep-out "$OUT/$name-lexicon$NB-sweep.jsonl"
  saener eval --profile "$OUT/$name-lexicon$NB.json" --data "$eval" \
    --json "$OUT/$name-lexicon$NB-eval.json"
  for seed in 0 1 2; do
    saener corpus examples --data "$train" --per-type 10 --seed "$seed" \
      --out "$EXAMPLES/$name-s$seed.jsonl"
    saener calibrate --examples "$EXAMPLES/$name-s$seed.jsonl" \
      --text "$train" --text-format conll "${GRID[@]}" \
      --out "$OUT/$name-examples$NB-s$seed.json" \
      --sweep-out "$OUT/$name-examples$NB-s$seed-sweep.jsonl"
    saener eval --profile "$OUT/$name-examples$NB-s$seed.json" --data "$eval" \
      --json "$OUT/$name-examples$NB-s$seed-eval.json"
  done
}

# The lexicon profile with its decision threshold chosen on the labelled dev split (a
# diagnostic of how much the label-free choice loses; not a label-free result).
dev_threshold() { # name
  local name=$1 best=0 best_t=
  for t in 0.5 0.6 0.7 0.8 0.9 0.95; do
    saener eval --profile "$OUT/$name-lexicon.json" --data "$DATA/$name/dev.conll" --threshold "$t" \
      --json "$OUT/$name-lexicon-dev-t$t.json" > /dev/null
    f1=$(jq .strict.micro.f1 "$OUT/$name-lexicon-dev-t$t.json")
    if jq -e -n "$f1 > $best" > /dev/null; then best=$f1 best_t=$t; fi
  done
  echo "$name: threshold $best_t chosen on dev (F1 $best)"
  saener eval --profile "$OUT/$name-lexicon.json" --data "$DATA/$name/test.conll" --threshold "$best_t" \
    --json "$OUT/$name-lexicon-devthreshold-eval.json"
}

# The naive-Bayes grid above (τ, α fixed; the rest chosen without labels).
NB_LF_GRID=(--decoder naive-bayes --tau 80 --s-min 3 --nb-alpha 0.1 --nb-scale 0.12,0.25,0.5
            --nb-absence 0.5,1 --nb-bias=-8,-6,-4,-2,0,2 --nb-weight 0,0.5 --nb-offsets=-1,1
            --nb-viterbi true)

# `lexicon_nb NAME KIND LEXICON LABELS SPLIT RECALL [OPTION...]`: calibrates
# <name>-<kind>-nb-<recall> from LEXICON on the train text with the label-free criterion
# RECALL (and the calibrate OPTIONs), evaluates it on SPLIT.
lexicon_nb() {
  local name=$1 kind=$2 lexicon=$3 labels=$4 split=$5 recall=$6
  shift 6
  local profile="$OUT/$name-$kind-nb-$recall.json"
  [ -f "$profile" ] ||
    saener calibrate --lexicon "$lexicon" ${labels:+--labels "$labels"} "$@" \
      --pu-recall "$recall" --text "$DATA/$name/train.conll" --text-format conll "${NB_LF_GRID[@]}" \
      --out "$profile" --sweep-out "${profile%.json}-sweep.jsonl"
  [ -s "${profile%.json}-eval.json" ] ||
    saener eval --profile "$profile" --data "$DATA/$name/$split.conll" \
      --json "${profile%.json}-eval.json" > /dev/null
}

# `gazetteer NAME MAP LABELS SPLIT`: builds the gazetteer lexicon of MAP, then the profiles.
gazetteer() {
  local name=$1 map=$2 labels=$3 split=$4
  local lexicon="target/gazetteers/$(basename "${map%.gazetteer.toml}").jsonl"
  mkdir -p target/gazetteers
  [ -s "$lexicon" ] ||
    saener lexicon build --from "${GAZETTEERS:?set GAZETTEERS to the folder lexicons/gazetteers.py wrote}" \
      --types "$map" --out "$lexicon" --manifest "${map%.toml}.manifest.json"
  for recall in names words; do
    # First and last names come from separate lists: a match of each, side by side, is one name.
    lexicon_nb "$name" gazetteer "$lexicon" "$labels" "$split" "$recall" --join-adjacent
  done
  local hand=lexicons/biomedical.toml
  [ "$name" = conll2003 ] && hand=lexicons/conll2003.toml
  lexicon_nb "$name" lexicon "$hand" "$labels" "$split" names
}

gazetteers() { # [benchmark]
  case "${1:-all}" in
  conll2003) gazetteer conll2003 lexicons/conll2003.gazetteer.toml "" test ;;
  ncbi_disease) gazetteer ncbi_disease lexicons/biomedical.gazetteer.toml Disease test ;;
  bc5cdr) gazetteer bc5cdr lexicons/biomedical.gazetteer.toml "" dev ;;
  all) for b in ncbi_disease bc5cdr conll2003; do gazetteers $b; done ;;
  esac
}

case "${1:-all}" in
conll2003) run conll2003 lexicons/conll2003.toml "" test ;;
ncbi_disease) run ncbi_disease lexicons/biomedical.toml Disease test ;;
bc5cdr) run bc5cdr lexicons/biomedical.toml "" dev ;;
all)
  run conll2003 lexicons/conll2003.toml "" test
  run ncbi_disease lexicons/biomedical.toml Disease test
  run bc5cdr lexicons/biomedical.toml "" dev
  if [ -n "$NB" ]; then saener compare "$OUT"/*-nb-*eval.json; else
    saener compare $(ls "$OUT"/*-eval.json | grep -v -- -nb-); fi
  ;;
gazetteer) gazetteers "${2:-all}" ;;
dev-threshold)
  dev_threshold conll2003
  dev_threshold ncbi_disease
  ;;
*)
  echo "usage: bash bench/label_free.sh [conll2003|ncbi_disease|bc5cdr|all|dev-threshold|gazetteer [BENCHMARK]]" >&2
  exit 2
  ;;
esac
