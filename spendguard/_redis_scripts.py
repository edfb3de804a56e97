"""The Lua scripts of the Redis ledger: exact decimal-string arithmetic, the operations, reopen.

Each operation is the shared :data:`LIBRARY` followed by its body, so every script is
self-contained (one ``EVALSHA``) and atomic in Redis.
"""

__all__ = [
    "ADMIT",
    "COMMIT",
    "HOLDS",
    "LIBRARY",
    "RELEASE",
    "REOPEN",
    "RESERVE",
    "SETTLE_STUCK",
    "TOTALS",
]

# -- Lua ----------------------------------------------------------------------------------------
# KEYS: 1 book (hash: avail, at, spent, base, held, unref, ext, gen, ver; avail/at/spent are the
# newest view's, spent '' when unknown; gen names this book, ver counts its writes),
# 2 holds (hash id -> "units s|e created lease tool", created in Redis TIME seconds, lease in
# seconds, tool '' when not named; before 0.3 just "units s|e"), 3 deadlines (zset id -> lease
# deadline in Redis TIME seconds), 4 pending (list of "units evidence_time", commit order),
# 5 LOST marker (set of the generations found lost; while it exists the session is closed),
# 6 retired (set of the generations an operator retired with reopen), 7 settled (hash id ->
# "outcome units s|e tool": how a hold was settled and what it held, so a retried operation
# answers as the first did), 8 forget (zset id -> Redis TIME after which the settled record goes),
# 9 frozen (exists while an operator froze the session), and the policies' keys (see
# POLICY_LIBRARY): 10 policy, 11 calls, 12 calldata, 13 windows.
# Amounts are signed decimal strings of integer units; "0" is never written "-0".
LIBRARY = r"""
local BASE = 1e15
local function strip(s)
  s = string.gsub(s, '^0+', '')
  if s == '' then return '0' end
  return s
end
local function digits(s, last)
  if last < 1 then return 0 end
  return tonumber(string.sub(s, math.max(last - 14, 1), last))
end
local function ucmp(a, b)
  if #a ~= #b then return #a < #b and -1 or 1 end
  if a == b then return 0 end
  return a < b and -1 or 1
end
local function uadd(a, b)
  local out, carry, i, n = {}, 0, 0, math.max(#a, #b)
  while i < n or carry > 0 do
    local s = digits(a, #a - i) + digits(b, #b - i) + carry
    if s >= BASE then s, carry = s - BASE, 1 else carry = 0 end
    table.insert(out, 1, string.format('%015.0f', s))
    i = i + 15
  end
  return strip(table.concat(out))
end
local function usub(a, b)
  local out, borrow, i = {}, 0, 0
  while i < #a do
    local s = digits(a, #a - i) - digits(b, #b - i) - borrow
    if s < 0 then s, borrow = s + BASE, 1 else borrow = 0 end
    table.insert(out, 1, string.format('%015.0f', s))
    i = i + 15
  end
  return strip(table.concat(out))
end
local function split(x)
  if string.sub(x, 1, 1) == '-' then return true, string.sub(x, 2) end
  return false, x
end
local function join(neg, m)
  if neg and m ~= '0' then return '-' .. m end
  return m
end
local function add(a, b)
  local na, ma = split(a)
  local nb, mb = split(b)
  if na == nb then return join(na, uadd(ma, mb)) end
  if ucmp(ma, mb) >= 0 then return join(na, usub(ma, mb)) end
  return join(nb, usub(mb, ma))
end
local function sub(a, b)
  local nb, mb = split(b)
  return add(a, join(not nb, mb))
end
local function cmp(a, b)
  local na, ma = split(a)
  local nb, mb = split(b)
  if na ~= nb then return na and -1 or 1 end
  local c = ucmp(ma, mb)
  if na then return -c end
  return c
end
local function load_book()
  local f = redis.call('HMGET', KEYS[1], 'avail', 'at', 'spent', 'base', 'held', 'unref', 'ext',
                       'gen', 'ver')
  if not f[1] then return nil end
  return {avail = f[1], at = f[2], spent = f[3] or '', base = f[4] or nil, held = f[5],
          unref = f[6], ext = f[7], gen = f[8] or '', ver = tonumber(f[9] or '0')}
end
local function new_book(avail, spent, at)
  local book = {avail = avail, at = at, spent = spent, held = '0', unref = '0', ext = '0',
                gen = '', ver = 0}
  if spent ~= '' then book.base = spent end
  return book
end
local function expire(first, last)
  if ARGV[4] ~= '0' then
    for i = first, last do redis.call('PEXPIRE', KEYS[i], ARGV[4]) end
  end
end
-- Settled hold ids are remembered for the hold's lease, and at least this many seconds.
local MEMORY = 60
-- The caller's book: nil if there is none, false if the session is closed for lost data. It is
-- lost when the caller wrote to a book (generation ARGV[1], version ARGV[2] when last seen)
-- that is gone, was replaced, or is older than what the caller saw, unless an operator retired
-- that generation with reopen. The LOST marker then closes the session for every process.
local function open_book()
  local gen = ARGV[1]
  if redis.call('EXISTS', KEYS[5]) == 1 then
    if gen ~= '' then redis.call('SADD', KEYS[5], gen) end
    return false
  end
  local book = load_book()
  if gen == '' or (book and book.gen == gen and book.ver >= tonumber(ARGV[2])) then
    return book
  end
  if redis.call('SISMEMBER', KEYS[6], gen) == 1 then return book end
  redis.call('SADD', KEYS[5], gen)
  expire(5, 5)
  return false
end
-- Every write bumps the version; a book gets its generation when it is first saved.
local function save(book)
  if book.gen == '' then book.gen = ARGV[3] end
  book.ver = book.ver + 1
  redis.call('HSET', KEYS[1], 'avail', book.avail, 'at', book.at, 'spent', book.spent,
             'held', book.held, 'unref', book.unref, 'ext', book.ext, 'gen', book.gen,
             'ver', book.ver)
  if book.base then redis.call('HSET', KEYS[1], 'base', book.base) end
  expire(1, 4)
  expire(7, 8)
  expire(10, 13)
end
-- {1, generation, version, ...} for the caller to remember; {0} when data was lost.
local function reply(book, results)
  local out = {1, '', 0}
  if book then out[2], out[3] = book.gen, book.ver end
  for _, x in ipairs(results) do table.insert(out, x) end
  return out
end
-- Drops the longest prefix of pending charges the book's view shows absorbed.
local function reconcile(book)
  if book.spent == '' or not book.base then return end
  local spent, u = book.spent, tonumber(book.at)
  local dropped, n, done = '0', 0, false
  while not done do
    local batch = redis.call('LRANGE', KEYS[4], n, n + 99)
    done = #batch < 100
    for _, entry in ipairs(batch) do
      local space = string.find(entry, ' ', 1, true)
      local total = add(dropped, string.sub(entry, 1, space - 1))
      if tonumber(string.sub(entry, space + 1)) > u or cmp(add(book.base, total), spent) > 0 then
        done = true
        break
      end
      dropped, n = total, n + 1
    end
  end
  if n > 0 then
    redis.call('LTRIM', KEYS[4], n, -1)
    book.base = add(book.base, dropped)
    book.unref = sub(book.unref, dropped)
  end
end
-- A view replaces the kept one if it is newer, or if the kept one's update time is after this
-- view's read_at (a server clock that ran ahead); same time and less available also replaces.
local function observe(book, avail, spent, at, read)
  local u, cur = tonumber(at), tonumber(book.at)
  local ahead = read ~= '' and cur > tonumber(read)
  if not ahead and u <= cur then
    if u == cur and cmp(avail, book.avail) < 0 then
      book.avail, book.at, book.spent = avail, at, spent
    end
    return
  end
  book.avail, book.at, book.spent = avail, at, spent
  if spent == '' then return end
  if not book.base then
    book.base = spent
    return
  end
  reconcile(book)
end
-- Leases follow Redis TIME, one clock for every process (their own clocks may disagree).
local function clock()
  local t = redis.call('TIME')
  return tonumber(t[1]) + tonumber(t[2]) / 1000000
end
local function stamp(t)
  return string.format('%.17g', t)
end
local function parse_hold(v)
  local amount, kind, created, lease, tool = string.match(v, '^(%S+) (%S) (%S+) (%S+) (.*)$')
  if not amount then  -- written before 0.3
    return {amount = string.sub(v, 1, -3), kind = string.sub(v, -1), created = '', lease = '0',
            tool = ''}
  end
  return {amount = amount, kind = kind, created = created, lease = lease, tool = tool}
end
local function parse_settled(v)
  local outcome, amount, kind, tool = string.match(v, '^(%S+) (%S+) (%S)%s?(.*)$')
  return {outcome = outcome, amount = amount, kind = kind, tool = tool}
end
-- Closes an open hold (the caller moves its amount) and remembers how it was settled.
local function settle(id, hold, outcome, t)
  redis.call('HDEL', KEYS[2], id)
  redis.call('ZREM', KEYS[3], id)
  redis.call('HSET', KEYS[7], id, table.concat({outcome, hold.amount, hold.kind, hold.tool}, ' '))
  redis.call('ZADD', KEYS[8], stamp(t + math.max(tonumber(hold.lease), MEMORY)), id)
end
local function forget(t)
  local now = stamp(t)
  local ids = redis.call('ZRANGEBYSCORE', KEYS[8], '-inf', now)
  for _, id in ipairs(ids) do redis.call('HDEL', KEYS[7], id) end
  if #ids > 0 then redis.call('ZREMRANGEBYSCORE', KEYS[8], '-inf', now) end
end
-- Forgets expired settled records, then lapses due holds into external charges.
local function lapse(book, t)
  forget(t)
  local ids = redis.call('ZRANGEBYSCORE', KEYS[3], '-inf', stamp(t))
  for _, id in ipairs(ids) do
    local hold = parse_hold(redis.call('HGET', KEYS[2], id))
    book.held, book.ext = sub(book.held, hold.amount), add(book.ext, hold.amount)
    settle(id, hold, 'lapsed', t)
  end
end
-- Charges a settled hold's ``actual`` amount as its kind says.
local function charge(book, actual, kind, evidence)
  if kind == 'e' then
    book.ext = add(book.ext, actual)
  elseif actual ~= '0' then
    redis.call('RPUSH', KEYS[4], actual .. ' ' .. evidence)
    book.unref = add(book.unref, actual)
    -- The newest view may already show this payment (a refresh between paying and
    -- committing): it is evidence too, not only views still to come.
    reconcile(book)
  end
end
local function figures(book)
  return {book.avail, book.held, book.unref, book.ext}
end
"""

