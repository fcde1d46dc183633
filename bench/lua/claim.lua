-- claim.lua: a free-access claim with a new email and a new client address
-- (X-Forwarded-For, each in its own /24) on every request, so neither the
-- per-email nor the per-address limits trip and every claim is a first one.
-- Arguments: a prefix unique to this wrk run, and the first address number.
function init(args)
  start_clock(args)
  prefix = args[1]
  -- Each thread numbers its own addresses from its own block.
  next_addr = tonumber(args[2]) + id * 4000000
  n = 0
end

function request()
  n = n + 1
  local k = next_addr + n
  local ip = string.format("%d.%d.%d.%d", 11 + math.floor(k / 65536) % 200,
    math.floor(k / 256) % 256, k % 256, 1 + id)
  local body = string.format(
    '{"email":"claim-%s-%d-%d@bench.example","name":"Bench Reader","marketing_consent":%s,"disclaimer_accepted":true}',
    prefix, id, n, n % 2 == 0 and "true" or "false")
  return wrk.format("POST", wrk.path, {
    ["Content-Type"] = "application/json",
    ["X-Forwarded-For"] = ip,
  }, body)
end
