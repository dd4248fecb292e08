-- pace.lua: wrk paced to a fixed request rate. Each connection waits `gap` ms before each
-- request (wrk's delay() hook), so c connections send about c * 1000 / (gap + latency)
-- requests per second: with -c10 and gap 10 ms, about 1,000 req/s at sub-ms latencies.
-- wrk measures each latency from the moment the request is written.
local gap = tonumber(os.getenv("BENCH_PACE_GAP_MS") or "10")
function delay()
  return gap
end