# -- policies -----------------------------------------------------------------------------------
# KEYS 10 policy (hash: 't:<tool>' -> units the tool uses, holds and commits; 'f:<mark>' -> 1
# once a soft threshold fired; 'last' -> the latest call time; 'horizon' -> the longest window
# seen; 'forgot' -> calls at or before this time are forgotten), 11 calls (zset id -> Redis TIME
# the call was granted, for the windows), 12 calldata (hash id -> "units live tool": the call's
# amount, 0 once released; live 1|0), 13 windows (hash "seconds|tool" -> "cutoff units count":
# running totals of one window over the calls after cutoff, so a decision does not scan it).
POLICY_LIBRARY = r"""
local function tool_add(tool, delta)
  local used = redis.call('HGET', KEYS[10], 't:' .. tool) or '0'
  redis.call('HSET', KEYS[10], 't:' .. tool, add(used, delta))
end
local function parse_call(v)
  if not v then return nil end
  local amount, live, tool = string.match(v, '^(%S+) (%S) (.*)$')
  return {amount = amount, live = live == '1', tool = tool}
end
local function parse_window(field, v)
  local bar = string.find(field, '|', 1, true)
  local cutoff, amount, count = string.match(v, '^(%S+) (%S+) (%S+)$')
  return {seconds = string.sub(field, 1, bar - 1), tool = string.sub(field, bar + 1),
          cutoff = tonumber(cutoff), amount = amount, count = tonumber(count)}
end
local function forgot()
  return tonumber(redis.call('HGET', KEYS[10], 'forgot') or '-inf')
end
-- Running totals of a window at time t: moved forward over the calls that left it, or built
-- again from the calls inside it when the calls it would need were forgotten already.
local function window(seconds, tool, t)
  local field, cutoff = seconds .. '|' .. tool, t - tonumber(seconds)
  local v, w = redis.call('HGET', KEYS[13], field), nil
  if v then w = parse_window(field, v) end
  local amount, count = '0', 0
  local from, upto = '(' .. stamp(cutoff), '+inf'
  if w and w.cutoff >= forgot() then
    amount, count = w.amount, w.count
    if cutoff <= w.cutoff then return amount, count end
    from, upto = '(' .. stamp(w.cutoff), stamp(cutoff)
  end
  local ids = redis.call('ZRANGEBYSCORE', KEYS[11], from, upto)
  local sign = (upto == '+inf') and 1 or -1
  for _, id in ipairs(ids) do
    local c = parse_call(redis.call('HGET', KEYS[12], id))
    if c and (tool == '' or c.tool == tool) then
      if sign == 1 then amount = add(amount, c.amount) else amount = sub(amount, c.amount) end
      if c.live then count = count + sign end
    end
  end
  redis.call('HSET', KEYS[13], field, stamp(cutoff) .. ' ' .. amount .. ' ' .. count)
  return amount, count
end
-- A granted call: kept for the windows, and added to the running totals that count it.
local function record_call(id, tool, amount, t)
  redis.call('ZADD', KEYS[11], stamp(t), id)
  redis.call('HSET', KEYS[12], id, amount .. ' 1 ' .. tool)
  local all, gone = redis.call('HGETALL', KEYS[13]), forgot()
  for i = 1, #all, 2 do
    local w = parse_window(all[i], all[i + 1])
    if w.cutoff >= gone and t > w.cutoff and (w.tool == '' or w.tool == tool) then
      redis.call('HSET', KEYS[13], all[i],
                 all[i + 1]:match('^%S+') .. ' ' .. add(w.amount, amount) .. ' ' .. (w.count + 1))
    end
  end
end
-- A hold settled: committed for ``actual``, or released (nil), which gives its share of the
-- tool's cap and of the windows back. A lapsed hold is not settled here: it counts in full.
local function use(id, hold, actual)
  local spent = actual or '0'
  if hold.tool ~= '' then tool_add(hold.tool, sub(spent, hold.amount)) end
  local c = parse_call(redis.call('HGET', KEYS[12], id))
  if not c then return end
  local at, gone = tonumber(redis.call('ZSCORE', KEYS[11], id)), forgot()
  local change = sub(spent, c.amount)
  local all = redis.call('HGETALL', KEYS[13])
  for i = 1, #all, 2 do
    local w = parse_window(all[i], all[i + 1])
    if w.cutoff >= gone and at > w.cutoff and (w.tool == '' or w.tool == c.tool) then
      local count = w.count - ((actual == nil and c.live) and 1 or 0)
      redis.call('HSET', KEYS[13], all[i],
                 all[i + 1]:match('^%S+') .. ' ' .. add(w.amount, change) .. ' ' .. count)
    end
  end
  local live = (actual ~= nil and c.live) and '1' or '0'
  redis.call('HSET', KEYS[12], id, spent .. ' ' .. live .. ' ' .. c.tool)
end
-- Calls older than every window are forgotten.
local function forget_calls(t, horizon)
  local longest = math.max(tonumber(redis.call('HGET', KEYS[10], 'horizon') or '0'), horizon)
  redis.call('HSET', KEYS[10], 'horizon', longest)
  local edge = stamp(t - longest)
  local ids = redis.call('ZRANGEBYSCORE', KEYS[11], '-inf', edge)
  if #ids > 0 then
    for _, id in ipairs(ids) do redis.call('HDEL', KEYS[12], id) end
    redis.call('ZREMRANGEBYSCORE', KEYS[11], '-inf', edge)
    redis.call('HSET', KEYS[10], 'forgot', edge)
  end
end
"""

