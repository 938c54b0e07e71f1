//! Counters in this instance's memory. They live in [`moka`] caches, one per kind of
//! key (IP buckets, accounts, email addresses), so a flood of one kind cannot
//! evict the others. moka is a concurrent, sharded cache: `and_upsert_with`
//! runs under a lock of that one key, and each entry expires by itself at the
//! end of its window (a per-entry expiry), so no request ever scans the map or
//! holds a global lock; expired entries go in moka's amortised housekeeping.
//! Memory is bounded: each cache has a byte budget ([`MEMORY_BUDGET`], the
//! key's length plus [`ENTRY_OVERHEAD`] per entry, keys being at most an email
//! of 254 bytes) and evicts the least recently used entries. LRU is chosen
//! over moka's default TinyLFU admission because TinyLFU may decline to store
//! a new key at all, and a counter that is not stored never reaches its
//! limit; under LRU an account being guessed at is touched by every guess, so
//! evicting it takes more new keys between two guesses than the budget holds.

use std::time::{Duration, Instant};

/// Byte budget of each in-memory cache (weighed as key length plus
/// [`ENTRY_OVERHEAD`]): about 80,000 email keys or 100,000 IP keys each.
pub const MEMORY_BUDGET: u64 = 16 * 1024 * 1024;
/// What one entry costs besides its key, as weighed against the budget.
pub const ENTRY_OVERHEAD: u32 = 160;

/// One fixed window of a counter.
#[derive(Debug, Clone, Copy)]
struct Window {
    count: u64,
    ends: Instant,
}

/// Each entry expires when its window ends.
struct WindowExpiry;

impl moka::Expiry<String, Window> for WindowExpiry {
    fn expire_after_create(
        &self,
        _key: &String,
        window: &Window,
        created_at: Instant,
    ) -> Option<Duration> {
        Some(window.ends.saturating_duration_since(created_at))
    }

    fn expire_after_update(
        &self,
        _key: &String,
        window: &Window,
        updated_at: Instant,
        _left: Option<Duration>,
    ) -> Option<Duration> {
        Some(window.ends.saturating_duration_since(updated_at))
    }
}

/// Counters of one kind in this instance's memory.
pub(super) struct MemoryCounters {
    cache: moka::sync::Cache<String, Window>,
}

impl MemoryCounters {
    pub(super) fn new() -> Self {
        let cache = moka::sync::Cache::builder()
            .max_capacity(MEMORY_BUDGET)
            .weigher(|key: &String, _: &Window| {
                u32::try_from(key.len())
                    .unwrap_or(u32::MAX)
                    .saturating_add(ENTRY_OVERHEAD)
            })
            .eviction_policy(moka::policy::EvictionPolicy::lru())
            .expire_after(WindowExpiry)
            .build();
        MemoryCounters { cache }
    }

    /// Adds `by` to the key's count in its window, atomically (moka runs the
    /// update under the key's own lock); returns the new count and the time
    /// left in the window.
    pub(super) fn hit(&self, key: &str, by: u64, window: Duration) -> (u64, Duration) {
        let now = Instant::now();
        let entry = self.cache.entry_by_ref(key).and_upsert_with(|current| {
            match current.map(moka::Entry::into_value) {
                Some(live) if live.ends > now => Window {
                    count: live.count.saturating_add(by),
                    ends: live.ends,
                },
                _ => Window {
                    count: by,
                    ends: now + window,
                },
            }
        });
        let counted = entry.into_value();
        (counted.count, counted.ends.saturating_duration_since(now))
    }

    /// The key's count and time left, if its window is live.
    pub(super) fn peek(&self, key: &str) -> Option<(u64, Duration)> {
        let now = Instant::now();
        self.cache
            .get(key)
            .filter(|window| window.ends > now)
            .map(|window| (window.count, window.ends.saturating_duration_since(now)))
    }

    /// Takes one back from the key's count in its live window, never below
    /// zero; an expired or missing window is left alone.
    pub(super) fn give_back(&self, key: &str) {
        use moka::ops::compute::Op;
        let now = Instant::now();
        self.cache.entry_by_ref(key).and_compute_with(|current| {
            match current.map(moka::Entry::into_value) {
                Some(live) if live.ends > now && live.count > 0 => Op::Put(Window {
                    count: live.count - 1,
                    ends: live.ends,
                }),
                _ => Op::Nop,
            }
        });
    }

    pub(super) fn reset(&self, key: &str) {
        self.cache.invalidate(key);
    }

    #[cfg(test)]
    fn entries(&self) -> u64 {
        self.cache.run_pending_tasks();
        self.cache.entry_count()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn memory_is_bounded() {
        let counters = MemoryCounters::new();
        let window = Duration::from_secs(900);
        let key = |i: usize| format!("login:{i:0>240}@example.com");
        for i in 0..150_000 {
            counters.hit(&key(i), 1, window);
        }
        let per_entry = u64::from(ENTRY_OVERHEAD) + 256;
        assert!(
            counters.entries() <= MEMORY_BUDGET / per_entry + 1_000,
            "{} entries",
            counters.entries()
        );
        // the newest are kept
        assert_eq!(counters.peek(&key(149_999)).map(|(n, _)| n), Some(1));
    }
}
