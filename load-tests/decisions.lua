-- wrk script: POST /v1/decisions with thousands of distinct, realistic bodies.
--
-- Bodies come from `aftercart synth requests` (one JSON per line) in the file named by
-- the BODIES environment variable. Every request gets a fresh transaction id (a suffix
-- on the generated one), so no request is a replay of an earlier one.
--
-- BODIES=requests.ndjson wrk -t2 -c64 -d10s -s load-tests/decisions.lua http://127.0.0.1:8080

local bodies = {}
local counter = 0
local thread_tag = "t"

function setup(thread)
  thread:set("thread_tag", tostring(math.random(1, 1e9)))
end

function init(args)
  local path = os.getenv("BODIES") or "requests.ndjson"
  for line in io.lines(path) do
    bodies[#bodies + 1] = line
  end
  if #bodies == 0 then
    error("no request bodies in " .. path)
  end
end

local headers = { ["Content-Type"] = "application/json" }

function request()
  counter = counter + 1
  local body = bodies[(counter % #bodies) + 1]
  body = string.gsub(body, '"id":"(T%-[%d%-]+)"', '"id":"%1-' .. thread_tag .. "-" .. counter .. '"', 1)
  return wrk.format("POST", "/v1/decisions", headers, body)
end

-- No response() callback: wrk would then parse every response in Lua, which slows the
-- load generator that shares the box with the server. wrk counts statuses above 399
-- itself, and done() reports them.

-- With WRK_JSON set, the summary is written there as one JSON object (LOAD_PHASE and
-- LOAD_TARGET label it) for load-tests/run's results table.
function done(summary, latency, requests)
  local out = os.getenv("WRK_JSON")
  if not out then
    return
  end
  local e = summary.errors
  local f = assert(io.open(out, "w"))
  f:write(string.format(
    '{"tool":"wrk","phase":"%s","target":"%s","requests":%d,"duration_s":%.3f,"rps":%.1f,'
      .. '"latency_us":{"p50_us":%d,"p99_us":%d,"p999_us":%d,"max_us":%d},'
      .. '"errors":%d,"non_2xx":%d}\n',
    os.getenv("LOAD_PHASE") or "throughput", os.getenv("LOAD_TARGET") or "server",
    summary.requests, summary.duration / 1e6, summary.requests / (summary.duration / 1e6),
    latency:percentile(50), latency:percentile(99), latency:percentile(99.9), latency.max,
    e.connect + e.read + e.write + e.timeout, e.status))
  f:close()
end