# ARGV 1-4 of every operation: the generation and version of the book the caller last saw
# ('' and 0 if none), a generation for a new book, key ttl in ms ('0' = none).

# ARGV 5-: hold_id, amount, avail, spent ('' = unknown), at, read_at ('' = unknown), kind (s|e),
# lease seconds, tool ('' = not named) -> granted (1, 0, or -1: the session is frozen), then
# the figures before the hold. A hold id open or settled already is never held again: granted
# if the amount is the one first held (a retry), refused otherwise.
_RESERVE_BODY = r"""
local book = open_book()
if book == false then return {0} end
local id, amount, now = ARGV[5], ARGV[6], clock()
if book then observe(book, ARGV[7], ARGV[8], ARGV[9], ARGV[10])
else book = new_book(ARGV[7], ARGV[8], ARGV[9]) end
lapse(book, now)
local before, granted = figures(book), 0
local open, done = redis.call('HGET', KEYS[2], id), redis.call('HGET', KEYS[7], id)
if open or done then
  local first = open and parse_hold(open) or parse_settled(done)
  if first.amount == amount then
    granted = 1
    if open then before[2] = sub(before[2], amount) end
  end
elseif redis.call('EXISTS', KEYS[9]) == 1 then
  granted = -1
else
  local room = sub(book.avail, add(add(book.held, book.unref), book.ext))
  if cmp(room, '0') < 0 then room = '0' end
  if cmp(amount, room) <= 0 then
    granted = 1
    redis.call('HSET', KEYS[2], id,
               table.concat({amount, ARGV[11], stamp(now), ARGV[12], ARGV[13]}, ' '))
    redis.call('ZADD', KEYS[3], stamp(now + tonumber(ARGV[12])), id)
    book.held = add(book.held, amount)
    if ARGV[13] ~= '' then tool_add(ARGV[13], amount) end
  end
end
save(book)
table.insert(before, 1, granted)
return reply(book, before)
"""

