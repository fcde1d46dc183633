-- flood.lua: coach logins with random emails at a fixed rate, paced with
-- delay() from a schedule (not a pause after each answer), so a slow answer
-- does not slow the flood. Arguments: the rate in requests/s for each
-- thread; "many" for a random client address per request (each in its own
-- /24 as far as chance allows) or an address every request comes from; the
-- milliseconds after which responses count as late (the first second is the
-- limits' to learn).
function init(args)
  start_clock(args)
  interval = 1000 / tonumber(args[1])
  from = args[2]
  mark_ms = tonumber(args[3])
  math.randomseed(os.time() + id * 7919)
  next_at = nil
end

function delay()
  local now = now_ms()
  -- Fell far behind (the server stalled): start again from now rather than
  -- send a burst to catch up.
  if next_at == nil or next_at < now - 1000 then
    next_at = now
  end
  next_at = next_at + interval
  return math.max(0, math.floor(next_at - now))
end

function request()
  local ip = from
  if from == "many" then
    ip = string.format("%d.%d.%d.%d", math.random(11, 210), math.random(0, 255),
      math.random(0, 255), math.random(1, 254))
  end
  local body = string.format('{"email":"flood-%d-%d@bench.example","password":"correct horse battery"}',
    math.random(0, 2147483646), math.random(0, 2147483646))
  return wrk.format("POST", "/v1/auth/login", {
    ["Content-Type"] = "application/json",
    ["X-Forwarded-For"] = ip,
  }, body)
end
