-- policyd budget ledger: one atomic step per reserve / settle / usage / cancel.
-- It mirrors policyd/budgets/counter.py exactly; read that file for the semantics.
--
-- KEYS: three per line: C (hash: totals, rolling buckets, alert markers, lo/hi),
--       E (zset: decision id -> deadline ms), R (hash: decision id -> entry).
-- ARGV: op, decision id, now ms, ttl ms, grace ms, force flag, actual usd, tokens,
--       requests (-1: release), then per line: n_buckets, bucket ms, key ttl ms and
--       reserve: enforce, amount x3, limit x3 (-1: none), calendar retry ms,
--                n alerts, then per alert: name, level x3 (-1: none)
--       settle:  placement bucket (used when forcing an unknown decision)
--       cancel:  n alerts, their names (markers to clear: the reservation never happened)
-- Amounts are integers below 2^53 (exact as Lua numbers); they are written with
-- string.format('%d') so Redis never sees exponent notation.

local op = ARGV[1]
local did = ARGV[2]
local now = tonumber(ARGV[3])
local ttl = tonumber(ARGV[4])
local grace = tonumber(ARGV[5])
local force = ARGV[6] == '1'
local actual = {tonumber(ARGV[7]), tonumber(ARGV[8]), tonumber(ARGV[9])}
local release = actual[1] < 0
local DIMS = {'u', 't', 'r'}

local function fmt(n)
  return string.format('%d', n)
end

local function incr(key, prefix, amount, sign)
  for i = 1, 3 do
    if amount[i] ~= 0 then
      redis.call('HINCRBY', key, prefix .. DIMS[i], fmt(sign * amount[i]))
    end
  end
end

local function read3(key, prefix)
  local v = redis.call('HMGET', key, prefix .. 'u', prefix .. 't', prefix .. 'r')
  return {tonumber(v[1]) or 0, tonumber(v[2]) or 0, tonumber(v[3]) or 0}
end

local function is_live(L, bucket)
  return L.nb == 0 or bucket >= L.hi - L.nb
end

local function place(L, bucket)
  if L.nb == 0 then return 0 end
  return math.min(math.max(bucket, L.hi - L.nb), L.hi)
end

-- add amount (sign +1/-1) to the settled ('s') or reserved ('v') spend of a bucket
local function add(L, kind, bucket, amount, sign)
  if not is_live(L, bucket) then return end
  incr(L.c, kind, amount, sign)
  if L.nb > 0 then incr(L.c, fmt(bucket) .. kind, amount, sign) end
end

local function parse(v)
  local st, b, u, t, r, d = string.match(v, '^(%a):(%-?%d+):(%d+):(%d+):(%d+):(%d+)$')
  return st, tonumber(b), {tonumber(u), tonumber(t), tonumber(r)}, tonumber(d)
end

local function set_entry(L, st, bucket, amount, deadline)
  redis.call('HSET', L.r, did, st .. ':' .. fmt(bucket) .. ':' .. fmt(amount[1]) .. ':'
    .. fmt(amount[2]) .. ':' .. fmt(amount[3]) .. ':' .. fmt(deadline))
  redis.call('ZADD', L.e, fmt(deadline), did)
end

-- slide a rolling window to now, then expire overdue entries (see Counter.maintain)
local function maintain(L)
  if L.nb > 0 then
    local cur = math.floor(now / L.bw)
    local state = redis.call('HMGET', L.c, 'lo', 'hi')
    local lo, hi = tonumber(state[1]), tonumber(state[2])
    if hi == nil or cur > hi then
      local floor = cur - L.nb
      if lo ~= nil then
        for bucket = lo, math.min(hi, floor - 1) do
          local b = fmt(bucket)
          for _, kind in ipairs({'s', 'v'}) do
            local row = read3(L.c, b .. kind)
            incr(L.c, kind, row, -1)
            redis.call('HDEL', L.c, b .. kind .. 'u', b .. kind .. 't', b .. kind .. 'r')
          end
        end
      end
      redis.call('HSET', L.c, 'lo', fmt(floor), 'hi', fmt(cur))
      hi = cur
    end
    L.hi = hi
  end
  local due = redis.call('ZRANGEBYSCORE', L.e, '-inf', fmt(now))
  for _, d in ipairs(due) do
    local v = redis.call('HGET', L.r, d)
    local keep = false
    if v then
      local st, bucket, amount, deadline = parse(v)
      if st == 'L' then
        add(L, 'v', bucket, amount, -1)
        local next_deadline = deadline + grace
        if next_deadline > now then
          redis.call('HSET', L.r, d, 'X:' .. fmt(bucket) .. ':' .. fmt(amount[1]) .. ':'
            .. fmt(amount[2]) .. ':' .. fmt(amount[3]) .. ':' .. fmt(next_deadline))
          redis.call('ZADD', L.e, fmt(next_deadline), d)
          keep = true
        end
      end
    end
    if not keep then
      redis.call('HDEL', L.r, d)
      redis.call('ZREM', L.e, d)
    end
  end
end

local function spent(L)
  local s, v = read3(L.c, 's'), read3(L.c, 'v')
  return {s[1] + v[1], s[2] + v[2], s[3] + v[3]}
end

-- make sure every key of the line outlives what it holds (only ever extends a TTL)
local function touch(L)
  for _, key in ipairs({L.c, L.e, L.r}) do
    local pttl = redis.call('PTTL', key)
    if pttl == -1 or (pttl >= 0 and pttl < L.keyttl) then
      redis.call('PEXPIRE', key, fmt(L.keyttl))
    end
  end
