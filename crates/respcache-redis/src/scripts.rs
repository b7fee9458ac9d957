//! The Lua scripts that make commits and removals atomic.
//!
//! Every script declares in `KEYS` each key it reads or writes: a Redis
//! Cluster routes a script by its keys and refuses one that touches keys
//! it was not given. All of them share the entry's hash tag, so one slot.
//! A script cannot list keys it has not read yet, so the caller reads the
//! head first and the script checks that the head still names what the
//! caller read; when it does not, the script says so and changes nothing
//! it was not given.

use std::sync::LazyLock;

/// Debug builds (every test) run each script behind a guard that fails it
/// when it touches a key missing from `KEYS`, so the whole test suite checks
/// the declarations; a single server would not notice, a cluster would.
fn script(source: &str) -> redis::Script {
    if cfg!(debug_assertions) {
        redis::Script::new(&format!(
            "{KEY_GUARD}{}",
            source.replace("redis.call(", "call(")
        ))
    } else {
        redis::Script::new(source)
    }
}

/// Every command our scripts run names its key first.
const KEY_GUARD: &str = r#"
local declared = {}
for _, k in ipairs(KEYS) do declared[k] = true end
local function call(command, key, ...)
  if not declared[key] then
    error('respcache script touched a key it did not declare: ' .. tostring(key))
  end
  return redis.call(command, key, ...)
end
"#;

/// Switches the head to a new generation in one step, gives the new
/// chunks the head's TTL, and ends the old generation's chunks: at once,
/// or after a short grace so readers streaming them can finish.
///
/// KEYS[1] head, KEYS[2..n+1] the new chunks, KEYS[n+2..] the chunks of
/// the generation the caller saw in the head. ARGV: gen, n, meta, ttl
/// seconds, old-chunk grace seconds, the generation the caller saw (or '').
///
/// Returns `{}` when the old chunks were handled, or `{old_gen, old_n}`
/// when the head held another generation than the caller saw (a
/// concurrent commit): the new head is in place all the same, and the
/// caller ends those chunks itself.
pub(crate) static COMMIT: LazyLock<redis::Script> = LazyLock::new(|| {
    script(
        r#"
local n = tonumber(ARGV[2])
local old_gen = redis.call('HGET', KEYS[1], 'gen')
local old_n = tonumber(redis.call('HGET', KEYS[1], 'n') or '0') or 0
redis.call('DEL', KEYS[1])
redis.call('HSET', KEYS[1], 'gen', ARGV[1], 'n', ARGV[2], 'meta', ARGV[3])
redis.call('EXPIRE', KEYS[1], ARGV[4])
for i = 2, n + 1 do
  redis.call('EXPIRE', KEYS[i], ARGV[4])
end
if not old_gen or old_gen == ARGV[1] then return {} end
if old_gen ~= ARGV[6] or old_n ~= #KEYS - n - 1 then return {old_gen, old_n} end
for i = n + 2, #KEYS do
  if tonumber(ARGV[5]) > 0 then
    redis.call('EXPIRE', KEYS[i], ARGV[5])
  else
    redis.call('DEL', KEYS[i])
  end
end
return {}
"#,
    )
});

/// Removes the entry and its chunks, but only while its head still names
/// generation ARGV[1], so a read that found an old generation damaged
/// never removes a newer one. A head without a generation (garbage) is
/// removed whatever ARGV[1] says.
///
/// KEYS[1] head, KEYS[2..] the chunks of generation ARGV[1].
/// Returns 1 when the head is gone, 0 when it names another generation.
pub(crate) static REMOVE: LazyLock<redis::Script> = LazyLock::new(|| {
    script(
        r#"
local gen = redis.call('HGET', KEYS[1], 'gen')
if gen and gen ~= ARGV[1] then return 0 end
for i = 1, #KEYS do
  redis.call('DEL', KEYS[i])
end
return 1
"#,
    )
});

/// Replaces the encoded head of generation ARGV[1] and renews the TTL of
/// the head and its chunks, keeping the body; does nothing (returns 0)
/// when the head names another generation by now.
///
/// KEYS[1] head, KEYS[2..] the chunks of generation ARGV[1].
/// ARGV: gen, meta, ttl seconds.
pub(crate) static UPDATE_HEAD: LazyLock<redis::Script> = LazyLock::new(|| {
    script(
        r#"
local gen = redis.call('HGET', KEYS[1], 'gen')
if gen ~= ARGV[1] then return 0 end
redis.call('HSET', KEYS[1], 'meta', ARGV[2])
for i = 1, #KEYS do
  redis.call('EXPIRE', KEYS[i], ARGV[3])
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
