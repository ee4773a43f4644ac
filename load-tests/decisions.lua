-- wrk script: POST /v1/decisions with thousands of distinct, realistic bodies.
--
-- Bodies come from `aftercart synth requests` (one JSON per line) in the file named by
-- the BODIES environment variable. Every request gets a fresh transaction id (a suffix
-- on the generated one), so no request is a replay of an earlier one.

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

function response(status, headers, body)
  if status ~= 200 then
    error("unexpected status " .. status .. ": " .. body)
  end
end
