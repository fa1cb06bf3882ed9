-- policyd budget ledger: one atomic step per reserve / settle / usage / cancel.
-- It mirrors policyd/budgets/counter.py step for step; read that file for the
-- semantics. Each counter is two keys sharing one hash tag:
--
--   H (hash)  n             the figures, 10 little-endian doubles (exact: each one is an
--                           integer below 2^53): su st sr vu vt vr, the window totals,
--                           settled / reserved (usd, tokens, requests); x, the expiry
--                           (caller's clock, ms) both keys' TTLs reach (0: no counter);
--                           hi + 1, the newest bucket (rolling windows; 0: none yet);
--                           nextL, at most the earliest deadline of a live reservation
--                           (0: unknown); nextG, when the next sweep of forgotten entries
--                           is due
--             b<slot>       rolling windows: su st sr vu vt vr of the bucket that ring
--                           slot holds, slot = bucket % (n_buckets + 1), named by the
--                           character 48 + slot; absent: zeros
--             e:<decision>  entry: 'L' bucket usd tokens requests (live reservation),
--                           'X' bucket forget_ms (expired), 'S' forget_ms (settled);
--                           a state letter, then little-endian doubles
--             a:<threshold> alert marker: 0 (until the window ends) or expiry ms
--   Z (zset)  decision -> deadline ms of a live reservation (score > 0), or -forget_ms
--             of an expired or settled one (score < 0), plus the member "~" at +inf so
--             that Z is never empty (an empty key vanishes, and would come back without
--             a TTL)
--
-- What a step costs is mostly server calls and conversions between numbers and decimal
-- text (a tonumber or a number argument costs about as much as a small command). So
-- numbers travel packed (struct.pack / struct.unpack) both ways, a line reads its figures
-- and entry in one HMGET and writes them in one HSET, deadlines are looked at only when
-- nextL says one may be due, and entries past forget_ms count as absent at once and are
-- removed in batches (nextG). A reserve or a settle is HMGET, HSET, ZADD per line. Every
-- figure saturates within [0, 2^53 - 1] (clamp), as in counter.py.
--
-- KEYS: H, Z per line.
-- ARGV: op, decision id, header, now, A, -forget (decimal text), then one per line.
--   header: 8 doubles: now ms, A, grace ms, force flag, actual usd, tokens, requests
--           (-1: release), forget ms (now + grace). A is the deadline (now + ttl) for
--           reserve, the reservation's deadline (0: unknown) for settle.
--   line:   doubles, then text: n_buckets, bucket ms, expiry target ms (now + how long
--           the keys must live), and
--     reserve: enforce, amount x3, limit x3 (-1: none), calendar retry ms, n alerts,
--              levels x3 per alert (-1 where unlimited, thresholds ascending), then the
--              thresholds' names (space-separated)
--     settle:  placement bucket (used when forcing an unknown decision), in-flight flag
--              (1: a concurrency counter, the settle only releases)
--     cancel:  the names of the alert markers to clear (the reservation never happened)
--     usage:   the names of the alert markers to report when live
-- Replies: reserve {ok, then per line: spent x3, fits, retry ms (-1: none), fired alerts
-- (bit i - 1 set: the i-th threshold fired)}, one flat array (nested tables cost more to
-- send); settle 0 / 1 / 2 (lost); usage per line {spent, settled, reserved, live alert
-- names}; cancel 1.

local call, sunpack, pack, byte, char = redis.call, struct.unpack, struct.pack, string.byte,
  string.char
local floor, min = math.floor, math.min
local op = ARGV[1]
local did = ARGV[2]
local ent = 'e:' .. did
local now, A, grace, force, au, at, ar, forget = sunpack('<dddddddd', ARGV[3])
local nows, As, negforget = ARGV[4], ARGV[5], ARGV[6]
local release = au < 0
local HEAD = '<dddddddddd'
local SLOT = '<dddddd'
local SLACK = 60000      -- keys live this much longer than needed, so TTLs are set rarely
local MAXN = 9007199254740991  -- 2^53 - 1: every counter field stays in [0, MAXN]
local GC_EVERY = 1000    -- ms between sweeps of forgotten entries (caller's clock)
local GC_BATCH = 256     -- entries removed per sweep at most (the next call goes on)
local L_, X_ = byte('L'), byte('X')

local function clamp(n)
  if n < 0 then return 0 end
  if n > MAXN then return MAXN end
  return n
end

-- the figures of ring slot s (fetched the first time, unless prefetched)
local function slot(L, s)
  local v = L.slots[s]
  if not v then
    local raw = L.raw[s]
    if raw == nil then raw = call('HGET', L.h, 'b' .. char(48 + s)) end
    if raw then v = {sunpack(SLOT, raw)} else v = {0, 0, 0, 0, 0, 0} end
    L.slots[s] = v
  end
  return v
end

-- add sign * amount to the settled (kind 0) or reserved (kind 3) spend of a bucket,
-- when that bucket still counts
local function add(L, kind, bucket, u, t, r, sign)
  local nb = L.nb
  if nb > 0 and bucket < L.hi - nb then return end
  local hd = L.hd
  local a, b, c = hd[kind + 1] + sign * u, hd[kind + 2] + sign * t, hd[kind + 3] + sign * r
  if sign > 0 then
    if a > MAXN then a = MAXN end
    if b > MAXN then b = MAXN end
    if c > MAXN then c = MAXN end
  else
    if a < 0 then a = 0 end
    if b < 0 then b = 0 end
    if c < 0 then c = 0 end
  end
  hd[kind + 1], hd[kind + 2], hd[kind + 3] = a, b, c
  if nb > 0 then
    local s = bucket % (nb + 1)
    local v = slot(L, s)
    v[kind + 1] = clamp(v[kind + 1] + sign * u)
    v[kind + 2] = clamp(v[kind + 2] + sign * t)
    v[kind + 3] = clamp(v[kind + 3] + sign * r)
    L.touched[s] = true
  end
end

-- a decision's entry as it stands now: state, bucket, amount (nil: none, or forgotten)
local function entry(text)
  if not text then return nil end
  local st = byte(text)
  if st == L_ then
    local b, u, t, r = sunpack('<dddd', text, 2)
    return 'L', b, u, t, r
  elseif st == X_ then
    local b, f = sunpack('<dd', text, 2)
    if f <= now then return nil end
    return 'X', b
  end
  if sunpack('<d', text, 2) <= now then return nil end
  return 'S'
end

-- read a counter (its figures, this decision's entry, and the ring slot of bucket
-- `want`, in one HMGET); slide a rolling window to now, expire overdue reservations,
-- sweep forgotten entries
local function open(k, nb, bw, target, want)
  local h, z = KEYS[k], KEYS[k + 1]
  local got, cur, raw = nil, 0, nil
  if nb > 0 then
    cur = floor(now / bw)
    local s1, s2 = cur % (nb + 1), want % (nb + 1)
    got = call('HMGET', h, 'n', ent, 'b' .. char(48 + s1), 'b' .. char(48 + s2))
    raw = {}
    raw[s1], raw[s2] = got[3], got[4]
  else
    got = call('HMGET', h, 'n', ent)
  end
  local hd
  if got[1] then hd = {sunpack(HEAD, got[1])} else hd = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0} end
  -- every field a step may set is named here, so the table is sized once
  local L = {h = h, z = z, nb = nb, bw = bw, target = target, hd = hd, hi = 0, e = got[2],
             raw = raw, slots = raw and {}, touched = raw and {}, b1 = 0, b2 = 0, b3 = 0,
             u = 0, t = 0, r = 0, lu = 0, lt = 0, lr = 0, retry = 0, na = 0, cfg = false,
             pos = 0, dup = false, fits = true}
  if nb > 0 then
    local hi = hd[8] - 1
    if hi < 0 or cur > hi then
      if hi >= 0 then  -- forget the buckets that slid out: hi - nb .. cur - nb - 1
        local last = min(hi, cur - nb - 1)
        local missing = {}
        for b = hi - nb, last do
          local s = b % (nb + 1)
          if raw[s] == nil then missing[#missing + 1] = s end
        end
        if #missing > 0 then
          local fields = {}
          for i, s in ipairs(missing) do fields[i] = 'b' .. char(48 + s) end
          local values = call('HMGET', h, unpack(fields))
          for i, s in ipairs(missing) do raw[s] = values[i] end
        end
        for b = hi - nb, last do
          local s = b % (nb + 1)
          local v = slot(L, s)
          for i = 1, 6 do hd[i] = clamp(hd[i] - v[i]) end
          L.slots[s] = {0, 0, 0, 0, 0, 0}
          L.touched[s] = true
        end
      end
      hd[8] = cur + 1
      hi = cur
    end
    L.hi = hi
  end
  if hd[9] <= now then
    local due = call('ZRANGEBYSCORE', z, '0', nows, 'WITHSCORES')
    for j = 1, #due, 2 do
      local d = due[j]
      local field = 'e:' .. d
      local st, bucket, u, t, r = entry(call('HGET', h, field))
      local text = nil
      if st == 'L' then
        add(L, 3, bucket, u, t, r, -1)
        local next_deadline = tonumber(due[j + 1]) + grace
        if next_deadline > now then
          text = 'X' .. pack('<dd', bucket, next_deadline)
          call('HSET', h, field, text)
          call('ZADD', z, -next_deadline, d)
        end
      end
      if not text then
        call('HDEL', h, field)
        call('ZREM', z, d)
      end
      if d == did then L.e = text or false end
    end
    local first = call('ZRANGEBYSCORE', z, '(0', '+inf', 'WITHSCORES', 'LIMIT', '0', '1')
    hd[9] = MAXN
    if #first > 0 and first[1] ~= '~' then hd[9] = tonumber(first[2]) end
  end
  if hd[10] <= now then
    local gone = call('ZRANGEBYSCORE', z, '-' .. nows, '(0', 'LIMIT', '0', GC_BATCH)
    if #gone > 0 then
      local fields = {}
      for j = 1, #gone do fields[j] = 'e:' .. gone[j] end
      call('HDEL', h, unpack(fields))
      call('ZREM', z, unpack(gone))
    end
    hd[10] = #gone < GC_BATCH and now + GC_EVERY or now
  end
  return L
end

local function spent(L)
  local hd = L.hd
  return clamp(hd[1] + hd[4]), clamp(hd[2] + hd[5]), clamp(hd[3] + hd[6])
end

-- end of a step: write the figures, the touched ring slots and the fields in `w` in one
-- HSET, and make both keys outlive what they hold. TTLs only ever grow, and only when x
-- falls short, so most steps set none.
local function finish(L, w)
  local hd = L.hd
  local extend = hd[7] < L.target
  if extend then hd[7] = L.target + SLACK end
  w[#w + 1] = 'n'
  w[#w + 1] = pack(HEAD, hd[1], hd[2], hd[3], hd[4], hd[5], hd[6], hd[7], hd[8], hd[9],
    hd[10])
  if L.touched then
    for s in pairs(L.touched) do
      local v = L.slots[s]
      w[#w + 1] = 'b' .. char(48 + s)
      w[#w + 1] = pack(SLOT, v[1], v[2], v[3], v[4], v[5], v[6])
    end
  end
  call('HSET', L.h, unpack(w))
  if extend then
    local life = hd[7] - now
    call('ZADD', L.z, '+inf', '~')
    call('PEXPIRE', L.h, life)
    call('PEXPIRE', L.z, life)
  end
end

local function retry_after(L)
  if L.nb == 0 then return L.retry end
  local need = {}
  local before, limit, amount = {L.b1, L.b2, L.b3}, {L.lu, L.lt, L.lr}, {L.u, L.t, L.r}
  for i = 1, 3 do
    need[i] = limit[i] >= 0 and clamp(before[i] - limit[i] + amount[i]) or 0
  end
  local missing, fields = {}, {}  -- read the slots not read yet in one HMGET
  for s = 0, L.nb do
    if not L.slots[s] and L.raw[s] == nil then
      missing[#missing + 1] = s
      fields[#fields + 1] = 'b' .. char(48 + s)
    end
  end
  if #fields > 0 then
    local values = call('HMGET', L.h, unpack(fields))
    for i, s in ipairs(missing) do L.raw[s] = values[i] end
  end
  for b = L.hi - L.nb, L.hi do
    local v = slot(L, b % (L.nb + 1))
    local done = true
    for i = 1, 3 do
      need[i] = need[i] - v[i] - v[i + 3]
      if need[i] > 0 then done = false end
    end
    if done then return (b + L.nb + 1) * L.bw - now end
  end
  return (L.hi + L.nb + 1) * L.bw - now
end

-- the names in a space-separated list
local function names(text)
  local out = {}
  for name in text:gmatch('%S+') do out[#out + 1] = name end
  return out
end

-- the steps -----------------------------------------------------------------------------

if op == 'reserve' then
  -- all or nothing over the enforced lines
  local lines, ok = {}, true
  for k = 1, #KEYS, 2 do
    local cfg = ARGV[6 + (k + 1) / 2]
    local nb, bw, target, enforce, u, t, r, lu, lt, lr, retry, na, pos =
      sunpack('<dddddddddddd', cfg)
    local L = open(k, nb, bw, target, nb > 0 and floor(now / bw) or 0)
    local hd = L.hd
    local b1, b2, b3 = hd[1] + hd[4], hd[2] + hd[5], hd[3] + hd[6]
    if b1 > MAXN then b1 = MAXN end
    if b2 > MAXN then b2 = MAXN end
    if b3 > MAXN then b3 = MAXN end
    L.b1, L.b2, L.b3, L.u, L.t, L.r, L.lu, L.lt, L.lr = b1, b2, b3, u, t, r, lu, lt, lr
    L.retry, L.na, L.cfg, L.pos = retry, na, cfg, pos
    local dup = L.e and entry(L.e) ~= nil
    local fits = dup or not ((lu >= 0 and b1 + u > lu) or (lt >= 0 and b2 + t > lt)
      or (lr >= 0 and b3 + r > lr))
    L.dup, L.fits = dup, fits
    if enforce == 1 and not fits then ok = false end
    lines[#lines + 1] = L
  end
  local out = {ok and 1 or 0}
  for _, L in ipairs(lines) do
    local fired, w = 0, {}
    if ok and not L.dup then
      local u, t, r = L.u, L.t, L.r
      local bucket = 0
      if L.nb > 0 then bucket = min(math.max(floor(now / L.bw), L.hi - L.nb), L.hi) end
      add(L, 3, bucket, u, t, r, 1)
      w[1], w[2] = ent, 'L' .. pack('<dddd', bucket, u, t, r)
      if A < L.hd[9] then L.hd[9] = A end  -- nextL stays at most the earliest deadline
      call('ZADD', L.z, As, did)
      if L.na > 0 then
        local a1, a2, a3 = L.b1 + u, L.b2 + t, L.b3 + r
        local pos, list = L.pos, nil
        -- thresholds ascend, and so do their levels: stop at the first one not reached
        for i = 1, L.na do
          local l1, l2, l3
          l1, l2, l3, pos = sunpack('<ddd', L.cfg, pos)
          if not ((l1 >= 0 and a1 >= l1) or (l2 >= 0 and a2 >= l2)
            or (l3 >= 0 and a3 >= l3)) then break end
          list = list or names(L.cfg:sub(L.pos + 24 * L.na))
          local field = 'a:' .. list[i]
          local marker = tonumber(call('HGET', L.h, field))
          if marker == nil or (marker > 0 and marker <= now) then
            local expiry = 0
            if L.nb > 0 then expiry = now + L.nb * L.bw end
            w[#w + 1] = field
            w[#w + 1] = expiry
            fired = fired + 2 ^ (i - 1)
          end
        end
      end
    end
    local retry = -1
    if not L.fits then retry = retry_after(L) end
    local n = #out
    out[n + 1], out[n + 2], out[n + 3] = L.b1, L.b2, L.b3
    out[n + 4], out[n + 5], out[n + 6] = L.fits and 1 or 0, retry, fired
    finish(L, w)
  end
  return out
end

if op == 'settle' then
  -- A is the reservation's deadline (0: unknown). A decision unknown to a counter that
  -- does not exist at all, before deadline + grace, was reserved and then lost (a Redis
  -- restart without persistence, a flush, an eviction): its spend is recorded as if
  -- forced, and the reply says so (2). A reservation that failed with a store error has
  -- no deadline: Redis may never have seen it, so it is never reported as lost.
  local changed = 0
  local settled = 'S' .. pack('<d', forget)
  for k = 1, #KEYS, 2 do
    local nb, bw, target, placed, inflight = sunpack('<ddddd', ARGV[6 + (k + 1) / 2])
    local L = open(k, nb, bw, target, placed)
    local st, bucket, u, t, r = entry(L.e)
    local lost = not st and A > 0 and L.hd[7] == 0 and now <= A + grace
    if lost then changed = 2 end
    local w = {}
    if st ~= 'S' and (st or force == 1 or lost) then
      if not st then
        bucket = 0
        if nb > 0 then bucket = min(placed, L.hi) end
      elseif st == 'L' then
        add(L, 3, bucket, u, t, r, -1)
      end
      if not release and inflight == 0 then add(L, 0, bucket, au, at, ar, 1) end
      w[1], w[2] = ent, settled
      call('ZADD', L.z, negforget, did)
      if changed == 0 then changed = 1 end
    end
    finish(L, w)
  end
  return changed
end

-- usage and cancel
local out = {}
for k = 1, #KEYS, 2 do
  local cfg = ARGV[6 + (k + 1) / 2]
  local nb, bw, target, pos = sunpack('<ddd', cfg)
  local list = names(cfg:sub(pos))
  local L = open(k, nb, bw, target, nb > 0 and floor(now / bw) or 0)
  if op == 'usage' then
    -- spent, settled, reserved, and which of the given alert markers are live
    local live = {}
    if #list > 0 then
      local fields = {}
      for i, name in ipairs(list) do fields[i] = 'a:' .. name end
      local markers = call('HMGET', L.h, unpack(fields))
      for i, name in ipairs(list) do
        local marker = tonumber(markers[i])
        if marker ~= nil and (marker == 0 or marker > now) then live[#live + 1] = name end
      end
    end
    local hd = L.hd
    out[#out + 1] = {{spent(L)}, {hd[1], hd[2], hd[3]}, {hd[4], hd[5], hd[6]}, live}
    -- keep what open changed, but never create a counter (nor extend its life)
    if hd[7] > 0 then
      L.target = 0
      finish(L, {})
    end
  else  -- cancel
    local st, bucket, u, t, r = entry(L.e)
    if st then
      if st == 'L' then add(L, 3, bucket, u, t, r, -1) end
      call('HDEL', L.h, ent)
      call('ZREM', L.z, did)
    end
    for _, name in ipairs(list) do call('HDEL', L.h, 'a:' .. name) end
    finish(L, {})
  end
end
if op == 'cancel' then return 1 end
return out
