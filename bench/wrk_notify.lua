-- wrk script for bench/ingest_bench.py: POSTs distinct Orion notifications to /notify.
-- Arguments (after --): METERS OFFSET BATCH T0 [DELAY_MS [STEP_MS [LAST]]]
--   BATCH 0: single-entity normalized notifications (meter i % METERS, one reading each)
--   BATCH N: legacy NGSIv1 notifications carrying N entities each (seed 003 Figure 16 shape)
-- T0 is the Unix time of the first observation; reading i is observed at T0 + i ms (normalized)
-- or T0 + i s (legacy), as bench/loadgen.py does, so every reading is new; each thread's i runs from
-- OFFSET + 1 (+ 10,000,000 per thread). STEP_MS (normalized only, default 1) spaces the readings STEP_MS
-- apart instead: with METERS 1000 and STEP_MS 900 each meter gets one reading per 15-minute window from a
-- window-aligned T0 (bench/backlog_bench.py). LAST stops a thread once it has sent reading LAST (with
-- -t1 and OFFSET -1: readings 0 to LAST exactly).
-- DELAY_MS > 0 paces the sender: each connection waits DELAY_MS on average (0.5-1.5 x, so connections
-- do not march in step) between an answer and its next request; C connections offer about
-- C * 1000 / DELAY_MS notifications/s while answers are fast compared with DELAY_MS.
-- Prints one JSON line with the counts and the latency percentiles (microseconds).

local threads = {}

function setup(thread)
  thread:set("tid", #threads)
  table.insert(threads, thread)
end

local function iso(ms)
  local secs = math.floor(ms / 1000)
  return os.date("!%Y-%m-%dT%H:%M:%S", secs) .. string.format(".%03dZ", ms % 1000)
end

function init(args)
  meters = tonumber(args[1]) or 200
  batch = tonumber(args[3]) or 0
  t0ms = (tonumber(args[4]) or os.time()) * 1000
  counter = (tonumber(args[2]) or 0) + tid * 10000000
  if tid == 0 then
    counter = counter - 1  -- wrk calls request() once on thread 0 to check the script: never sent
  end
  step = tonumber(args[6]) or 1
  last = tonumber(args[7])
  local delay_ms = tonumber(args[5]) or 0
  if delay_ms > 0 then
    math.randomseed(tid + 1)
    delay = function() return math.floor(delay_ms * (0.5 + math.random())) end
  end
  wrk.method = "POST"
  wrk.headers["Content-Type"] = "application/json; charset=utf-8"
  wrk.headers["Fiware-Service"] = "bench"
  wrk.headers["Fiware-ServicePath"] = "/"
  wrk.headers["Fiware-Correlator"] = "bench; cbnotif=1"
end

local function normalized(i)
  local meta = '"metadata":{"TimeInstant":{"type":"DateTime","value":"' .. iso(t0ms + i * step) .. '"}}'
  local power = '"P":{"type":"Number","value":' .. (i % 5000) .. '.5,' .. meta .. '}'
  local entity = '{"id":"urn:ngsi-ld:SMX:B' .. (i % meters) .. '","type":"SMX",' .. power .. '}'
  return '{"subscriptionId":"bench","data":[' .. entity .. ']}'
end

local function legacy(i)
  local when = iso(t0ms + i * 1000)
  local parts = {}
  for e = 0, batch - 1 do
    parts[#parts + 1] = '{"contextElement":{"type":"SMX","isPattern":"false","id":"urn:ngsi-ld:SMX:L' .. e
      .. '","attributes":[{"name":"P","type":"W","value":"' .. ((i + e) % 5000) .. '.25",'
      .. '"metadatas":[{"name":"TimeInstant","type":"ISO8601","value":"' .. when .. '"}]}]},'
      .. '"statusCode":{"code":"200","reasonPhrase":"OK"}}'
  end
  return '{"subscriptionId":"bench","originator":"localhost","contextResponses":['
    .. table.concat(parts, ",") .. ']}'
end

function request()
  if last and counter >= last then
    wrk.thread:stop()  -- the request answered now repeats reading LAST (a duplicate) if it is sent at all
  else
    counter = counter + 1
  end
  local body = batch > 0 and legacy(counter) or normalized(counter)
  return wrk.format(nil, nil, nil, body)
end

function done(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    '{"requests":%d,"duration_us":%d,"non2xx":%d,"errors":%d,"p50_us":%d,"p99_us":%d}\n',
    summary.requests, summary.duration, e.status, e.connect + e.read + e.write + e.timeout,
    latency:percentile(50), latency:percentile(99)))
end
