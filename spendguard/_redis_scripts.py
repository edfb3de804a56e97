"""The Lua scripts of the Redis ledger: exact decimal-string arithmetic, the operations, reopen.

Each operation is the shared :data:`LIBRARY` followed by its body, so every script is
self-contained (one ``EVALSHA``) and atomic in Redis.
"""

__all__ = [
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
# "outcome units s|e": how a hold was settled and what it held, so a retried operation answers
# as the first did), 8 forget (zset id -> Redis TIME after which the settled record goes),
# 9 frozen (exists while an operator froze the session).
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
  local outcome, amount, kind = string.match(v, '^(%S+) (%S+) (%S+)$')
  return {outcome = outcome, amount = amount, kind = kind}
end
-- Closes an open hold (the caller moves its amount) and remembers how it was settled.
local function settle(id, hold, outcome, t)
  redis.call('HDEL', KEYS[2], id)
  redis.call('ZREM', KEYS[3], id)
  redis.call('HSET', KEYS[7], id, outcome .. ' ' .. hold.amount .. ' ' .. hold.kind)
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
      redis.call('HSET', KEYS[7], id, 'committed ' .. first.amount .. ' ' .. first.kind)
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
end
save(book)
return reply(book, {1, stamp(now), open, deadline})
"""

RESERVE, COMMIT, RELEASE, TOTALS, REOPEN, HOLDS, SETTLE_STUCK = (
    LIBRARY + body
    for body in (
        _RESERVE_BODY,
        _COMMIT_BODY,
        _RELEASE_BODY,
        _TOTALS_BODY,
        _REOPEN_BODY,
        _HOLDS_BODY,
        _SETTLE_STUCK_BODY,
    )
)
