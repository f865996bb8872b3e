#!/usr/bin/env bash
# Soak test of `saener serve` (issue 26): for $DURATION seconds (default 600), a mix of
# clients runs against one server on loopback:
#   - $VALID clients (default 4) sending valid requests one after another (1-4 documents of
#     written sentences each); every answer must be 200 with one result per document, in
#     order, else it counts as lost;
#   - $MALFORMED clients (default 2) sending requests that must be refused with a given 4xx:
#     invalid JSON, a top-level array, unknown fields, an unknown profile, too many documents,
#     a gzip body, a declared 5 MB body with Expect: 100-continue, an invented method, a
#     nesting bomb, a feature id over int32;
#   - $SLOW clients (default 2) that send part of a request (headers or body) and go silent;
#     the server must close them after --read-timeout-secs (408 or a plain close).
# Every $SAMPLE seconds (default 30) it prints, and writes to $OUT/soak.tsv: requests by
# kind, unexpected answers, p50/p99 latency of the valid requests in that interval, the
# server's RSS and the number of /metrics series. The server is stopped with SIGTERM at the
# end; the script fails if any answer was unexpected or the server did not stop in time.
#
#   cargo build --release -p saener && bash bench/soak.sh          # DURATION=60 for a short run
#
# Not part of `cargo test`: it runs for minutes. Needs python3 (standard library only).
set -euo pipefail
cd "$(dirname "$0")/.."
BIN=${SAENER_BIN:-target/release/saener}
OUT=${OUT:-bench/out/soak}
DURATION=${DURATION:-600}
SAMPLE=${SAMPLE:-30}
PORT=${PORT:-8091}
READ_TIMEOUT=${READ_TIMEOUT:-5}
mkdir -p "$OUT"

"$BIN" serve --port "$PORT" --profile conll2003 --read-timeout-secs "$READ_TIMEOUT" \
  >"$OUT/serve.log" 2>&1 &
SERVER=$!
trap 'kill $SERVER 2>/dev/null || true' EXIT
for _ in $(seq 300); do
  curl -sf "http://127.0.0.1:$PORT/healthz" >/dev/null && break
  sleep 1
done

status=0
PORT=$PORT PID=$SERVER DURATION=$DURATION SAMPLE=$SAMPLE OUT=$OUT \
  VALID=${VALID:-4} MALFORMED=${MALFORMED:-2} SLOW=${SLOW:-2} READ_TIMEOUT=$READ_TIMEOUT \
  python3 - <<'EOF' || status=$?
import asyncio, json, os, random, time

PORT, PID = int(os.environ["PORT"]), int(os.environ["PID"])
DURATION, SAMPLE = float(os.environ["DURATION"]), float(os.environ["SAMPLE"])
READ_TIMEOUT = float(os.environ["READ_TIMEOUT"])
OUT = os.environ["OUT"]

# Written for this test (no corpus text).
NAMES = ["Angela Merkel", "Maria Keller", "John Smith", "Aiko Tanaka", "Pedro Alvarez"]
PLACES = ["Paris", "Nairobi", "Frankfurt", "Osaka", "Lima", "Geneva"]
ORGS = ["the World Health Organization", "Nordwind Energy", "the University of Geneva",
        "Reuters", "the European Commission"]

def sentence(rng):
    return (f"{rng.choice(NAMES)} met officials of {rng.choice(ORGS)} in "
            f"{rng.choice(PLACES)} on Monday to discuss trade and energy.")

def document(rng):
    return " ".join(sentence(rng) for _ in range(rng.randint(1, 6)))

def post(body, extra=b"", host=b"127.0.0.1"):
    return (b"POST /v1/annotate HTTP/1.1\r\nhost: " + host + b"\r\ncontent-type: application/json\r\n"
            + extra + b"content-length: " + str(len(body)).encode() + b"\r\nconnection: close\r\n\r\n" + body)

# (request bytes, expected status)
MALFORMED = [
    (post(b'{"documents": ['), 400),
    (post(b'[null, []]'), 422),
    (post(b'{"documents": [{"txt": "a"}]}'), 422),
    (post(b'{"profile": "nope", "documents": []}'), 404),
    (post(json.dumps({"documents": [{"text": "a"}] * 65}).encode()), 413),
    (post(b"\x1f\x8b\x08\x00", b"content-encoding: gzip\r\n"), 415),
    (b"POST /v1/annotate HTTP/1.1\r\nhost: 127.0.0.1\r\ncontent-type: application/json\r\n"
     b"content-length: 5000000\r\nexpect: 100-continue\r\nconnection: close\r\n\r\n", 413),
    (b"GET /v1/features/4294967296 HTTP/1.1\r\nhost: 127.0.0.1\r\nconnection: close\r\n\r\n", 400),
    # A nesting bomb: serde stops at the first element, which is not a profile name.
    (post(b"[" * 100000 + b"]" * 100000), 422),
    (post(b'{"documents": [{"text": "Paris"}]}', host=b"evil.example"), 421),
]

stats = {"valid": 0, "lost": 0, "malformed": 0, "unexpected": 0, "slow": 0, "slow_held": 0,
         "invented_method": 0}
latencies = []  # of the valid requests since the last sample
all_latencies = []
failures = []

async def exchange(data, timeout=120):
    reader, writer = await asyncio.open_connection("127.0.0.1", PORT)
    try:
        writer.write(data)
        await writer.drain()
        return await asyncio.wait_for(reader.read(), timeout)
    finally:
        writer.close()