# ARGV 5-: hold_id, actual, evidence_time -> 1 done (now or by an earlier call), 0 unknown,
# lapsed or released, -1 and the held amount: too much. A hold an operator dropped as not
# spent is charged all the same: its call says it spent.
_COMMIT_BODY = r"""
local book = open_book()
if book == false then return {0} end
if not book then return reply(nil, {0}) end
local id, actual, now = ARGV[5], ARGV[6], clock()
lapse(book, now)
local open, result = redis.call('HGET', KEYS[2], id), {0}
if open then
  local hold = parse_hold(open)
  if cmp(actual, hold.amount) > 0 then
    result = {-1, hold.amount}
  else
    settle(id, hold, 'committed', now)
    book.held = sub(book.held, hold.amount)
    use(id, hold, actual)
    charge(book, actual, hold.kind, ARGV[7])
    result = {1}
  end
else
  local done = redis.call('HGET', KEYS[7], id)
  local first = done and parse_settled(done)
  if first and first.outcome == 'committed' then
    result = {1}
  elseif first and first.outcome == 'dropped' then
    if cmp(actual, first.amount) > 0 then
      result = {-1, first.amount}
    else
      redis.call('HSET', KEYS[7], id,
                 table.concat({'committed', first.amount, first.kind, first.tool}, ' '))
      -- Its share of the tool's cap was given back when dropped: take ``actual`` again.
      if first.tool ~= '' then tool_add(first.tool, actual) end
      charge(book, actual, first.kind, ARGV[7])
      result = {1}
    end
  end
end
save(book)
return reply(book, result)
"""

