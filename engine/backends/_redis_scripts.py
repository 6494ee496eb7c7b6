"""The Lua scripts that make each decision about a run one atomic step in Redis.

Every script touches only keys that share one hash tag, so each runs on one Redis Cluster
slot: the run scripts take the run's keys in the order of :data:`RUN_KEYS` (record, log,
cancel, interactions), all tagged ``{<run_id>}``; the alias scripts take an alias and its
remembered cancel, both tagged ``{alias:<digest>}``; WAKE takes one tailer's wake stream. Nothing that spans runs (the live
index, heartbeats) is written by a script.

Conventions: every script returns a list whose first element is a verdict string
(``ok``, ``won``, ``fenced``, ...) followed by details, never ``nil`` (a ``nil`` would cut
a Lua table short). Expiries are set in the same script that writes a key, because
``PEXPIRE`` on a key that does not exist yet does nothing. An absent owner (no API keys)
is stored as the empty string.
"""

from __future__ import annotations

__all__ = [
    "ANSWER",
    "APPEND",
    "CANCEL",
    "CLAIM_ALIAS",
    "CREATE",
    "EXPIRE_ALIAS",
    "EXPIRE_INTERACTION",
    "FINISH",
    "REMEMBER_CANCEL",
    "RUN_KEYS",
    "TOUCH",
    "WAKE",
]

#: The suffixes of one run's keys, in the order every run script receives them.
RUN_KEYS = ("rec", "log", "cancel", "ia")

_PRELUDE = """
local TERMINAL = {completed = true, failed = true, cancelled = true}
local function expire_all(ttl)
  for _, key in ipairs(KEYS) do redis.call('PEXPIRE', key, ttl) end
end
"""

#: KEYS: run keys. ARGV: live_ttl_ms, then the record's field/value pairs.
#: Writes the record; a cancel already requested for this run (through its alias, before
#: the record existed) is returned so the run starts cancelled.
CREATE = (
    _PRELUDE
    + """
if redis.call('EXISTS', KEYS[1]) == 1 then return {'exists'} end
redis.call('HSET', KEYS[1], unpack(ARGV, 2))
expire_all(ARGV[1])
return {'created', redis.call('GET', KEYS[3]) or ''}
"""
)

#: KEYS: run keys. ARGV: worker, first_seq, max_len, live_ttl_ms, status, now,
#: interaction_id, interaction_json, then (type, data) per event.
#: Only the run's worker may append, only while the run is live, and only at last_seq + 1:
#: a swept owner or a second writer changes nothing and learns why.
APPEND = (
    _PRELUDE
    + """
local cur = redis.call('HMGET', KEYS[1], 'status', 'worker', 'last_seq')
if not cur[1] then return {'not_found'} end
if TERMINAL[cur[1]] then return {'finished', cur[3]} end
if cur[2] ~= ARGV[1] then return {'fenced', cur[3]} end
local seq = tonumber(ARGV[2])
if seq ~= tonumber(cur[3]) + 1 then return {'out_of_order', cur[3]} end
for i = 9, #ARGV, 2 do
  redis.call('XADD', KEYS[2], 'MAXLEN', ARGV[3], seq .. '-0', 't', ARGV[i], 'd', ARGV[i + 1])
  seq = seq + 1
end
redis.call('HSET', KEYS[1], 'last_seq', seq - 1)
local status = ARGV[5]
if status ~= '' then
  redis.call('HSET', KEYS[1], 'status', status)
  if status == 'running' and redis.call('HEXISTS', KEYS[1], 'started_at') == 0 then
    redis.call('HSET', KEYS[1], 'started_at', ARGV[6])
  end
  if status == 'awaiting_input' then
    redis.call('HSET', KEYS[1], 'interaction', ARGV[8])
    redis.call('HSET', KEYS[4], ARGV[7], 'pending')
  else
    redis.call('HDEL', KEYS[1], 'interaction')
  end
end
-- A live run's keys must outlive any pause: refreshed on every write and heartbeat.
expire_all(ARGV[4])
return {'ok', tostring(seq - 1)}
"""
)

