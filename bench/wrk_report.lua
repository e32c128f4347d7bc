-- wrk script for bench/run.py: keep-alive GET /, and a done() hook that prints the
-- figures as one JSON line prefixed with WRK_JSON, so run.py parses them exactly
-- instead of scraping wrk's human-readable output.
--
-- No request()/response() hooks on purpose: a per-response Lua call costs wrk throughput
-- on a single thread. So the HTTP error count is wrk's own: responses with status >= 400.

wrk.method = "GET"
wrk.path = "/"
wrk.headers["Host"] = "bench"

done = function(summary, latency, requests)
  local e = summary.errors
  local seconds = summary.duration / 1e6
  local rps = 0
  if seconds > 0 then rps = summary.requests / seconds end
  io.write(string.format(
    'WRK_JSON {"requests":%d,"duration_us":%d,"bytes":%d,"requests_per_sec":%.2f,' ..
    '"latency_us":{"mean":%.1f,"p50":%d,"p90":%d,"p99":%d,"p99_9":%d,"max":%d},' ..
    '"errors":{"connect":%d,"read":%d,"write":%d,"timeout":%d,"status_ge_400":%d}}\n',
    summary.requests, summary.duration, summary.bytes, rps,
    latency.mean, latency:percentile(50), latency:percentile(90),
    latency:percentile(99), latency:percentile(99.9), latency.max,
    e.connect, e.read, e.write, e.timeout, e.status))
end