# ARGV 5-: hold_id -> 1 released (now or by an earlier call), 0 unknown, lapsed or committed
_RELEASE_BODY = r"""
local book = open_book()
if book == false then return {0} end
if not book then return reply(nil, {0}) end
local now = clock()
lapse(book, now)
local open, result = redis.call('HGET', KEYS[2], ARGV[5]), 0
if open then
  local hold = parse_hold(open)
  settle(ARGV[5], hold, 'released', now)
  book.held = sub(book.held, hold.amount)
  use(ARGV[5], hold, nil)
  result = 1
else
  local done = redis.call('HGET', KEYS[7], ARGV[5])
  local outcome = done and parse_settled(done).outcome
  if outcome == 'released' or outcome == 'dropped' then result = 1 end
end
save(book)
return reply(book, {result})
"""

# ARGV 5-: avail, spent, at, read_at, has_view (0|1) -> the figures
_TOTALS_BODY = r"""
local book = open_book()
if book == false then return {0} end
if not book then
  if ARGV[9] == '0' then return reply(nil, {'0', '0', '0', '0'}) end
  book = new_book(ARGV[5], ARGV[6], ARGV[7])
elseif ARGV[9] == '1' then
  observe(book, ARGV[5], ARGV[6], ARGV[7], ARGV[8])
end
lapse(book, clock())
save(book)
return reply(book, figures(book))
"""

