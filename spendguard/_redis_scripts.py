"""The Lua scripts of the Redis ledger: exact decimal-string arithmetic and the four operations.

Each operation is the shared :data:`LIBRARY` followed by its body, so every script is
self-contained (one ``EVALSHA``) and atomic in Redis.
"""

__all__ = ["COMMIT", "LIBRARY", "RELEASE", "RESERVE", "TOTALS"]

# -- Lua ----------------------------------------------------------------------------------------
# KEYS: 1 book (hash: avail, at, spent, base, held, unref, ext; avail/at/spent are the newest
# view's, spent '' when unknown), 2 holds (hash id -> "units s|e"),
# 3 deadlines (zset id -> lease deadline in Redis TIME seconds), 4 pending (list of
# "units evidence_time", commit order).
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
  local f = redis.call('HMGET', KEYS[1], 'avail', 'at', 'spent', 'base', 'held', 'unref', 'ext')
  if not f[1] then return nil end
  return {avail = f[1], at = f[2], spent = f[3] or '', base = f[4] or nil, held = f[5],
          unref = f[6], ext = f[7]}
end
local function new_book(avail, spent, at)
  local book = {avail = avail, at = at, spent = spent, held = '0', unref = '0', ext = '0'}
  if spent ~= '' then book.base = spent end
  return book
end
local function save(book, ttl)
  redis.call('HSET', KEYS[1], 'avail', book.avail, 'at', book.at, 'spent', book.spent,
             'held', book.held, 'unref', book.unref, 'ext', book.ext)
  if book.base then redis.call('HSET', KEYS[1], 'base', book.base) end
  if ttl ~= '0' then
    for i = 1, 4 do redis.call('PEXPIRE', KEYS[i], ttl) end
  end
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
local function lapse(book, t)
  local now = stamp(t)
  local ids = redis.call('ZRANGEBYSCORE', KEYS[3], '-inf', now)
  for _, id in ipairs(ids) do
    local amount = string.sub(redis.call('HGET', KEYS[2], id), 1, -3)
    book.held, book.ext = sub(book.held, amount), add(book.ext, amount)
    redis.call('HDEL', KEYS[2], id)
  end
  if #ids > 0 then redis.call('ZREMRANGEBYSCORE', KEYS[3], '-inf', now) end
end
local function figures(book)
  return {book.avail, book.held, book.unref, book.ext}
end
"""

# ARGV: hold_id, amount, avail, spent ('' = unknown), at, read_at ('' = unknown), kind (s|e),
# lease seconds, ttl_ms
_RESERVE_BODY = r"""
local book, now = load_book(), clock()
if book then observe(book, ARGV[3], ARGV[4], ARGV[5], ARGV[6])
else book = new_book(ARGV[3], ARGV[4], ARGV[5]) end
lapse(book, now)
local before, granted = figures(book), 0
if redis.call('HEXISTS', KEYS[2], ARGV[1]) == 0 then
  local room = sub(book.avail, add(add(book.held, book.unref), book.ext))
  if cmp(room, '0') < 0 then room = '0' end
  if cmp(ARGV[2], room) <= 0 then
    granted = 1
    redis.call('HSET', KEYS[2], ARGV[1], ARGV[2] .. ' ' .. ARGV[7])
    redis.call('ZADD', KEYS[3], stamp(now + tonumber(ARGV[8])), ARGV[1])
    book.held = add(book.held, ARGV[2])
  end
end
save(book, ARGV[9])
table.insert(before, 1, granted)
return before
"""

# ARGV: hold_id, actual, evidence_time, ttl_ms -> {1} done, {0} unknown, {-1, held} too much
_COMMIT_BODY = r"""
local book = load_book()
if not book then return {0} end
lapse(book, clock())
local hold, result = redis.call('HGET', KEYS[2], ARGV[1]), {0}
if hold then
  local amount, kind = string.sub(hold, 1, -3), string.sub(hold, -1)
  if cmp(ARGV[2], amount) > 0 then
    result = {-1, amount}
  else
    redis.call('HDEL', KEYS[2], ARGV[1])
    redis.call('ZREM', KEYS[3], ARGV[1])
    book.held = sub(book.held, amount)
    if kind == 'e' then
      book.ext = add(book.ext, ARGV[2])
    elseif ARGV[2] ~= '0' then
      redis.call('RPUSH', KEYS[4], ARGV[2] .. ' ' .. ARGV[3])
      book.unref = add(book.unref, ARGV[2])
      -- The newest view may already show this payment (a refresh between paying and
      -- committing): it is evidence too, not only views still to come.
      reconcile(book)
    end
    result = {1}
  end
end
save(book, ARGV[4])
return result
"""

# ARGV: hold_id, ttl_ms -> {1} released, {0} unknown
_RELEASE_BODY = r"""
local book = load_book()
if not book then return {0} end
lapse(book, clock())
local hold, result = redis.call('HGET', KEYS[2], ARGV[1]), {0}
if hold then
  redis.call('HDEL', KEYS[2], ARGV[1])
  redis.call('ZREM', KEYS[3], ARGV[1])
  book.held = sub(book.held, string.sub(hold, 1, -3))
  result = {1}
end
save(book, ARGV[2])
return result
"""

# ARGV: avail, spent, at, read_at, has_view (0|1), ttl_ms
_TOTALS_BODY = r"""
local book = load_book()
if not book then
  if ARGV[5] == '0' then return {'0', '0', '0', '0'} end
  book = new_book(ARGV[1], ARGV[2], ARGV[3])
elseif ARGV[5] == '1' then
  observe(book, ARGV[1], ARGV[2], ARGV[3], ARGV[4])
end
lapse(book, clock())
save(book, ARGV[6])
return figures(book)
"""
RESERVE, COMMIT, RELEASE, TOTALS = (
    LIBRARY + body for body in (_RESERVE_BODY, _COMMIT_BODY, _RELEASE_BODY, _TOTALS_BODY)
)
