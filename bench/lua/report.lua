-- report.lua is prepended to every script the bench gives wrk. It counts the
-- responses of each thread by status (split at a mark, so a flood's first
-- second can be left out) and prints the run as one JSON line the bench
-- parses, so no figure is scraped from wrk's human-readable text.
local ffi = require("ffi")
ffi.cdef[[
typedef struct { long tv_sec; long tv_usec; } bench_timeval;
int gettimeofday(bench_timeval *tv, void *tz);
]]
local tv = ffi.new("bench_timeval")

-- now_ms is wall time in milliseconds: os.time only has seconds.
function now_ms()
  ffi.C.gettimeofday(tv, nil)
  return tonumber(tv.tv_sec) * 1000 + tonumber(tv.tv_usec) / 1000
end

local threads = {}
local next_id = 0

function setup(thread)
  thread:set("id", next_id)
  next_id = next_id + 1
  table.insert(threads, thread)
end

-- Globals, so done() can read them from each thread with thread:get.
counts = {}      -- status -> responses
late_counts = {} -- status -> responses after mark_ms
mark_ms = 0      -- set by a script's init; 0 counts everything as late
started_ms = 0

function response(status, headers, body)
  counts[status] = (counts[status] or 0) + 1
  if now_ms() - started_ms >= mark_ms then
    late_counts[status] = (late_counts[status] or 0) + 1
  end
end

local function merge(into, from)
  for status, n in pairs(from) do
    into[status] = (into[status] or 0) + n
  end
end

local function json_counts(t)
  local parts = {}
  for status, n in pairs(t) do
    table.insert(parts, string.format('"%d":%d', status, n))
  end
  return "{" .. table.concat(parts, ",") .. "}"
end

function done(summary, latency, requests)
  local all, late = {}, {}
  for _, t in ipairs(threads) do
    merge(all, t:get("counts"))
    merge(late, t:get("late_counts"))
  end
  local e = summary.errors
  io.write(string.format(
    'BENCH_RESULT {"requests":%d,"duration_us":%d,"bytes":%d,' ..
    '"p50_us":%d,"p90_us":%d,"p99_us":%d,"max_us":%d,' ..
    '"errors":{"connect":%d,"read":%d,"write":%d,"status":%d,"timeout":%d},' ..
    '"statuses":%s,"late_statuses":%s}\n',
    summary.requests, summary.duration, summary.bytes,
    latency:percentile(50), latency:percentile(90), latency:percentile(99), latency.max,
    e.connect, e.read, e.write, e.status, e.timeout,
    json_counts(all), json_counts(late)))
end

-- The default init marks the start; scripts with their own init call it.
function start_clock(args)
  started_ms = now_ms()
end
init = start_clock
