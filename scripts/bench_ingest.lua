-- wrk script for `scripts/bench ingest`: every request is a POST /api/v1/events with a
-- producer's bearer token and BENCH_BATCH new Celery `task-received` events (one JSON
-- object when 1, else an array), each about a task id no other request uses.
--
-- Environment: VIGIL_TOKEN (a producer token), BENCH_BATCH (events per request, 1),
-- BENCH_RUN (a word unique to this run, so task ids never repeat across runs),
-- BENCH_RATE (requests per second in all; 0 = as fast as answered) and BENCH_THREADS
-- (wrk's -t, to share BENCH_RATE out). At a fixed rate each thread hands its
-- connections send times spaced evenly on one schedule, so the offered rate holds
-- whatever the answers' latency (wrk itself has no -R).
--
-- `done` prints one line wrk's own summary lacks, for the bench script to parse:
--   RESULT requests=<n> refused=<n> errors=<n> p50_us=<n> p99_us=<n> elapsed=<s>

local ffi = require("ffi")
ffi.cdef [[
  typedef struct { long tv_sec; long tv_nsec; } timespec;
  int clock_gettime(int clk_id, timespec *tp);
]]
local ts = ffi.new("timespec")
local function now_ms()
  ffi.C.clock_gettime(1, ts) -- CLOCK_MONOTONIC
  return tonumber(ts.tv_sec) * 1000 + tonumber(ts.tv_nsec) / 1e6
end

local token = os.getenv("VIGIL_TOKEN") or ""
local batch = tonumber(os.getenv("BENCH_BATCH") or "1")
local run = os.getenv("BENCH_RUN") or tostring(os.time())
local rate = tonumber(os.getenv("BENCH_RATE") or "0")
local thread_count = tonumber(os.getenv("BENCH_THREADS") or "1")

local threads = {}
function setup(thread)
  table.insert(threads, thread)
  thread:set("tid", #threads)
end

local prefix, counter, interval, next_at
function init(args)
  prefix = run .. "-" .. tid .. "-"
  counter = 0
  -- Each thread's connections share its part of the rate.
  if rate > 0 then
    interval = 1000 * thread_count / rate
  end
end

local headers = {
  ["Authorization"] = "Bearer " .. token,
  ["Content-Type"] = "application/json",
}

local function event(id, stamp)
  return '{"type":"task-received","uuid":"' .. id ..
      '","name":"bench.ingest","routing_key":"default","timestamp":' .. stamp .. '}'
end

function request()
  counter = counter + 1
  local stamp = string.format("%.6f", os.time() + (counter % 1000000) / 1e6)
  local body
  if batch == 1 then
    body = event(prefix .. counter, stamp)
  else
    local parts = {}
    for i = 1, batch do
      parts[i] = event(prefix .. counter .. "-" .. i, stamp)
    end
    body = "[" .. table.concat(parts, ",") .. "]"
  end
  return wrk.format("POST", "/api/v1/events", headers, body)
end

-- At a fixed rate: wait until the thread's next free slot (slots `interval` ms apart,
-- taken in turn by its connections; a slot already past is taken at once).
function delay()
  if not interval then return 0 end
  local t = now_ms()
  if not next_at then next_at = t + math.random() * interval end
  next_at = next_at + interval
  if next_at < t then next_at = t end
  return math.max(0, next_at - t)
end

function done(summary, latency, requests)
  local refused = summary.errors.status -- answers with a status over 399
  local errors = summary.errors.connect + summary.errors.read + summary.errors.write +
      summary.errors.timeout
  io.write(string.format(
    "RESULT requests=%d refused=%d errors=%d p50_us=%d p99_us=%d elapsed=%.3f\n",
    summary.requests, refused, errors, latency:percentile(50), latency:percentile(99),
    summary.duration / 1e6))
end