# ARGV 1-4 as above (ARGV[3] is the book's new generation) -> 1 if the session was closed.
# Retires every generation found lost, the caller's and the book's, and renames the book (unless
# a retry already did): whatever Redis holds now is the book from here on, and a process that
# remembers a retired generation takes the book as it finds it.
_REOPEN_BODY = r"""
local closed = redis.call('EXISTS', KEYS[5])
if closed == 1 then
  redis.call('SUNIONSTORE', KEYS[6], KEYS[6], KEYS[5])
  redis.call('DEL', KEYS[5])
end
if ARGV[1] ~= '' then redis.call('SADD', KEYS[6], ARGV[1]) end
local gen = redis.call('HGET', KEYS[1], 'gen')
if gen and gen ~= ARGV[3] then
  redis.call('SADD', KEYS[6], gen)
  redis.call('HSET', KEYS[1], 'gen', ARGV[3])
end
expire(6, 6)
return closed
"""
# ARGV 5- none -> Redis TIME, then id, hold record, deadline for every open hold
_HOLDS_BODY = r"""
local book = open_book()
if book == false then return {0} end
local now = clock()
if not book then return reply(nil, {stamp(now)}) end
lapse(book, now)
save(book)
local out, all = {stamp(now)}, redis.call('HGETALL', KEYS[2])
for i = 1, #all, 2 do
  table.insert(out, all[i])
  table.insert(out, all[i + 1])
  table.insert(out, redis.call('ZSCORE', KEYS[3], all[i]))
end
return reply(book, out)
"""

# ARGV 5-: hold_id, charge (1: count its full amount as spent, 0: drop it as not spent)
# -> 0 not open, or 1, Redis TIME, the hold record and its deadline
_SETTLE_STUCK_BODY = r"""
local book = open_book()
if book == false then return {0} end
if not book then return reply(nil, {0}) end
local id, now = ARGV[5], clock()
lapse(book, now)
local open = redis.call('HGET', KEYS[2], id)
if not open then return reply(book, {0}) end
local hold, deadline = parse_hold(open), redis.call('ZSCORE', KEYS[3], id)
book.held = sub(book.held, hold.amount)
if ARGV[6] == '1' then
  book.ext = add(book.ext, hold.amount)
  settle(id, hold, 'charged', now)
else
  settle(id, hold, 'dropped', now)
  use(id, hold, nil)
end
save(book)
return reply(book, {1, stamp(now), open, deadline})
"""

