#!/usr/bin/env bash
# Load test of `saener serve` (issue 9), with the CLI's batch throughput measured on the same
# sentences in the same session for comparison:
#
#   cargo build --release -p saener && bash bench/load_test.sh
#
# 1. `saener bench --profile conll2003` times annotate end to end at batch 1 and 16 on the
#    first 320 CoNLL-2003 dev sentences (read at run time from ../shared) and writes them out;
# 2. `saener serve` is started on loopback and `wrk` (Debian package wrk) drives it with 8
#    connections, one request after another per connection (8 concurrent clients), each
#    request one of those sentences, for $DURATION (default 60 s);
# 3. the server's RSS is sampled every 5 s, tokens/s is read from its /metrics, and the
#    server is stopped with SIGTERM (graceful shutdown).
# Results go to $OUT (default bench/out/load): cli-bench.txt, wrk.json, rss.tsv, summary.txt.
set -euo pipefail
cd "$(dirname "$0")/.."
BIN=${SAENER_BIN:-target/release/saener}
DATA=${SAENER_SHARED:-../shared}/data/conll2003/dev.conll
OUT=${OUT:-bench/out/load}
DURATION=${DURATION:-60s}
PORT=${PORT:-8089}
mkdir -p "$OUT"
command -v wrk >/dev/null || { echo "load_test.sh: needs wrk (apt-get install wrk)" >&2; exit 1; }

echo "== CLI batch throughput (saener bench, same sentences)"
"$BIN" bench --data "$DATA" --profile conll2003 --layers 9 --batch-sizes 1,16 \
  --write-sentences "$OUT/sentences.txt" | tee "$OUT/cli-bench.txt"

echo "== server: 8 concurrent clients for $DURATION"
"$BIN" serve --port "$PORT" --profile conll2003 >"$OUT/serve.log" 2>&1 &
SERVER=$!
trap 'kill $SERVER 2>/dev/null || true' EXIT
for _ in $(seq 300); do
  curl -sf "http://127.0.0.1:$PORT/healthz" >/dev/null && break
  sleep 1
done
tokens() { curl -sf "http://127.0.0.1:$PORT/metrics" | awk '$1=="saener_tokens_total"{print $2}'; }
# Warm-up (first-touch page faults, allocator), not counted.
SENTENCES="$OUT/sentences.txt" wrk -t 2 -c 8 -d 5s -s bench/load.lua "http://127.0.0.1:$PORT" >/dev/null
printf 'seconds\trss_mib\n' >"$OUT/rss.tsv"
(
  start=$(date +%s)
  while kill -0 "$SERVER" 2>/dev/null; do
    printf '%s\t%s\n' $(($(date +%s) - start)) \
      "$(awk '/VmRSS/{printf "%.0f", $2/1024}' /proc/$SERVER/status)" >>"$OUT/rss.tsv"
    sleep 5
  done
) &
SAMPLER=$!
before=$(tokens)
t0=$(date +%s.%N)
SENTENCES="$OUT/sentences.txt" wrk -t 2 -c 8 -d "$DURATION" --timeout 30s -s bench/load.lua \
  "http://127.0.0.1:$PORT" | tee "$OUT/wrk.txt"
t1=$(date +%s.%N)
after=$(tokens)
kill "$SAMPLER" 2>/dev/null || true
grep '^{' "$OUT/wrk.txt" >"$OUT/wrk.json"
peak=$(awk '/VmHWM/{printf "%.0f", $2/1024}' /proc/$SERVER/status)
kill -TERM "$SERVER"
wait "$SERVER" || true
trap - EXIT
{
  echo "server tokens/s: $(awk -v a="$after" -v b="$before" -v t0="$t0" -v t1="$t1" 'BEGIN{printf "%.0f", (a-b)/(t1-t0)}')"
  echo "server peak RSS (VmHWM): ${peak} MiB"
  echo "RSS over the run (MiB): $(tail -n +2 "$OUT/rss.tsv" | cut -f2 | tr '\n' ' ')"
  echo "wrk: $(cat "$OUT/wrk.json")"
  echo "CLI (saener bench):"
  sed -n '/annotate end to end/,$p' "$OUT/cli-bench.txt"
} | tee "$OUT/summary.txt"
