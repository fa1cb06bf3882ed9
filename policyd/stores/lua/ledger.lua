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
--                           is due. 80 bytes: longer than hash-max-listpack-value, so H is
--                           a hash table from the start (a listpack finds by linear search)
--             b<slot>       rolling windows: su st sr vu vt vr of the bucket that ring
--                           slot holds, slot = bucket % (n_buckets + 1), named by the
--                           character 48 + slot; absent: zeros
--             e:<decision>  entry: 'L' bucket usd tokens requests (live reservation),
--                           'X' bucket forget_ms (expired), 'S' forget_ms (settled);
--                           a state letter, then little-endian doubles
--             a:<threshold> alert marker: 0 (until the window ends) or expiry ms
--   Z (zset)  decision -> deadline ms of a live reservation (score > 0), or -forget_ms
--             of an expired or settled one (score < 0), plus the member TOP at +inf so
--             that Z is never empty (an empty key vanishes, and would come back without
--             a TTL); TOP is longer than zset-max-listpack-value, so Z is a skiplist
--             (O(log n) inserts) from the start
--
-- What a step costs (callgrind on redis-server, docs/performance.md) is mostly the Lua
-- interpreter, not the commands: ~50 instructions a bytecode, ~150 a named table field
-- read, ~10,000 to make a table with 28 named fields, ~1,000 to make a closure, ~2,500
-- a script argument, 1,400-4,200 a struct.pack / unpack of 4-10 doubles. So the common steps (reserve, settle with
-- no maintenance due) run as straight-line code on locals, one HMGET, one HSET and one
-- ZADD per line, with no table per line and no function made per call beyond the four
-- below; everything rare (a rolling window sliding, a deadline due, a sweep, a refused
-- line's retry time, usage, cancel) is in make_rare, made only when needed. Every figure
-- saturates within [0, 2^53 - 1], as in counter.py.
--
-- KEYS: H, Z per line.
-- ARGV: [1] the header, then one block per line (packed doubles, then text);
--       [2] the decision id; [3] the score this step gives the decision in Z (decimal
--       text): its deadline (reserve) or -forget ms (settle).
--   header: 9 doubles: op (1 reserve, 2 settle, 3 usage, 4 cancel), now ms, A, grace ms,
--           force flag, actual usd, tokens, requests (-1: release), forget ms (now +
--           grace). A is the deadline (now + ttl) for reserve, the reservation's deadline
--           (0: unknown) for settle.
--   line:   n_buckets, bucket ms, expiry target ms (now + how long the keys must live), and
--     reserve: enforce, amount x3, limit x3 (-1: none), calendar retry ms, n alerts, length
--              of the names, levels x3 per alert (-1 where unlimited, thresholds
--              ascending), then the thresholds' names (space-separated)
--     settle:  placement bucket (used when forcing an unknown decision), in-flight flag
--              (1: a concurrency counter, the settle only releases)
--     cancel:  length of the names, then the alert markers to clear (the reservation
--              never happened)
--     usage:   length of the names, then the alert markers to report when live
-- Replies: reserve {ok, then per line: spent x3, fits, retry ms (-1: none), fired alerts
-- (bit i - 1 set: the i-th threshold fired)}, one flat array; settle 0 / 1 / 2 (lost);
-- usage per line {spent, settled, reserved, live alert names}; cancel 1.

local call, sunpack, pack, char, floor, min = redis.call, struct.unpack, struct.pack,
  string.char, math.floor, math.min
local blob, did = ARGV[1], ARGV[2]
local op, now, A, grace, force, au, at, ar, forget, at_line =
  sunpack('<ddddddddd', blob)
local ent = 'e:' .. did
local HEAD = '<dddddddddd'
local SLOT = '<dddddd'
local SLACK = 60000      -- keys live this much longer than needed, so TTLs are set rarely
local MAXN = 9007199254740991  -- 2^53 - 1: every counter field stays in [0, MAXN]
-- Z's member at +inf (see above); longer than 64 bytes
local TOP = '~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~'

-- a decision's entry as it stands now: state, bucket, amount (nil: none, or forgotten)
local function entry(text)
  if not text then return nil end
  local st = text:byte()
  if st == 76 then  -- 'L'
    local b, u, t, r = sunpack('<dddd', text, 2)
    return 'L', b, u, t, r
  elseif st == 88 then  -- 'X'
    local b, f = sunpack('<dd', text, 2)
    if f <= now then return nil end
    return 'X', b
  end
  if sunpack('<d', text, 2) <= now then return nil end
  return 'S'
end

-- the rare steps, made (with their tables and closures) only when a step needs one:
-- `made = made or make_rare(entry)`. make_rare reads what it needs from ARGV itself and
-- refers to no local of the chunk but TOP (which write refers to anyway), because every
-- local a function refers to costs an allocation on each call, whether it runs or not
local made
local function make_rare(entry)
  local R = {}
  local call, sunpack, pack, char, floor, min = redis.call, struct.unpack, struct.pack,
    string.char, math.floor, math.min
  local blob, did = ARGV[1], ARGV[2]
  local op, now, _, grace, _, _, _, _, _, at_line = struct.unpack('<ddddddddd', blob)
  local ent = 'e:' .. did
  local HEAD, SLOT, MAXN = '<dddddddddd', '<dddddd', 9007199254740991  -- as above
  local GC_EVERY = 10000  -- ms between sweeps of forgotten entries (caller's clock)
  local GC_BATCH = 256    -- entries removed per sweep at most (the next call goes on)

  local function clamp(n)
    if n < 0 then return 0 end
    if n > MAXN then return MAXN end
    return n
  end

  local function names(text)  -- the names in a space-separated list
    local out = {}
    for name in text:gmatch('%S+') do out[#out + 1] = name end
    return out
  end

  -- slide a rolling window to now, expire overdue reservations, sweep forgotten entries;
  -- write what changed (when the counter exists) and return `got` as a read after it
  function R.maintain(h, z, nb, bw, want, got)
    local hd = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0}
    if got[1] then hd = {sunpack(HEAD, got[1])} end
    local slots, touched, sw = {}, {}, want % (nb + 1)
    local function slot(s)  -- ring slot s's figures, read the first time
      local v = slots[s]
      if not v then
        local raw
        if s == sw then raw = got[3] else raw = call('HGET', h, char(98, 48 + s)) end
        if raw then v = {sunpack(SLOT, raw)} else v = {0, 0, 0, 0, 0, 0} end
        slots[s] = v
      end
      return v
    end
    local nows = string.format('%d', now)
    if nb > 0 then
      local cur, hi = floor(now / bw), hd[8] - 1
      if hi < 0 or cur > hi then
        if hi >= 0 then  -- forget the buckets that slid out: hi - nb .. cur - nb - 1
          local last, fields, missing = min(hi, cur - nb - 1), {}, {}
          for b = hi - nb, last do
            local s = b % (nb + 1)
            if s ~= sw then
              missing[#missing + 1] = s
              fields[#fields + 1] = char(98, 48 + s)
            end
          end
          if #fields > 0 then  -- one HMGET for them all
            local values = call('HMGET', h, unpack(fields))
            for i, s in ipairs(missing) do
              if values[i] then slots[s] = {sunpack(SLOT, values[i])}
              else slots[s] = {0, 0, 0, 0, 0, 0} end
            end
          end
          for b = hi - nb, last do
            local s = b % (nb + 1)
            local v = slot(s)
            for i = 1, 6 do hd[i] = clamp(hd[i] - v[i]) end
            slots[s] = {0, 0, 0, 0, 0, 0}
            touched[s] = true
          end
        end
        hd[8] = cur + 1
      end
    end
    if hd[9] <= now then
      local due = call('ZRANGEBYSCORE', z, '0', nows, 'WITHSCORES')
      for j = 1, #due, 2 do
        local d = due[j]
        local field = 'e:' .. d
        local st, bucket, u, t, r = entry(call('HGET', h, field))
        local text = nil
        if st == 'L' then
          -- release the reservation, when its bucket still counts
          if nb == 0 or bucket >= hd[8] - 1 - nb then
            hd[4], hd[5], hd[6] = clamp(hd[4] - u), clamp(hd[5] - t), clamp(hd[6] - r)
            if nb > 0 then
              local s = bucket % (nb + 1)
              local v = slot(s)
              v[4], v[5], v[6] = clamp(v[4] - u), clamp(v[5] - t), clamp(v[6] - r)
              touched[s] = true
            end
          end
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
        if d == did then got[2] = text or false end
      end
      local first = call('ZRANGEBYSCORE', z, '(0', '+inf', 'WITHSCORES', 'LIMIT', '0', '1')
      hd[9] = MAXN
      if #first > 0 and first[1] ~= TOP and first[1] ~= '~' then
        hd[9] = tonumber(first[2])
      end
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
    -- the figures go back to the step, which writes them (usage: when the counter
    -- exists); the ring slots that changed are written now (the step rewrites the one it
    -- changes)
    local exists = got[1]
    got[1] = pack(HEAD, unpack(hd))
    if touched[sw] then got[3] = pack(SLOT, unpack(slots[sw])) end
    if exists and next(touched) then
      local w = {}
      for s in pairs(touched) do
        w[#w + 1] = char(98, 48 + s)
        w[#w + 1] = pack(SLOT, unpack(slots[s]))
      end
      call('HSET', h, unpack(w))
    end
    return got
  end

  -- rolling windows: ms until enough old buckets slide out for the amount to fit (read
  -- after the step's write, like counter.py's retry_after_ms); calendar: `retry`
  function R.retry_after(h, nb, bw, hi, retry, b1, b2, b3, u, t, r, lu, lt, lr)
    if nb == 0 then return retry end
    local need = {
      lu >= 0 and clamp(b1 - lu + u) or 0,
      lt >= 0 and clamp(b2 - lt + t) or 0,
      lr >= 0 and clamp(b3 - lr + r) or 0,
    }
    local fields = {}
    for s = 0, nb do fields[s + 1] = char(98, 48 + s) end
    local values = call('HMGET', h, unpack(fields))
    for b = hi - nb, hi do
      local raw = values[b % (nb + 1) + 1]
      local v = {0, 0, 0, 0, 0, 0}
      if raw then v = {sunpack(SLOT, raw)} end
      local done = true
      for i = 1, 3 do
        need[i] = need[i] - v[i] - v[i + 3]
        if need[i] > 0 then done = false end
      end
      if done then return (b + nb + 1) * bw - now end
    end
    return (hi + nb + 1) * bw - now
  end

  -- the thresholds a reservation reached whose markers are not live: their bit mask, and
  -- the marks to write (field, value, ...)
  function R.alerts(h, levels, na, nlen, nb, bw, b1, b2, b3)
    local fired, marks, list, pos = 0, {}, nil, levels
    for i = 1, na do
      local l1, l2, l3
      l1, l2, l3, pos = sunpack('<ddd', blob, pos)
      if not ((l1 >= 0 and b1 >= l1) or (l2 >= 0 and b2 >= l2) or (l3 >= 0 and b3 >= l3))
      then break end
      list = list or names(blob:sub(levels + 24 * na, levels + 24 * na + nlen - 1))
      local field = 'a:' .. list[i]
      local marker = tonumber(call('HGET', h, field))
      if marker == nil or (marker > 0 and marker <= now) then
        local expiry = 0
        if nb > 0 then expiry = now + nb * bw end
        marks[#marks + 1] = field
        marks[#marks + 1] = expiry
        fired = fired + 2 ^ (i - 1)
      end
    end
    return fired, marks
  end

  -- put back the lines a refused reservation had reserved before the line that refused
  -- it: figures and ring slot as read, no entry, no deadline, no alert marks
  function R.undo(lines)
    for _, v in ipairs(lines) do
      local h, n, x, name, raw, marks = v[1], v[3], v[4], v[5], v[6], v[7]
      n = n:sub(1, 48) .. pack('<d', x) .. n:sub(57)  -- x as written: the counter exists
      if name and raw then
        call('HSET', h, 'n', n, name, raw)
      else
        call('HSET', h, 'n', n)
        if name then call('HDEL', h, name) end
      end
      local fields = {ent}
      if marks then
        for i = 1, #marks, 2 do fields[#fields + 1] = marks[i] end
      end
      call('HDEL', h, unpack(fields))
      call('ZREM', v[2], did)
    end
  end

  -- usage (per line {spent, settled, reserved, live alert names}) and cancel
  function R.usage_or_cancel(read, write)
    local out, pos = {}, at_line
    for k = 1, #KEYS, 2 do
      local h, z = KEYS[k], KEYS[k + 1]
      local nb, bw, target, nlen, p = sunpack('<dddd', blob, pos)
      pos = p + nlen
      local list = names(blob:sub(p, p + nlen - 1))
      local want = nb > 0 and floor(now / bw) or 0
      local got, su, st, sr, vu, vt, vr, x, hi1, nextL, nextG = read(h, nb, bw, want)
      if not su then
        got = R.maintain(h, z, nb, bw, want, got)
        su, st, sr, vu, vt, vr, x, hi1, nextL, nextG = sunpack(HEAD, got[1])
      end
      if op == 3 then
        -- which of the given alert markers are live
        local live = {}
        if #list > 0 then
          local fields = {}
          for i, name in ipairs(list) do fields[i] = 'a:' .. name end
          local markers = call('HMGET', h, unpack(fields))
          for i, name in ipairs(list) do
            local marker = tonumber(markers[i])
            if marker ~= nil and (marker == 0 or marker > now) then live[#live + 1] = name end
          end
        end
        out[#out + 1] = {{clamp(su + vu), clamp(st + vt), clamp(sr + vr)}, {su, st, sr},
          {vu, vt, vr}, live}
        -- keep what read changed, but never create a counter (nor extend its life)
        if x > 0 then write(h, z, x, 0, su, st, sr, vu, vt, vr, hi1, nextL, nextG) end
      else  -- cancel: the reservation never happened
        local state, bucket, u, t, r = entry(got[2])
        local w = {}
        if state then
          if state == 'L' and (nb == 0 or bucket >= hi1 - 1 - nb) then
            vu, vt, vr = clamp(vu - u), clamp(vt - t), clamp(vr - r)
            if nb > 0 then
              local s = bucket % (nb + 1)
              local raw = got[3]
              if s ~= want % (nb + 1) then raw = call('HGET', h, char(98, 48 + s)) end
              local v = {0, 0, 0, 0, 0, 0}
              if raw then v = {sunpack(SLOT, raw)} end
              v[4], v[5], v[6] = clamp(v[4] - u), clamp(v[5] - t), clamp(v[6] - r)
              w[1], w[2] = char(98, 48 + s), pack(SLOT, unpack(v))
            end
          end
          call('HDEL', h, ent)
          call('ZREM', z, did)
        end
        for _, name in ipairs(list) do call('HDEL', h, 'a:' .. name) end
        write(h, z, x, target, su, st, sr, vu, vt, vr, hi1, nextL, nextG, unpack(w))
      end
    end
    if op == 4 then return 1 end
    return out
  end

  return R
end

-- read a counter: `got` = {figures, this decision's entry, the ring slot of bucket
-- `want`} (rolling windows; calendar: two fields), then the ten figures; nothing after
-- `got` when the counter needs maintenance first (made.maintain: a rolling window to
-- slide, a deadline due, a sweep due, or no counter yet)
local function read(h, nb, bw, want)
  local got
  if nb > 0 then
    got = call('HMGET', h, 'n', ent, char(98, 48 + want % (nb + 1)))
  else
    got = call('HMGET', h, 'n', ent)
  end
  local n = got[1]
  if n then
    local su, st, sr, vu, vt, vr, x, hi1, nextL, nextG = sunpack('<dddddddddd', n)
    if nextL > now and nextG > now and (nb == 0 or floor(now / bw) < hi1) then
      return got, su, st, sr, vu, vt, vr, x, hi1, nextL, nextG
    end
  end
  return got
end

-- write a line's figures (and the fields after them), and make both keys outlive what
-- they hold: TTLs only ever grow, and only when x falls short, so most steps set none
local function write(h, z, x, target, su, st, sr, vu, vt, vr, hi1, nextL, nextG, ...)
  local extend = x < target
  if extend then x = target + SLACK end
  call('HSET', h, 'n', pack('<dddddddddd', su, st, sr, vu, vt, vr, x, hi1, nextL, nextG),
    ...)
  if extend then
    local life = x - now
    call('ZADD', z, '+inf', TOP)
    call('PEXPIRE', h, life)
    call('PEXPIRE', z, life)
  end
end

-- the steps -----------------------------------------------------------------------------

if op == 1 then
  -- reserve: all or nothing over the enforced lines. One pass: each line is read, checked
  -- and written in turn; when an enforced line does not fit, the lines reserved before it
  -- are put back as they were (undo), and the rest are only read
  local out, ok, pos, undo, late = {0}, true, at_line, nil, nil
  for k = 1, #KEYS, 2 do
    local h, z, o = KEYS[k], KEYS[k + 1], 3 * k - 1
    local nb, bw, target, enforce, u, t, r, lu, lt, lr, retry, na, nlen, levels =
      sunpack('<ddddddddddddd', blob, pos)
    pos = levels + 24 * na + nlen
    local cur = nb > 0 and floor(now / bw) or 0
    local got, su, st, sr, vu, vt, vr, x, hi1, nextL, nextG = read(h, nb, bw, cur)
    if not su then
      made = made or make_rare(entry)
      got = made.maintain(h, z, nb, bw, cur, got)
      su, st, sr, vu, vt, vr, x, hi1, nextL, nextG = sunpack(HEAD, got[1])
    end
    local b1, b2, b3 = su + vu, st + vt, sr + vr
    if b1 > MAXN then b1 = MAXN end
    if b2 > MAXN then b2 = MAXN end
    if b3 > MAXN then b3 = MAXN end
    local dup = got[2] and entry(got[2]) ~= nil
    local fits = dup or not ((lu >= 0 and b1 + u > lu) or (lt >= 0 and b2 + t > lt)
      or (lr >= 0 and b3 + r > lr))
    out[o], out[o + 1], out[o + 2], out[o + 3], out[o + 4], out[o + 5] =
      b1, b2, b3, fits and 1 or 0, -1, 0
    if not fits then  -- when it would: worked out at the end, on what this step leaves
      late = late or {}
      late[#late + 1] = {o, h, nb, bw, hi1 - 1, retry, b1, b2, b3, u, t, r, lu, lt, lr}
    end
    if ok and enforce == 1 and not fits then
      ok = false
      if undo then
        made = made or make_rare(entry)
        made.undo(undo)
        for j = 7, o - 1, 6 do out[j] = 0 end  -- nor did their alerts fire
      end
    end
    if not ok or dup then  -- refused, or reserved already
      write(h, z, x, target, su, st, sr, vu, vt, vr, hi1, nextL, nextG)
    else
      local a, b, c = vu + u, vt + t, vr + r
      if a > MAXN then a = MAXN end
      if b > MAXN then b = MAXN end
      if c > MAXN then c = MAXN end
      if A < nextL then nextL = A end  -- nextL stays at most the earliest deadline
      local fired, marks = 0, nil
      if na > 0 then  -- thresholds ascend: stop at the first one not reached
        local l1, l2, l3 = sunpack('<ddd', blob, levels)
        if (l1 >= 0 and b1 + u >= l1) or (l2 >= 0 and b2 + t >= l2)
          or (l3 >= 0 and b3 + r >= l3) then
          made = made or make_rare(entry)
          fired, marks = made.alerts(h, levels, na, nlen, nb, bw,
            b1 + u, b2 + t, b3 + r)
          out[o + 5] = fired
        end
      end
      call('ZADD', z, ARGV[3], did)
      local name, raw = false, nil
      if nb == 0 then
        if fired == 0 then
          write(h, z, x, target, su, st, sr, a, b, c, hi1, nextL, nextG, ent,
            'L' .. pack('<dddd', 0, u, t, r))
        else
          write(h, z, x, target, su, st, sr, a, b, c, hi1, nextL, nextG, ent,
            'L' .. pack('<dddd', 0, u, t, r), unpack(marks))
        end
      else
        -- the bucket new spend goes to: now's, never one that has slid out
        local hi = hi1 - 1
        local bucket = min(math.max(cur, hi - nb), hi)
        local s = bucket % (nb + 1)
        name, raw = char(98, 48 + s), got[3]
        if s ~= cur % (nb + 1) then raw = call('HGET', h, name) end
        local p1, p2, p3, q1, q2, q3 = 0, 0, 0, 0, 0, 0
        if raw then p1, p2, p3, q1, q2, q3 = sunpack(SLOT, raw) end
        q1, q2, q3 = q1 + u, q2 + t, q3 + r
        if q1 > MAXN then q1 = MAXN end
        if q2 > MAXN then q2 = MAXN end
        if q3 > MAXN then q3 = MAXN end
        local E, S = 'L' .. pack('<dddd', bucket, u, t, r), pack(SLOT, p1, p2, p3, q1, q2, q3)
        if fired == 0 then
          write(h, z, x, target, su, st, sr, a, b, c, hi1, nextL, nextG, ent, E, name, S)
        else
          write(h, z, x, target, su, st, sr, a, b, c, hi1, nextL, nextG, ent, E, name, S,
            unpack(marks))
        end
      end
      -- what undo needs to put this line back: the figures as read, x as written, the
      -- ring slot as read, the alert marks
      if x < target then x = target + SLACK end
      undo = undo or {}
      undo[#undo + 1] = {h, z, got[1], x, name, raw, marks}
    end
  end
  if ok then out[1] = 1 end
  if late then
    made = made or make_rare(entry)
    local R = made
    for _, v in ipairs(late) do out[v[1] + 4] = R.retry_after(unpack(v, 2)) end
  end
  return out
end

if op == 2 then
  -- settle. A is the reservation's deadline (0: unknown). A decision unknown to a
  -- counter that does not exist at all, before deadline + grace, was reserved and then
  -- lost (a Redis restart without persistence, a flush, an eviction): its spend is
  -- recorded as if forced, and the reply says so (2). A reservation that failed with a
  -- store error has no deadline: Redis may never have seen it, so it is never reported
  -- as lost.
  local changed, pos, release = 0, at_line, au < 0
  local settled = nil
  for k = 1, #KEYS, 2 do
    local h, z = KEYS[k], KEYS[k + 1]
    local nb, bw, target, placed, inflight, after = sunpack('<ddddd', blob, pos)
    pos = after
    local got, su, st, sr, vu, vt, vr, x, hi1, nextL, nextG = read(h, nb, bw, placed)
    if not su then
      made = made or make_rare(entry)
      got = made.maintain(h, z, nb, bw, placed, got)
      su, st, sr, vu, vt, vr, x, hi1, nextL, nextG = sunpack(HEAD, got[1])
    end
    local state, bucket, u, t, r = entry(got[2])
    local lost = not state and A > 0 and x == 0 and now <= A + grace
    if lost then changed = 2 end
    if state == 'S' or not (state or force == 1 or lost) then  -- nothing to do
      write(h, z, x, target, su, st, sr, vu, vt, vr, hi1, nextL, nextG)
    else
      local hi = hi1 - 1
      if not state then
        bucket = 0
        if nb > 0 then bucket = min(placed, hi) end
      end
      local live = nb == 0 or bucket >= hi - nb  -- the bucket still counts
      local record = not release and inflight == 0
      if live and state == 'L' then  -- release the reservation
        vu, vt, vr = vu - u, vt - t, vr - r
        if vu < 0 then vu = 0 end
        if vt < 0 then vt = 0 end
        if vr < 0 then vr = 0 end
      end
      if live and record then  -- record the spend
        su, st, sr = su + au, st + at, sr + ar
        if su > MAXN then su = MAXN end
        if st > MAXN then st = MAXN end
        if sr > MAXN then sr = MAXN end
      end
      settled = settled or 'S' .. pack('<d', forget)
      call('ZADD', z, ARGV[3], did)
      if changed == 0 then changed = 1 end
      if nb == 0 or not live or (state ~= 'L' and not record) then
        write(h, z, x, target, su, st, sr, vu, vt, vr, hi1, nextL, nextG, ent, settled)
      else  -- the bucket's own figures, likewise
        local s = bucket % (nb + 1)
        local name, raw = char(98, 48 + s), got[3]
        if s ~= placed % (nb + 1) then raw = call('HGET', h, name) end
        local p1, p2, p3, q1, q2, q3 = 0, 0, 0, 0, 0, 0
        if raw then p1, p2, p3, q1, q2, q3 = sunpack(SLOT, raw) end
        if state == 'L' then
          q1, q2, q3 = q1 - u, q2 - t, q3 - r
          if q1 < 0 then q1 = 0 end
          if q2 < 0 then q2 = 0 end
          if q3 < 0 then q3 = 0 end
        end
        if record then
          p1, p2, p3 = p1 + au, p2 + at, p3 + ar
          if p1 > MAXN then p1 = MAXN end
          if p2 > MAXN then p2 = MAXN end
          if p3 > MAXN then p3 = MAXN end
        end
        write(h, z, x, target, su, st, sr, vu, vt, vr, hi1, nextL, nextG, ent, settled,
          name, pack(SLOT, p1, p2, p3, q1, q2, q3))
      end
    end
  end
  return changed
end

return make_rare(entry).usage_or_cancel(read, write)
