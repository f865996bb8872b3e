#!/bin/bash
# Runs fuzz targets for SECONDS each (default 600), JOBS at a time (default 2), niced, with
# the seeds in seeds/<target>/ and a growing corpus in corpus/<target>/ (not committed).
# Logs go to logs/<target>.log; a crash leaves its input in artifacts/<target>/, which then
# belongs in regressions/<target>/ once fixed. Usage: fuzz/run.sh [target...]
set -u
cd "$(dirname "$0")"
SECONDS_EACH=${SECONDS_EACH:-600}
JOBS=${JOBS:-2}
targets=("$@")
[ ${#targets[@]} -eq 0 ] && targets=(gguf tokenizer sae_gemmascope sae_gemmascope2 sae_saelens sae_sparsify conll jsonl annotate_decode)
max_len() {
  case $1 in
    sae_*) echo 16384 ;;
    tokenizer|annotate_decode) echo 1024 ;;
    *) echo 4096 ;;
  esac
}
mkdir -p logs
export RUSTC_BOOTSTRAP=1 # cargo-fuzz passes -Z flags; there is only a stable toolchain here
cargo fuzz build --sanitizer none -a || exit 1
for t in "${targets[@]}"; do
  while [ "$(jobs -r | wc -l)" -ge "$JOBS" ]; do sleep 5; done
  mkdir -p "corpus/$t"
  nice -n 15 cargo fuzz run --sanitizer none -a "$t" "corpus/$t" "seeds/$t" -- \
    -max_total_time="$SECONDS_EACH" -max_len="$(max_len "$t")" -timeout=30 \
    -rss_limit_mb=3072 -print_final_stats=1 > "logs/$t.log" 2>&1 &
done
wait
