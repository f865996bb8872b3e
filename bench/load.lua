-- wrk script for bench/load_test.sh: every request POSTs one sentence to /v1/annotate,
-- cycling through $SENTENCES (one sentence per line); each wrk thread starts elsewhere in
-- the list. Prints one JSON line with the figures BENCHMARKS.md records.
local bodies = {}
for line in io.lines(os.getenv("SENTENCES")) do
  local text = line:gsub("\\", "\\\\"):gsub('"', '\\"')
  bodies[#bodies + 1] = '{"profile":"conll2003","documents":[{"text":"' .. text .. '"}]}'
end

local threads = {}
local counter = 0
function setup(thread)
  thread:set("id", counter)
  counter = counter + 1
  table.insert(threads, thread)
end

function init(args)
  next_body = (id * 97) % #bodies
  wrk.method = "POST"
  wrk.headers["Content-Type"] = "application/json"
end

function request()
  next_body = next_body % #bodies + 1
  return wrk.format(nil, "/v1/annotate", nil, bodies[next_body])
end

function done(summary, latency, requests)
  local e = summary.errors
  local errors = e.connect + e.read + e.write + e.status + e.timeout
  io.write(string.format(
    '{"requests":%d,"seconds":%.2f,"requests_per_s":%.2f,"p50_ms":%.1f,"p90_ms":%.1f,"p99_ms":%.1f,"max_ms":%.1f,"errors":%d,"non_2xx":%d,"timeouts":%d}\n',
    summary.requests, summary.duration / 1e6, summary.requests / (summary.duration / 1e6),
    latency:percentile(50) / 1e3, latency:percentile(90) / 1e3, latency:percentile(99) / 1e3,
    latency.max / 1e3, errors, e.status, e.timeout))
end
