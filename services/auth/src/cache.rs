//! A short-lived per-process memo of database answers that every request would otherwise ask
//! again (is this user still active, is this tenant still active and the user still a member).
//! Entries expire after `ttl`; changes made through this process drop them at once.

use std::collections::HashMap;
use std::hash::Hash;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// Above this many entries the whole map is dropped rather than tracked entry by entry: the
/// cache only saves round trips, so losing it costs a little latency, never correctness.
const MAX_ENTRIES: usize = 100_000;

pub(crate) struct TtlCache<K, V> {
    ttl: Duration,
    map: Mutex<HashMap<K, (Instant, V)>>,
}

impl<K: Eq + Hash, V: Clone> TtlCache<K, V> {
    pub(crate) fn new(ttl: Duration) -> Self {
        TtlCache {
            ttl,
            map: Mutex::default(),
        }
    }

    pub(crate) fn get(&self, key: &K) -> Option<V> {
        let map = self.lock();
        map.get(key)
            .filter(|(at, _)| at.elapsed() < self.ttl)
            .map(|(_, v)| v.clone())
    }

    pub(crate) fn put(&self, key: K, value: V) {
        if self.ttl.is_zero() {
            return;
        }
        let mut map = self.lock();
        if map.len() >= MAX_ENTRIES {
            map.clear();
        }
        map.insert(key, (Instant::now(), value));
    }

    pub(crate) fn forget_where(&self, pred: impl Fn(&K) -> bool) {
        self.lock().retain(|k, _| !pred(k));
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<K, (Instant, V)>> {
        // A poisoned map holds only cached answers; keep using it rather than fail requests.
        self.map
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entries_expire_and_can_be_forgotten() {
        let cache = TtlCache::new(Duration::from_secs(60));
        cache.put(1, "a");
        cache.put(2, "b");
        assert_eq!(cache.get(&1), Some("a"));
        cache.forget_where(|k| *k == 1);
        assert_eq!(cache.get(&1), None);
        assert_eq!(cache.get(&2), Some("b"));

        let none = TtlCache::new(Duration::ZERO);
        none.put(1, "a");
        assert_eq!(none.get(&1), None, "a zero ttl caches nothing");
    }
}
