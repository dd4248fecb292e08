-- status.lua: each request asks for the status of another message id (so no answer is
-- served from a cache shared by requests for one id), numbered per wrk thread.
-- BENCH_STATUS_MODE=simple: fogate's simple API, GET /v1/messages/{id}?job=$BENCH_STATUS_JOB.
-- BENCH_STATUS_MODE=odata: the D365 call it makes, POST .../GetMessageStatus with
-- {"messageId":"{id}"} (to the nginx peer, or straight to the upstream).
-- Loaded after the headers are set (wrk.headers) and before pace.lua when paced.
local mode = os.getenv("BENCH_STATUS_MODE") or "simple"
local job = os.getenv("BENCH_STATUS_JOB") or "exp"
local action = "/data/DataManagementDefinitionGroups/"
  .. "Microsoft.Dynamics.DataEntities.GetMessageStatus"
local n = 0
local tag = math.random(0, 0xffff)
if mode == "odata" then
  wrk.headers["Content-Type"] = "application/json"
end
function request()
  n = n + 1
  local id = string.format("5ca1ab1e-%04x-4000-8000-%012x", tag, n)
  if mode == "odata" then
    return wrk.format("POST", action, nil, '{"messageId":"' .. id .. '"}')
  end
  return wrk.format("GET", "/v1/messages/" .. id .. "?job=" .. job, nil, nil)
end
