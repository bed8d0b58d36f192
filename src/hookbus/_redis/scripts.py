"""Lua scripts run by Redis, so that each step is atomic on the server.

``STORE``: store a batch of emitted events in one round trip. Each durable
event is appended to its stream and then announced live with its stream id
(so an announcement always follows a successful store); each ephemeral one
is only published. A refused event is reported by its number, with the
error, and does not fail the others. The batch is sent as compactly as
possible (one argument per event, the types once): packing arguments is
most of a client's cost.

``TRIM``: trim a stream by the retention policy, but never below the oldest
entry that some consumer group has not acknowledged: every group's oldest
pending entry and everything after its last delivered entry are kept. Done
in one script, no group can move between the check and the trim.

``DEAD_LETTER``: write a dead letter and acknowledge its entry. A refused
write (wrong key type, out of memory) aborts the script before the
acknowledgement, so the entry stays pending and the write can be retried:
never acknowledged without its dead letter, which a MULTI would allow (a
transaction runs its other commands when one fails).

``REQUEUE``: send a dead letter's payload back to its subscriber's re-queue
stream and delete the letter, both or neither.

``ACK_DONE``: acknowledge an idempotent subscriber's entries and record the
events it completed, both or neither: an entry is never acknowledged
without its record, nor recorded without being acknowledged. Records older
than the retention are removed on the way.

``HEARTBEAT``: record that a process consumes a group until a time (the
server's clock plus ``claim_idle``) and forget those whose time has passed.

``COUNT_DEAD``: count one page of a dead-letter stream's entries per subscriber
and event type, on the server (for the status: no payload crosses the network).

``COUNT_RANGE``: count one page of a stream's entries in a range (where a replay
rewinds a group to, to tell Redis how many entries the group has read).

Every script touches the keys of one event type only: on a cluster they
share a slot (see :mod:`hookbus._redis.keys`).
"""

from __future__ import annotations

__all__ = [
    "ACK_DONE",
    "COUNT_DEAD",
    "COUNT_RANGE",
    "DEAD_LETTER",
    "HEARTBEAT",
    "REQUEUE",
    "STORE",
    "TRIM",
    "parse_live_message",
]

# KEYS: the stream of each event type of the batch, in order, then the hash counting
# ephemeral messages per channel (live feeds compare it to what they got).
# ARGV[1]: one byte per event, its type's number (1-based), plus 128 if ephemeral;
# ARGV[2 .. 1 + types]: each type's live channel; then the envelopes, in order.
# Returns the failures only: a flat list of (event number, error) pairs.
STORE = """
local kinds = ARGV[1]
local types = #KEYS - 1
local failures = {}
for i = 1, #kinds do
  local code = string.byte(kinds, i)
  local payload = ARGV[1 + types + i]
  if code < 128 then
    local id = redis.pcall('XADD', KEYS[code], '*', 'e', payload)
    if type(id) == 'table' and id.err then
      failures[#failures + 1] = i
      failures[#failures + 1] = id.err
    else
      redis.call('PUBLISH', ARGV[1 + code], id .. ' ' .. payload)
    end
  else
    local channel = ARGV[1 + code - 128]
    redis.call('PUBLISH', channel, '- ' .. payload)
    redis.call('HINCRBY', KEYS[#KEYS], channel, 1)
  end
end
return failures
"""

# KEYS[1] stream; ARGV[1] max length ('' for none); ARGV[2] oldest id kept by age ('' for none)
TRIM = """
if redis.call('EXISTS', KEYS[1]) == 0 then return 0 end
local function parse(id)
  local dash = string.find(id, '-', 1, true)
  return {tonumber(string.sub(id, 1, dash - 1)), tonumber(string.sub(id, dash + 1))}
end
local function less(a, b)
  return a[1] < b[1] or (a[1] == b[1] and a[2] < b[2])
end
local cut = nil
if ARGV[1] ~= '' then
  local keep = redis.call('XREVRANGE', KEYS[1], '+', '-', 'COUNT', tonumber(ARGV[1]))
  if #keep == tonumber(ARGV[1]) then cut = parse(keep[#keep][1]) end
end
if ARGV[2] ~= '' then
  local by_age = parse(ARGV[2])
  if cut == nil or less(cut, by_age) then cut = by_age end
end
if cut == nil then return 0 end
for _, group in ipairs(redis.call('XINFO', 'GROUPS', KEYS[1])) do
  local info = {}
  for i = 1, #group, 2 do info[group[i]] = group[i + 1] end
  local need = parse(info['last-delivered-id'])
  need = {need[1], need[2] + 1}
  if info['pending'] > 0 then
    local summary = redis.call('XPENDING', KEYS[1], info['name'])
    local oldest = parse(summary[2])
    if less(oldest, need) then need = oldest end
  end
  if less(need, cut) then cut = need end
end
return redis.call('XTRIM', KEYS[1], 'MINID', string.format('%d-%d', cut[1], cut[2]))
"""