# ARGV 5-: hold_id, amount, avail, spent, at, read_at, kind, lease, tool as for RESERVE; 14
# probe (1: decide, hold nothing), 15 the tool's cap ('' = none), 16 horizon (seconds), 17 the
# number of windows W, then 4 per window: seconds, amount, calls ('' = no limit), tool ('' =
# every tool); then the number of marks M, then 3 per mark: name, kind (s|t), at.
# -> granted (1, 0, or -1: frozen), rule ('' = fits), room, window index (-1 = none), the
# figures before the hold, then the names of the marks this hold crossed first.
_ADMIT_BODY = r"""
local book = open_book()
if book == false then return {0} end
local id, amount, tool, now = ARGV[5], ARGV[6], ARGV[13], clock()
local probe, horizon, nw = ARGV[14] == '1', tonumber(ARGV[16]), tonumber(ARGV[17])
if book then observe(book, ARGV[7], ARGV[8], ARGV[9], ARGV[10])
else book = new_book(ARGV[7], ARGV[8], ARGV[9]) end
lapse(book, now)
if horizon > 0 then forget_calls(now, horizon) end
local last = tonumber(redis.call('HGET', KEYS[10], 'last') or '-inf')
local t = math.max(now, last)  -- calls stay in time order, whatever TIME did
local before = figures(book)
local room = sub(book.avail, add(add(book.held, book.unref), book.ext))
if cmp(room, '0') < 0 then room = '0' end
local function answer(granted, rule, left, index, fired)
  save(book)
  local out = {granted, rule, left, index}
  for _, x in ipairs(before) do table.insert(out, x) end
  for _, x in ipairs(fired or {}) do table.insert(out, x) end
  return reply(book, out)
end
local open, done = redis.call('HGET', KEYS[2], id), redis.call('HGET', KEYS[7], id)
if not probe and (open or done) then
  local first = open and parse_hold(open) or parse_settled(done)
  if first.amount ~= amount then return answer(0, 'hold_exists', '0', -1) end
  if open then before[2] = sub(before[2], amount) end
  return answer(1, '', room, -1)
end
if redis.call('EXISTS', KEYS[9]) == 1 then return answer(-1, '', '0', -1) end
if cmp(amount, room) > 0 then return answer(0, 'session_limit', room, -1) end
if ARGV[15] ~= '' and tool ~= '' then
  local left = sub(ARGV[15], redis.call('HGET', KEYS[10], 't:' .. tool) or '0')
  if cmp(amount, left) > 0 then
    if cmp(left, '0') < 0 then left = '0' end
    return answer(0, 'tool_cap', left, -1)
  end
end
for i = 0, nw - 1 do
  local at = 18 + i * 4
  local spent, count = window(ARGV[at], ARGV[at + 3], t)
  if ARGV[at + 1] ~= '' then
    local left = sub(ARGV[at + 1], spent)
    if cmp(amount, left) > 0 then
      if cmp(left, '0') < 0 then left = '0' end
      return answer(0, 'window_amount', left, i)
    end
  end
  if ARGV[at + 2] ~= '' and count >= tonumber(ARGV[at + 2]) then
    return answer(0, 'window_count', '0', i)
  end
end
if probe then return answer(0, '', room, -1) end
redis.call('HSET', KEYS[2], id, table.concat({amount, ARGV[11], stamp(now), ARGV[12], tool}, ' '))
redis.call('ZADD', KEYS[3], stamp(now + tonumber(ARGV[12])), id)
book.held = add(book.held, amount)
if tool ~= '' then tool_add(tool, amount) end
if horizon > 0 then
  redis.call('HSET', KEYS[10], 'last', stamp(t))
  record_call(id, tool, amount, t)
end
local fired, m = {}, 18 + nw * 4
local left = sub(book.avail, add(add(book.held, book.unref), book.ext))
for i = 0, tonumber(ARGV[m]) - 1 do
  local name, kind, mark = ARGV[m + 1 + i * 3], ARGV[m + 2 + i * 3], ARGV[m + 3 + i * 3]
  if redis.call('HEXISTS', KEYS[10], 'f:' .. name) == 0 then
    local crossed
    if kind == 's' then
      crossed = cmp(left, mark) <= 0
    else
      crossed = cmp(redis.call('HGET', KEYS[10], 't:' .. tool) or '0', mark) >= 0
    end
    if crossed then
      redis.call('HSET', KEYS[10], 'f:' .. name, '1')
      table.insert(fired, name)
    end
  end
end
return answer(1, '', room, -1, fired)
"""

RESERVE, COMMIT, RELEASE, TOTALS, REOPEN, HOLDS, SETTLE_STUCK, ADMIT = (
    LIBRARY + POLICY_LIBRARY + body
    for body in (
        _RESERVE_BODY,
        _COMMIT_BODY,
        _RELEASE_BODY,
        _TOTALS_BODY,
        _REOPEN_BODY,
        _HOLDS_BODY,
        _SETTLE_STUCK_BODY,
        _ADMIT_BODY,
    )
)
