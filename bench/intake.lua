-- wrk script for bench/intake: POST /v1/findings/auto-remediation, each request with another
-- assessment id (ids from the file named by IDS_FILE, split between wrk's threads so no two
-- requests share one), and a report of p50, p99 and errors in a parseable line.

local counter = 0

function setup(thread)
  thread:set("tid", counter)
  counter = counter + 1
end

function init(args)
  stride = tonumber(os.getenv("WRK_THREADS"))
  ids = {}
  for line in io.lines(os.getenv("IDS_FILE")) do
    ids[#ids + 1] = line
  end
  next_index = tid + 1
  headers = {
    ["Authorization"] = "Bearer " .. os.getenv("TOKEN"),
    ["Content-Type"] = "application/json",
  }
end

function request()
  local id = ids[next_index]
  next_index = next_index + stride
  if next_index > #ids then next_index = (next_index % stride) + 1 end
  return wrk.format("POST", "/v1/findings/auto-remediation", headers,
    '{"assessment_id":"' .. id .. '"}')
end

function done(summary, latency, requests)
  local e = summary.errors
  local secs = summary.duration / 1e6
  io.write(string.format(
    "WRK requests=%d rps=%.1f p50_ms=%.2f p99_ms=%.2f max_ms=%.2f non2xx=%d connect=%d read=%d write=%d timeout=%d\n",
    summary.requests, summary.requests / secs, latency:percentile(50) / 1000,
    latency:percentile(99) / 1000, latency.max / 1000, e.status, e.connect, e.read, e.write,
    e.timeout))
end
