-- policyd budget ledger: one atomic step per reserve / settle / usage / cancel.
-- It mirrors policyd/budgets/counter.py step for step; read that file for the
-- semantics. Here, each counter is two keys sharing one hash tag:
--
--   C (hash)  su st sr / vu vt vr  window totals, settled / reserved (usd, tokens, requests)
--             <bucket>su ... vr    per-bucket figures (rolling windows only)
--             lo, hi               oldest / newest live bucket (rolling windows only)
--             e:<decision>         entry "state:bucket:usd:tokens:requests:deadline"
--             a:<threshold>        alert marker: 0 (until the window ends) or expiry ms
--             x                    the expiry (caller's clock, ms) both keys' TTLs reach
--   E (zset)  decision -> deadline ms, plus the member "~" at +inf so that E is never
--             empty (an empty key vanishes, and would come back without a TTL)
--
-- KEYS: C and E per line.
-- ARGV: op, decision id, now ms, ttl ms, grace ms, force flag, actual usd, tokens,
--       requests (-1: release), then per line: n_buckets, bucket ms, key ttl ms and
--       reserve: enforce, amount x3, limit x3 (-1: none), calendar retry ms,
--                n alerts, then per alert: name, level x3 (-1: none)
--       settle:  placement bucket (used when forcing an unknown decision), in-flight
--                flag (1: a concurrency counter, the settle only releases); the ttl
--                slot holds the reservation's deadline ms (0: unknown)
--       cancel:  n alerts, their names (markers to clear: the reservation never happened)
--       usage:   n alerts, their names (markers to report when live)
--
-- Reads go through a per-line field cache and writes are buffered, so a step costs
-- a handful of server calls per line: HMGET, ZRANGEBYSCORE, then one HSET, HDEL, ZADD,
-- ZREM each at most. Amounts are integers below 2^53 (exact as Lua numbers) written
-- with string.format('%d'), so Redis never sees exponent notation; every counter
-- field saturates within [0, 2^53 - 1] (clamp), as in counter.py.

local op = ARGV[1]
local did = ARGV[2]
local now = tonumber(ARGV[3])
local ttl = tonumber(ARGV[4])
local grace = tonumber(ARGV[5])
local force = ARGV[6] == '1'
local actual = {tonumber(ARGV[7]), tonumber(ARGV[8]), tonumber(ARGV[9])}
local release = actual[1] < 0
local DIMS = {'u', 't', 'r'}
local SLACK = 60000  -- keys live this much longer than needed, so TTLs are set rarely
local MAXN = 9007199254740991  -- 2^53 - 1: every counter field stays in [0, MAXN]

local function fmt(n)
  return string.format('%d', n)
end

-- the bounded arithmetic of policyd/budgets/ledger.py clamp(): saturate, never wrap
local function clamp(n)
  if n < 0 then return 0 end
  if n > MAXN then return MAXN end
  return n
end

-- field cache ---------------------------------------------------------------------------

-- make sure the given fields are cached (one HMGET for those that are not)
local function fetch(L, fields)
  local missing = {}
  for _, f in ipairs(fields) do
    if L.f[f] == nil then missing[#missing + 1] = f end
  end
  if #missing > 0 then
    local values = redis.call('HMGET', L.c, unpack(missing))
    for i, f in ipairs(missing) do L.f[f] = values[i] end  -- false when absent
  end
end

local function get(L, field)
  fetch(L, {field})
  return L.f[field] or nil
end

local function num(L, field)
  return tonumber(get(L, field)) or 0
end

local function put(L, field, value)  -- value: a string, or false to delete the field
  L.f[field] = value
  L.w[field] = true
end

local function zset(L, member, score)  -- score: a number or '+inf'; false: remove member
  L.z[member] = score
end

local function flush(L)
  local sets, dels, adds, rems = {}, {}, {}, {}
  for f in pairs(L.w) do
    if L.f[f] then
      sets[#sets + 1] = f
      sets[#sets + 1] = L.f[f]
    else
      dels[#dels + 1] = f
    end
  end
  for m, score in pairs(L.z) do
    if score then
      adds[#adds + 1] = type(score) == 'string' and score or fmt(score)
      adds[#adds + 1] = m
    else
      rems[#rems + 1] = m
    end
  end
  if #dels > 0 then redis.call('HDEL', L.c, unpack(dels)) end
  if #sets > 0 then redis.call('HSET', L.c, unpack(sets)) end
  if #rems > 0 then redis.call('ZREM', L.e, unpack(rems)) end
  if #adds > 0 then redis.call('ZADD', L.e, unpack(adds)) end
  L.w, L.z = {}, {}
end

-- accounting ----------------------------------------------------------------------------

local function triple(L, prefix)
  return {num(L, prefix .. 'u'), num(L, prefix .. 't'), num(L, prefix .. 'r')}
end

local function bucket_fields(bucket)
  local b = fmt(bucket)
  return {b .. 'su', b .. 'st', b .. 'sr', b .. 'vu', b .. 'vt', b .. 'vr'}
end

local function is_live(L, bucket)
  return L.nb == 0 or bucket >= L.hi - L.nb
end

local function place(L, bucket)
  if L.nb == 0 then return 0 end
  return math.min(math.max(bucket, L.hi - L.nb), L.hi)
end

local function bump(L, field, delta)
  if delta ~= 0 then put(L, field, fmt(clamp(num(L, field) + delta))) end
end

-- add amount (sign +1/-1) to the settled ('s') or reserved ('v') spend of a bucket
local function add(L, kind, bucket, amount, sign)
  if not is_live(L, bucket) then return end
  local b = L.nb > 0 and fmt(bucket) or nil
  if b then fetch(L, bucket_fields(bucket)) end
  for i = 1, 3 do
    bump(L, kind .. DIMS[i], sign * amount[i])
    if b then bump(L, b .. kind .. DIMS[i], sign * amount[i]) end
  end
end

local function parse(text)
  local st, b, u, t, r, d = string.match(text, '^(%a):(%-?%d+):(%d+):(%d+):(%d+):(%d+)$')
  return st, tonumber(b), {tonumber(u), tonumber(t), tonumber(r)}, tonumber(d)
end

local function set_entry(L, d, st, bucket, amount, deadline)
  put(L, 'e:' .. d, st .. ':' .. fmt(bucket) .. ':' .. fmt(amount[1]) .. ':'
    .. fmt(amount[2]) .. ':' .. fmt(amount[3]) .. ':' .. fmt(deadline))
  zset(L, d, deadline)
end

local function drop_entry(L, d)
  put(L, 'e:' .. d, false)
  zset(L, d, false)
end

-- slide a rolling window to now, then expire overdue entries (see Counter.maintain)
local function maintain(L, extra_fields)
  local fields = {'su', 'st', 'sr', 'vu', 'vt', 'vr', 'lo', 'hi', 'x', 'e:' .. did}
  local cur = 0
  if L.nb > 0 then
    cur = math.floor(now / L.bw)
    for _, f in ipairs(bucket_fields(cur)) do fields[#fields + 1] = f end
  end
  for _, f in ipairs(extra_fields) do fields[#fields + 1] = f end
  fetch(L, fields)
  if L.nb > 0 then
    local lo, hi = tonumber(get(L, 'lo')), tonumber(get(L, 'hi'))
    if hi == nil or cur > hi then
      local floor = cur - L.nb
      if lo ~= nil then
        local old = {}
        for bucket = lo, math.min(hi, floor - 1) do
          for _, f in ipairs(bucket_fields(bucket)) do old[#old + 1] = f end
        end
        fetch(L, old)
        for bucket = lo, math.min(hi, floor - 1) do
          local b = fmt(bucket)
          for _, kind in ipairs({'s', 'v'}) do
            for i = 1, 3 do
              bump(L, kind .. DIMS[i], -num(L, b .. kind .. DIMS[i]))
              put(L, b .. kind .. DIMS[i], false)
            end
          end
        end
      end
      put(L, 'lo', fmt(floor))
      put(L, 'hi', fmt(cur))
      hi = cur
    end
    L.hi = hi
  end
  local due = redis.call('ZRANGEBYSCORE', L.e, '-inf', fmt(now))
  if #due > 0 then
    local entry_fields = {}
    for i, d in ipairs(due) do entry_fields[i] = 'e:' .. d end
    fetch(L, entry_fields)
  end
  for _, d in ipairs(due) do
    local text = get(L, 'e:' .. d)
    local keep = false
    if text then
      local st, bucket, amount, deadline = parse(text)
      if st == 'L' then
        add(L, 'v', bucket, amount, -1)
        local next_deadline = deadline + grace
        if next_deadline > now then
          set_entry(L, d, 'X', bucket, amount, next_deadline)
          keep = true
        end
      end
    end
    if not keep then drop_entry(L, d) end
  end
end

local function spent(L)
  local s, v = triple(L, 's'), triple(L, 'v')
  return {clamp(s[1] + v[1]), clamp(s[2] + v[2]), clamp(s[3] + v[3])}
end

-- end of a writing step: write the buffered changes, and make both keys outlive what
-- they hold. TTLs only ever grow, and only when x falls short, so most steps set none.
local function finish(L)
  local target = now + L.keyttl
  local x = tonumber(get(L, 'x'))
  local extend = x == nil or x < target
  if extend then
    x = target + SLACK
    put(L, 'x', fmt(x))
    zset(L, '~', '+inf')
  end
  flush(L)
  if extend then
    redis.call('PEXPIRE', L.c, fmt(x - now))
    redis.call('PEXPIRE', L.e, fmt(x - now))
  end
end

local function retry_after(L)
  if L.nb == 0 then return L.retry end
  local need = {}
  for i = 1, 3 do
    need[i] = L.limit[i] >= 0 and clamp(L.before[i] - L.limit[i] + L.amount[i]) or 0
  end
  local fields = {}
  for bucket = L.hi - L.nb, L.hi do
    for _, f in ipairs(bucket_fields(bucket)) do fields[#fields + 1] = f end
  end
  fetch(L, fields)
  for bucket = L.hi - L.nb, L.hi do
    local b = fmt(bucket)
    local s, v = triple(L, b .. 's'), triple(L, b .. 'v')
    local done = true
    for i = 1, 3 do
      need[i] = need[i] - s[i] - v[i]
      if need[i] > 0 then done = false end
    end
    if done then return (bucket + L.nb + 1) * L.bw - now end
  end
  return (L.hi + L.nb + 1) * L.bw - now
end

-- read the lines ------------------------------------------------------------------------

local lines = {}
local pos = 10
for k = 1, #KEYS, 2 do
  local L = {c = KEYS[k], e = KEYS[k + 1], nb = tonumber(ARGV[pos]), f = {}, w = {}, z = {},
             bw = tonumber(ARGV[pos + 1]), keyttl = tonumber(ARGV[pos + 2]), hi = 0}
  local extra = {}
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
      extra[a] = 'a:' .. ARGV[pos]
      pos = pos + 4
    end
  elseif op == 'settle' then
    L.bucket = tonumber(ARGV[pos])
    L.inflight = ARGV[pos + 1] == '1'
    pos = pos + 2
  elseif op == 'cancel' or op == 'usage' then
    L.fired = {}
    for a = 1, tonumber(ARGV[pos]) do L.fired[a] = ARGV[pos + a] end
    pos = pos + 1 + #L.fired
    if op == 'usage' then
      for a, name in ipairs(L.fired) do extra[a] = 'a:' .. name end
    end
  end
  maintain(L, extra)
  lines[#lines + 1] = L
end

-- the steps -----------------------------------------------------------------------------

if op == 'usage' then
  -- per line: spent, settled, reserved, and which of the given alert markers are live
  local out = {}
  for _, L in ipairs(lines) do
    local live = {}
    for _, name in ipairs(L.fired) do
      local marker = tonumber(get(L, 'a:' .. name))
      if marker ~= nil and (marker == 0 or marker > now) then live[#live + 1] = name end
    end
    out[#out + 1] = {spent(L), triple(L, 's'), triple(L, 'v'), live}
    if get(L, 'x') then flush(L) end  -- keep what maintain changed; never create a counter
  end
  return out
end

if op == 'cancel' then
  for _, L in ipairs(lines) do
    local text = get(L, 'e:' .. did)
    if text then
      local st, bucket, amount = parse(text)
      if st == 'L' then add(L, 'v', bucket, amount, -1) end
      drop_entry(L, did)
    end
    for _, name in ipairs(L.fired) do put(L, 'a:' .. name, false) end
    finish(L)
  end
  return 1
end

if op == 'settle' then
  -- settle's ttl slot carries the reservation's deadline (0: unknown). A decision
  -- unknown to a counter that does not exist at all, before deadline + grace, was
  -- reserved and then lost (a Redis restart without persistence, a flush, an
  -- eviction): its spend is recorded as if forced, and the reply says so (2). A
  -- reservation that failed with a store error has no deadline: Redis may never
  -- have seen it, so it is never reported as lost.
  local changed = 0
  for _, L in ipairs(lines) do
    local text = get(L, 'e:' .. did)
    local st, bucket, amount
    if text then st, bucket, amount = parse(text) end
    local lost = not text and ttl > 0 and not get(L, 'x') and now <= ttl + grace
    if lost then changed = 2 end
    if st ~= 'S' and (text or force or lost) then
      if not text then
        bucket = 0
        if L.nb > 0 then bucket = math.min(L.bucket, L.hi) end
      elseif st == 'L' then
        add(L, 'v', bucket, amount, -1)
      end
      if not release and not L.inflight then add(L, 's', bucket, actual, 1) end
      set_entry(L, did, 'S', bucket, {0, 0, 0}, now + grace)
      if changed == 0 then changed = 1 end
    end
    finish(L)
  end
  return changed
end

-- reserve: all or nothing over the enforced lines
local ok = true
for _, L in ipairs(lines) do
  L.before = spent(L)
  L.dup = get(L, 'e:' .. did) ~= nil
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
    set_entry(L, did, 'L', bucket, L.amount, now + ttl)
    local after = {}
    for i = 1, 3 do after[i] = L.before[i] + L.amount[i] end
    for _, alert in ipairs(L.alerts) do
      local hit = false
      for i = 1, 3 do
        if alert[2][i] >= 0 and after[i] >= alert[2][i] then hit = true end
      end
      if hit then
        local field = 'a:' .. alert[1]
        local marker = tonumber(get(L, field))
        if marker == nil or (marker > 0 and marker <= now) then
          local expiry = 0
          if L.nb > 0 then expiry = now + L.nb * L.bw end
          put(L, field, fmt(expiry))
          fired[#fired + 1] = alert[1]
        end
      end
    end
  end
  local retry = -1
  if not L.fits then retry = retry_after(L) end
  out[#out + 1] = {L.before[1], L.before[2], L.before[3], L.fits and 1 or 0, retry, fired}
  finish(L)
end
return out