#: KEYS: run keys. ARGV: expected_worker ('' for any), status, type, data (the outcome's
#: JSON, stored in the record too), answer_json, ended_at, max_len, retention_ms.
#: The one place a run ends: the first caller wins; a late owner or a sweeper changes
#: nothing. A pending interaction is cleared, so a later answer is "not pending".
FINISH = (
    _PRELUDE
    + """
local cur = redis.call('HMGET', KEYS[1], 'status', 'worker', 'last_seq', 'owner',
                       'client_run_id')
if not cur[1] then return {'not_found'} end
if TERMINAL[cur[1]] then return {'already_finished', cur[1], cur[3]} end
if ARGV[1] ~= '' and cur[2] ~= ARGV[1] then return {'fenced', cur[1], cur[3]} end
local seq = tonumber(cur[3]) + 1
redis.call('XADD', KEYS[2], 'MAXLEN', ARGV[7], seq .. '-0', 't', ARGV[3], 'd', ARGV[4])
redis.call('HSET', KEYS[1], 'status', ARGV[2], 'last_seq', seq, 'outcome', ARGV[4],
           'ended_at', ARGV[6])
if ARGV[5] ~= '' then redis.call('HSET', KEYS[1], 'answer', ARGV[5]) end
redis.call('HDEL', KEYS[1], 'interaction')
local states = redis.call('HGETALL', KEYS[4])
for i = 1, #states, 2 do
  if states[i + 1] == 'pending' then redis.call('HSET', KEYS[4], states[i], 'cleared') end
end
expire_all(ARGV[8])
return {'won', tostring(seq), cur[4] or '', cur[5] or ''}
"""
)

#: KEYS: run keys. ARGV: owner, interaction_id, response_json, channel_prefix, run_id.
#: Compare-and-set pending -> answered, then tell the owning worker at once.
ANSWER = (
    _PRELUDE
    + """
local cur = redis.call('HMGET', KEYS[1], 'status', 'worker', 'owner')
if not cur[1] or cur[3] ~= ARGV[1] then return {'no_run'} end
local state = redis.call('HGET', KEYS[4], ARGV[2])
if not state then return {'not_found'} end
if state ~= 'pending' or TERMINAL[cur[1]] then return {'not_pending', state} end
redis.call('HSET', KEYS[4], ARGV[2], 'answered', ARGV[2] .. ':response', ARGV[3])
-- The status read by every worker stops saying awaiting_input at the moment the answer is
-- accepted; the owner appends interaction.resolved when its producer resumes.
redis.call('HSET', KEYS[1], 'status', 'running')
redis.call('HDEL', KEYS[1], 'interaction')
redis.call('PUBLISH', ARGV[4] .. cur[2], 'answer ' .. ARGV[5] .. ' ' .. ARGV[2])
return {'ok'}
"""
)

#: KEYS: run keys. ARGV: worker, interaction_id.
#: The owner's compare-and-set pending -> expired; if the answer won, the owner gets it.
EXPIRE_INTERACTION = (
    _PRELUDE
    + """
if redis.call('HGET', KEYS[1], 'worker') ~= ARGV[1] then return {'fenced'} end
local state = redis.call('HGET', KEYS[4], ARGV[2])
if state == 'pending' then
  -- The status stays awaiting_input until the owner's finish (interaction_timeout).
  redis.call('HSET', KEYS[4], ARGV[2], 'expired')
  return {'expired'}
end
if state == 'answered' then
  return {'answered', redis.call('HGET', KEYS[4], ARGV[2] .. ':response')}
end
return {state or 'not_found'}
"""
)

