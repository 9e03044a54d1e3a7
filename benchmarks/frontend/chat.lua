-- wrk script: POST one chat completion per request; BENCH_STREAM=1 asks for SSE streaming.
-- done() prints one JSON line that bench.py parses (latencies in microseconds).
local stream = os.getenv("BENCH_STREAM") == "1"
local max_tokens = tonumber(os.getenv("BENCH_MAX_TOKENS") or (stream and "64" or "16"))
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
wrk.body = string.format(
  '{"model":"tiny","messages":[{"role":"user","content":"Explain the benchmark in one short ' ..
  'paragraph, please."}],"max_tokens":%d,"stream":%s}',
  max_tokens, stream and "true" or "false")

function done(summary, latency, requests)
  io.write(string.format(
    'BENCH_JSON {"requests":%d,"duration_us":%d,"p50_us":%d,"p99_us":%d,"mean_us":%.1f,' ..
    '"connect_errors":%d,"read_errors":%d,"write_errors":%d,"status_errors":%d,' ..
    '"timeouts":%d}\n',
    summary.requests, summary.duration, latency:percentile(50), latency:percentile(99),
    latency.mean, summary.errors.connect, summary.errors.read, summary.errors.write,
    summary.errors.status, summary.errors.timeout))
end
