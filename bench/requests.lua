-- wrk script: every request is a distinct one, prepared beforehand by the bench (bench/wrk.py).
-- Thread n reads its own file (<prefix>.<n>): whole HTTP requests separated by NUL bytes. A
-- thread that runs out starts over and counts the repeats, so the bench can refuse the run.
-- Answers are counted by status; done() prints one line of figures for the bench to read.

local counter = 0
local threads = {}

function setup(thread)
  thread:set("index", counter)
  counter = counter + 1
  table.insert(threads, thread)
end

function init(args)
  local handle = assert(io.open(args[1] .. "." .. index, "rb"))
  local data = handle:read("*a")
  handle:close()
  prepared, next_one, repeats, statuses = {}, 1, 0, {}
  for request in string.gmatch(data, "([^%z]+)") do
    prepared[#prepared + 1] = request
  end
end

function request()
  local raw = prepared[next_one]
  next_one = next_one + 1
  if next_one > #prepared then
    next_one, repeats = 1, repeats + 1
  end
  return raw
end

function response(status, headers, body)
  statuses[status] = (statuses[status] or 0) + 1
end

function done(summary, latency, requests)
  local counts, repeated = {}, 0
  for _, thread in ipairs(threads) do
    repeated = repeated + thread:get("repeats")
    for status, count in pairs(thread:get("statuses")) do
      counts[status] = (counts[status] or 0) + count
    end
  end
  local parts = {}
  for status, count in pairs(counts) do
    parts[#parts + 1] = string.format('"%d": %d', status, count)
  end
  local errors = summary.errors
  io.write(string.format(
    'WRK {"duration_us": %d, "requests": %d, "statuses": {%s}, "repeats": %d, '
    .. '"errors": {"connect": %d, "read": %d, "write": %d, "timeout": %d}, '
    .. '"latency_us": {"p50": %d, "p90": %d, "p99": %d, "max": %d}}\n',
    summary.duration, summary.requests, table.concat(parts, ", "), repeated,
    errors.connect, errors.read, errors.write, errors.timeout,
    latency:percentile(50), latency:percentile(90), latency:percentile(99), latency.max))
end