end

local function retry_after(L)
  if L.nb == 0 then return L.retry end
  local need = {}
  for i = 1, 3 do
    need[i] = L.limit[i] >= 0 and (L.before[i] + L.amount[i] - L.limit[i]) or 0
  end
  for bucket = L.hi - L.nb, L.hi do
    local b = fmt(bucket)
    local s, v = read3(L.c, b .. 's'), read3(L.c, b .. 'v')
    local done = true
    for i = 1, 3 do
      need[i] = need[i] - s[i] - v[i]
      if need[i] > 0 then done = false end
    end
    if done then return (bucket + L.nb + 1) * L.bw - now end
  end
  return (L.hi + L.nb + 1) * L.bw - now
end

-- read the lines
local lines = {}
local pos = 10
for k = 1, #KEYS, 3 do
  local L = {c = KEYS[k], e = KEYS[k + 1], r = KEYS[k + 2], nb = tonumber(ARGV[pos]),
             bw = tonumber(ARGV[pos + 1]), keyttl = tonumber(ARGV[pos + 2]), hi = 0}
  pos = pos + 3
  if op == 'reserve' then
    L.enforce = ARGV[pos] == '1'
    L.amount = {tonumber(ARGV[pos + 1]), tonumber(ARGV[pos + 2]), tonumber(ARGV[pos + 3])}
    L.limit = {tonumber(ARGV[pos + 4]), tonumber(ARGV[pos + 5]), tonumber(ARGV[pos + 6])}
    L.retry = tonumber(ARGV[pos + 7])
    local n_alerts = tonumber(ARGV[pos + 8])
    pos = pos + 9
    L.alerts = {}
    for a = 1, n_alerts do
      L.alerts[a] = {ARGV[pos], {tonumber(ARGV[pos + 1]), tonumber(ARGV[pos + 2]),
                                 tonumber(ARGV[pos + 3])}}
      pos = pos + 4
    end
  elseif op == 'settle' then
    L.bucket = tonumber(ARGV[pos])
    pos = pos + 1
  elseif op == 'cancel' then
    L.fired = {}
    for a = 1, tonumber(ARGV[pos]) do L.fired[a] = ARGV[pos + a] end
    pos = pos + 1 + #L.fired
  end
  maintain(L)
  lines[#lines + 1] = L
end

if op == 'usage' then
  local out = {}
  for _, L in ipairs(lines) do
    out[#out + 1] = spent(L)
    touch(L)
  end
  return out
end

if op == 'cancel' then
  for _, L in ipairs(lines) do
    local v = redis.call('HGET', L.r, did)
    if v then
      local st, bucket, amount = parse(v)
      if st == 'L' then add(L, 'v', bucket, amount, -1) end
      redis.call('HDEL', L.r, did)
      redis.call('ZREM', L.e, did)
    end
    for _, name in ipairs(L.fired) do redis.call('HDEL', L.c, 'a:' .. name) end
    touch(L)
  end
  return 1
end

if op == 'settle' then
  local changed = 0
  for _, L in ipairs(lines) do
    local v = redis.call('HGET', L.r, did)
    local st, bucket, amount
    if v then st, bucket, amount = parse(v) end
    if st ~= 'S' and (v or force) then
      if not v then
        bucket = 0
        if L.nb > 0 then bucket = math.min(L.bucket, L.hi) end
      elseif st == 'L' then
        add(L, 'v', bucket, amount, -1)
      end
      if not release then add(L, 's', bucket, actual, 1) end
      set_entry(L, 'S', bucket, {0, 0, 0}, now + grace)
      changed = 1
    end
    touch(L)
  end
  return changed
end

-- reserve: all or nothing over the enforced lines
local ok = true
for _, L in ipairs(lines) do
  L.before = spent(L)
  L.dup = redis.call('HEXISTS', L.r, did) == 1
  L.fits = true
  if not L.dup then
    for i = 1, 3 do
      if L.limit[i] >= 0 and L.before[i] + L.amount[i] > L.limit[i] then L.fits = false end
    end
  end
  if L.enforce and not L.fits then ok = false end
end
local out = {ok and 1 or 0}
for _, L in ipairs(lines) do
  local fired = {}
  if ok and not L.dup then
    local bucket = place(L, L.nb > 0 and math.floor(now / L.bw) or 0)
    add(L, 'v', bucket, L.amount, 1)
    set_entry(L, 'L', bucket, L.amount, now + ttl)
    local after = {}
    for i = 1, 3 do after[i] = L.before[i] + L.amount[i] end
    for _, alert in ipairs(L.alerts) do
      local hit = false
      for i = 1, 3 do
        if alert[2][i] >= 0 and after[i] >= alert[2][i] then hit = true end
      end
      if hit then
        local field = 'a:' .. alert[1]
        local marker = tonumber(redis.call('HGET', L.c, field))
        if marker == nil or (marker > 0 and marker <= now) then
          local expiry = 0
          if L.nb > 0 then expiry = now + L.nb * L.bw end
          redis.call('HSET', L.c, field, fmt(expiry))
          fired[#fired + 1] = alert[1]
        end
      end
    end
  end
  local retry = -1
  if not L.fits then retry = retry_after(L) end
  out[#out + 1] = {L.before[1], L.before[2], L.before[3], L.fits and 1 or 0, retry, fired}
  touch(L)
end
return out