# KEYS[1] dead-letter stream, KEYS[2] the entry's stream; ARGV[1] group, ARGV[2] entry id,
# ARGV[3] '1' to delete the entry too (a re-queue stream), ARGV[4...] the letter's fields.
DEAD_LETTER = """
local id = redis.call('XADD', KEYS[1], '*', unpack(ARGV, 4))
redis.call('XACK', KEYS[2], ARGV[1], ARGV[2])
if ARGV[3] == '1' then redis.call('XDEL', KEYS[2], ARGV[2]) end
return id
"""

# KEYS[1] the subscriber's re-queue stream, KEYS[2] the dead-letter stream;
# ARGV[1] the payload, ARGV[2] the dead letter's entry id.
REQUEUE = """
redis.call('XADD', KEYS[1], '*', 'e', ARGV[1])
redis.call('XDEL', KEYS[2], ARGV[2])
return 1
"""

# KEYS[1]: a group's live-consumers set. ARGV: consumer name, milliseconds to live.
HEARTBEAT = """
local time = redis.call('TIME')
local now = tonumber(time[1]) * 1000 + math.floor(tonumber(time[2]) / 1000)
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now)
redis.call('ZADD', KEYS[1], now + tonumber(ARGV[2]), ARGV[1])
redis.call('PEXPIRE', KEYS[1], tonumber(ARGV[2]) * 2)
return now
"""

# KEYS[1]: a dead-letter stream. ARGV: start ("-" or "(<id>"), page size.
# Returns {entries read, last id read, {"<subscriber>\n<type>", count, ...}}.
COUNT_DEAD = """
local entries = redis.call('XRANGE', KEYS[1], ARGV[1], '+', 'COUNT', ARGV[2])
local counts = {}
for _, entry in ipairs(entries) do
  local fields = entry[2]
  local subscriber, event_type = '', ''
  for i = 1, #fields, 2 do
    if fields[i] == 'subscriber' then subscriber = fields[i + 1]
    elseif fields[i] == 'type' then event_type = fields[i + 1] end
  end
  local key = subscriber .. '\\n' .. event_type
  counts[key] = (counts[key] or 0) + 1
end
local flat = {}
for key, count in pairs(counts) do
  flat[#flat + 1] = key
  flat[#flat + 1] = count
end
local last = ''
if #entries > 0 then last = entries[#entries][1] end
return {#entries, last, flat}
"""

# KEYS[1]: a stream. ARGV: start, end, page size. Returns {entries counted, last id}.
COUNT_RANGE = """
local entries = redis.call('XRANGE', KEYS[1], ARGV[1], ARGV[2], 'COUNT', ARGV[3])
if #entries == 0 then return {0, ''} end
return {#entries, entries[#entries][1]}
"""

# KEYS[1] the subscriber's completion records (sorted set: event id -> time in ms),
# KEYS[2] the stream, KEYS[3] the re-queue stream; ARGV[1] group, ARGV[2] now (ms),
# ARGV[3] the oldest time kept (ms), ARGV[4] n, ARGV[5 .. 4+n] the event ids completed,
# ARGV[5+n] m, then m entry ids of the stream, then the entry ids of the re-queue stream.
ACK_DONE = """
local n = tonumber(ARGV[4])
for i = 5, 4 + n do redis.call('ZADD', KEYS[1], ARGV[2], ARGV[i]) end
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', '(' .. ARGV[3])
local m = tonumber(ARGV[5 + n])
for i = 6 + n, 5 + n + m do redis.call('XACK', KEYS[2], ARGV[1], ARGV[i]) end
for i = 6 + n + m, #ARGV do
  redis.call('XACK', KEYS[3], ARGV[1], ARGV[i])
  redis.call('XDEL', KEYS[3], ARGV[i])
end
return n
"""


def parse_live_message(data: bytes) -> tuple[bytes | None, bytes]:
    """Split a live message ``<stream id> <envelope>`` (``-`` for ephemeral events),
    as the STORE script writes it."""
    head, _, encoded = data.partition(b" ")
    return (None if head == b"-" else head), encoded