#: KEYS: run keys. ARGV: owner, reason, run_id, channel_prefix, fallback_ttl_ms,
#: remember_missing ('1' when the run is known to be being created, through its alias).
#: Durable first (the cancel key, first reason wins), then the fast signal to the owner.
CANCEL = (
    _PRELUDE
    + """
local cur = redis.call('HMGET', KEYS[1], 'status', 'worker', 'owner')
if not cur[1] then
  if ARGV[6] == '1' then
    redis.call('SET', KEYS[3], ARGV[2], 'NX', 'PX', ARGV[5])
    return {'remembered'}
  end
  return {'not_found'}
end
if cur[3] ~= ARGV[1] then return {'not_found'} end
if TERMINAL[cur[1]] then return {'already_decided', cur[1]} end
local ttl = redis.call('PTTL', KEYS[1])
if ttl <= 0 then ttl = ARGV[5] end
redis.call('SET', KEYS[3], ARGV[2], 'NX', 'PX', ttl)
redis.call('PUBLISH', ARGV[4] .. cur[2], 'cancel ' .. ARGV[3] .. ' ' .. ARGV[2])
return {'requested'}
"""
)

#: KEYS: run keys. ARGV: worker, live_ttl_ms.
#: The owner's heartbeat for one run: keeps a live run's keys from expiring (a run paused
#: for input writes nothing for minutes) and reads the durable signals a lost pub/sub
#: message would have carried: the cancel reason and the answered interactions.
TOUCH = (
    _PRELUDE
    + """
local cur = redis.call('HMGET', KEYS[1], 'status', 'worker')
if not cur[1] then return {'not_found'} end
if TERMINAL[cur[1]] then return {'finished'} end
if cur[2] ~= ARGV[1] then return {'fenced'} end
expire_all(ARGV[2])
local result = {'live', redis.call('GET', KEYS[3]) or ''}
local states = redis.call('HGETALL', KEYS[4])
for i = 1, #states, 2 do
  if states[i + 1] == 'answered' then table.insert(result, states[i]) end
end
return result
"""
)

#: KEYS: alias, remembered cancel. ARGV: run_id, ttl_ms, replaceable_run_id ('' for none).
#: Claims ``owner + client_run_id`` for a new run, and takes the cancel remembered for it.
#: The caller replaces an alias only after checking that its run has ended.
CLAIM_ALIAS = """
local cur = redis.call('GET', KEYS[1])
if cur and cur ~= ARGV[1] and cur ~= ARGV[3] then return {'taken', cur} end
redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
return {'ok', redis.call('GETDEL', KEYS[2]) or ''}
"""

#: KEYS: alias, remembered cancel. ARGV: reason, ttl_ms.
#: A cancel by ``client_run_id``: names the run if the alias exists, else is remembered.
#: One script with CLAIM_ALIAS's keys, so a cancel and a create cannot miss each other.
REMEMBER_CANCEL = """
local cur = redis.call('GET', KEYS[1])
if cur then return {'run', cur} end
redis.call('SET', KEYS[2], ARGV[1], 'PX', ARGV[2])
return {'remembered'}
"""

#: KEYS: alias. ARGV: run_id, ttl_ms. Sets the alias's expiry if it still names the run
#: (renewed while the run lives, the retention once it ended).
EXPIRE_ALIAS = """
if redis.call('GET', KEYS[1]) ~= ARGV[1] then return {'other'} end
redis.call('PEXPIRE', KEYS[1], ARGV[2])
return {'ok'}
"""

#: KEYS: an owner's recent-runs index. ARGV: run_id, created_at, keep, ttl_ms. The run goes in
#: at its creation time, the index keeps its newest ``keep``, and its expiry is renewed in the
#: same step.
RECORD_RECENT = """
redis.call('ZADD', KEYS[1], ARGV[2], ARGV[1])
redis.call('ZREMRANGEBYRANK', KEYS[1], 0, -(tonumber(ARGV[3]) + 1))
redis.call('PEXPIRE', KEYS[1], ARGV[4])
return {'ok'}
"""

#: KEYS: a tailer's wake stream. ARGV: ttl_ms. One entry (the stream keeps only the newest),
#: written with its expiry in the same step.
WAKE = """
redis.call('XADD', KEYS[1], 'MAXLEN', '1', '*', 'w', '1')
redis.call('PEXPIRE', KEYS[1], ARGV[1])
return {'ok'}
"""
