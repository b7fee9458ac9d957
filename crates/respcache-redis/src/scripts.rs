//! The Lua scripts that make commits and removals atomic.

use std::sync::LazyLock;

/// Switches the head to a new generation in one step, gives the new
/// chunks the head's TTL, and ends the old generation's chunks: at once,
/// or after a short grace so readers streaming them can finish.
///
/// KEYS[1] head; ARGV: gen, n, meta, ttl seconds, old-chunk grace seconds,
/// chunk key prefix.
pub(crate) static COMMIT: LazyLock<redis::Script> = LazyLock::new(|| {
    redis::Script::new(
        r#"
local old_gen = redis.call('HGET', KEYS[1], 'gen')
local old_n = tonumber(redis.call('HGET', KEYS[1], 'n') or '0') or 0
redis.call('DEL', KEYS[1])
redis.call('HSET', KEYS[1], 'gen', ARGV[1], 'n', ARGV[2], 'meta', ARGV[3])
redis.call('EXPIRE', KEYS[1], ARGV[4])
for i = 0, tonumber(ARGV[2]) - 1 do
  redis.call('EXPIRE', ARGV[6] .. ARGV[1] .. ':' .. i, ARGV[4])
end
if old_gen and old_gen ~= ARGV[1] then
  for i = 0, old_n - 1 do
    local chunk = ARGV[6] .. old_gen .. ':' .. i
    if tonumber(ARGV[5]) > 0 then
      redis.call('EXPIRE', chunk, ARGV[5])
    else
      redis.call('DEL', chunk)
    end
  end
end
return 1
"#,
    )
});

/// Removes the entry and its chunks, but only while its head still names
/// generation ARGV[1] (or any generation when ARGV[1] is empty), so a read
/// that found an old generation damaged never removes a newer one.
///
/// KEYS[1] head; ARGV: gen or '', chunk key prefix.
pub(crate) static REMOVE: LazyLock<redis::Script> = LazyLock::new(|| {
    redis::Script::new(
        r#"
local gen = redis.call('HGET', KEYS[1], 'gen')
if not gen then
  redis.call('DEL', KEYS[1])
  return 0
end
if ARGV[1] ~= '' and gen ~= ARGV[1] then return 0 end
local n = tonumber(redis.call('HGET', KEYS[1], 'n') or '0') or 0
redis.call('DEL', KEYS[1])
for i = 0, n - 1 do
  redis.call('DEL', ARGV[2] .. gen .. ':' .. i)
end
return 1
"#,
    )
});

/// Replaces the encoded head of generation ARGV[1] and renews the TTL of
/// the head and its chunks, keeping the body; does nothing (returns 0)
/// when the head names another generation by now.
///
/// KEYS[1] head; ARGV: gen, meta, ttl seconds, chunk key prefix.
pub(crate) static UPDATE_HEAD: LazyLock<redis::Script> = LazyLock::new(|| {
    redis::Script::new(
        r#"
local gen = redis.call('HGET', KEYS[1], 'gen')
if gen ~= ARGV[1] then return 0 end
local n = tonumber(redis.call('HGET', KEYS[1], 'n') or '0') or 0
redis.call('HSET', KEYS[1], 'meta', ARGV[2])
redis.call('EXPIRE', KEYS[1], ARGV[3])
for i = 0, n - 1 do
  redis.call('EXPIRE', ARGV[4] .. gen .. ':' .. i, ARGV[3])
end
return 1
"#,
    )
});

/// Adds a cache key to a tag's set and makes the set live at least as
/// long as the entry.
///
/// KEYS[1] the tag's set; ARGV: cache key, ttl seconds.
pub(crate) static TAG: LazyLock<redis::Script> = LazyLock::new(|| {
    redis::Script::new(
        r#"
redis.call('SADD', KEYS[1], ARGV[1])
if redis.call('TTL', KEYS[1]) < tonumber(ARGV[2]) then
  redis.call('EXPIRE', KEYS[1], ARGV[2])
end
return 1
"#,
    )
});