def parse(raw):
    head, _, body = raw.partition(b"\r\n\r\n")
    status = int(head.split(b" ", 2)[1]) if head.startswith(b"HTTP/1.1 ") else 0
    return status, body

async def valid_client(seed, until):
    rng = random.Random(seed)
    while time.monotonic() < until:
        docs = [{"id": f"{seed}-{i}", "text": document(rng)} for i in range(rng.randint(1, 4))]
        start = time.monotonic()
        try:
            status, body = parse(await exchange(post(json.dumps({"documents": docs}).encode())))
            ids = [d["id"] for d in json.loads(body)["documents"]] if status == 200 else None
        except Exception as e:  # a reset or a timeout is a lost request too
            status, ids = repr(e), None
        latencies.append(time.monotonic() - start)
        all_latencies.append(latencies[-1])
        stats["valid"] += 1
        if ids != [d["id"] for d in docs]:
            stats["lost"] += 1
            failures.append(f"valid request: {status}")

async def malformed_client(seed, until):
    rng = random.Random(seed)
    while time.monotonic() < until:
        if rng.random() < 0.1:
            # A new method name each time: must not grow /metrics.
            data = f"M{rng.getrandbits(64):x} /healthz HTTP/1.1\r\nhost: 127.0.0.1\r\nconnection: close\r\n\r\n".encode()
            expected = {405}
            stats["invented_method"] += 1
        else:
            data, status = rng.choice(MALFORMED)
            expected = {status}
        try:
            status, body = parse(await exchange(data))
        except Exception as e:
            status = repr(e)
        stats["malformed"] += 1
        if status not in expected:
            stats["unexpected"] += 1
            failures.append(f"malformed {data[:60]!r}: {status}, expected {expected}")
        await asyncio.sleep(0.05)

async def slow_client(seed, until):
    rng = random.Random(seed)
    while time.monotonic() < until:
        partial = rng.choice([b"POST /v1/annotate HTTP/1.1\r\nhost: 127.0.0.1\r\n",
                              post(b'{"documents": [{"text": "Paris"}]}')[:-10]])
        start = time.monotonic()
        try:
            raw = await exchange(partial, timeout=READ_TIMEOUT * 4)
            status = parse(raw)[0] if raw else "closed"
        except asyncio.TimeoutError:
            status = "held"
        except Exception as e:
            status = repr(e)
        stats["slow"] += 1
        if status not in (408, "closed"):
            stats["slow_held"] += 1
            failures.append(f"slow client: {status} after {time.monotonic() - start:.1f} s")

def rss_mib():
    with open(f"/proc/{PID}/status") as f:
        for line in f:
            if line.startswith("VmRSS"):
                return int(line.split()[1]) / 1024

async def series():
    raw = await exchange(b"GET /metrics HTTP/1.1\r\nhost: 127.0.0.1\r\nconnection: close\r\n\r\n")
    return sum(1 for l in parse(raw)[1].decode().splitlines() if l and not l.startswith("#"))

def pct(xs, q):
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(q * len(xs)))] if xs else float("nan")

async def main():
    start = time.monotonic()
    until = start + DURATION
    tasks = [asyncio.create_task(valid_client(i, until)) for i in range(int(os.environ["VALID"]))]
    tasks += [asyncio.create_task(malformed_client(100 + i, until)) for i in range(int(os.environ["MALFORMED"]))]
    tasks += [asyncio.create_task(slow_client(200 + i, until)) for i in range(int(os.environ["SLOW"]))]
    header = "seconds\tvalid\tlost\tmalformed\tunexpected\tslow\tslow_held\tp50_ms\tp99_ms\trss_mib\tseries"
    rows = [header]
    print(header, flush=True)
    while time.monotonic() < until:
        await asyncio.sleep(min(SAMPLE, max(0.0, until - time.monotonic())))
        window, latencies[:] = latencies[:], []
        row = [f"{time.monotonic() - start:.0f}"] + [str(stats[k]) for k in
               ("valid", "lost", "malformed", "unexpected", "slow", "slow_held")]
        row += [f"{pct(window, 0.5) * 1000:.0f}", f"{pct(window, 0.99) * 1000:.0f}",
                f"{rss_mib():.0f}", str(await series())]
        rows.append("\t".join(row))
        print(rows[-1], flush=True)
    await asyncio.gather(*tasks)
    with open(f"{OUT}/soak.tsv", "w") as f:
        f.write("\n".join(rows) + "\n")
    summary = dict(stats, p50_ms=round(pct(all_latencies, 0.5) * 1000),
                   p99_ms=round(pct(all_latencies, 0.99) * 1000), failures=failures[:20])
    with open(f"{OUT}/summary.json", "w") as f:
        json.dump(summary, f, indent=1)
    print(json.dumps(summary))
    if stats["lost"] or stats["unexpected"] or stats["slow_held"]:
        raise SystemExit(1)

asyncio.run(main())
EOF

kill -TERM "$SERVER"
for _ in $(seq 120); do
  kill -0 "$SERVER" 2>/dev/null || break
  sleep 1
done
if kill -0 "$SERVER" 2>/dev/null; then
  echo "soak.sh: the server did not stop within 120 s of SIGTERM" >&2
  exit 1
fi
wait "$SERVER" || true
trap - EXIT
exit "$status"
