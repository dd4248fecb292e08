-- pace.lua: wrk paced to a fixed request rate (wrk2 is not in Debian).
-- BENCH_PACE_RATE=R (req/s): one schedule per wrk thread (run -t1) hands out send times
-- R apart; each connection, after its response, waits for the next free slot (wrk's
-- delay() hook, whole ms, so a request may leave up to 1 ms early; the rate over the run
-- is R as long as enough connections are idle). A schedule that falls more than 100 ms
-- behind restarts from now: the achieved rate is then below R, which the benchmark reports.
-- Without it: each connection waits BENCH_PACE_GAP_MS (default 10) ms before each request,
-- so c connections send about c * 1000 / (gap + latency) req/s (-c10: about 1,000 req/s).
-- wrk measures each latency from the moment the request is written.
local rate = tonumber(os.getenv("BENCH_PACE_RATE") or "0")
local gap = tonumber(os.getenv("BENCH_PACE_GAP_MS") or "10")
if rate > 0 then
  local ffi = require("ffi")
  ffi.cdef[[
    typedef struct { long tv_sec; long tv_nsec; } bench_timespec;
    int clock_gettime(int clk, bench_timespec *ts);
  ]]
  local ts = ffi.new("bench_timespec")
  local interval = 1000 / rate
  local slot = nil
  local function now_ms()
    ffi.C.clock_gettime(1, ts)  -- CLOCK_MONOTONIC
    return tonumber(ts.tv_sec) * 1000 + tonumber(ts.tv_nsec) / 1e6
  end
  function delay()
    local now = now_ms()
    if slot == nil or slot < now - 100 then
      slot = now
    end
    slot = slot + interval
    local d = slot - now
    if d < 1 then
      return 0
    end
    return math.floor(d)
  end
else
  function delay()
    return gap
  end
end
