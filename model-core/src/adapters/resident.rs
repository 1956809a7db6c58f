//! The set of adapter versions held in memory, bounded in bytes.
//!
//! A request runs with an [`AdapterLease`]: a pinned reference to one immutable, validated
//! version. Pinned versions are never evicted, so an in-flight request finishes on the version it
//! started with even when its alias moves or the set is under pressure. When a version must be
//! loaded to make room, the least recently used unpinned versions go first. Loading (reading and
//! validating the files) runs on the caller's thread, never on the engine thread, so running
//! sequences keep stepping while an adapter loads; concurrent requests for the same missing
//! version wait for one load instead of each doing it.

use std::collections::HashMap;
use std::fmt;
use std::sync::{Arc, Condvar, Mutex, MutexGuard};

use super::{AdapterError, LoraAdapter};

/// One loaded, validated adapter version.
pub struct AdapterVersion {
    id: String,
    adapter: LoraAdapter,
    bytes: usize,
}

impl AdapterVersion {
    /// `id` is the version's content address (the store uses the SHA-256 of config + weights).
    pub fn new(id: impl Into<String>, adapter: LoraAdapter) -> Self {
        let bytes = adapter.size_bytes();
        AdapterVersion {
            id: id.into(),
            adapter,
            bytes,
        }
    }

    pub fn id(&self) -> &str {
        &self.id
    }

    pub fn adapter(&self) -> &LoraAdapter {
        &self.adapter
    }

    /// Bytes the factors occupy in memory (what counts against the budget).
    pub fn size_bytes(&self) -> usize {
        self.bytes
    }
}

impl fmt::Debug for AdapterVersion {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AdapterVersion")
            .field("id", &self.id)
            .field("bytes", &self.bytes)
            .finish()
    }
}

/// Why an adapter could not be made resident.
#[derive(Debug, thiserror::Error)]
pub enum ResidentError {
    /// The files could not be read.
    #[error("adapter {id} could not be read: {message}")]
    Read { id: String, message: String },
    /// The adapter is invalid for this base model.
    #[error(transparent)]
    Invalid(#[from] AdapterError),
    /// The adapter alone is larger than the whole resident budget.
    #[error("adapter {id} needs {needed} bytes in memory; the resident adapter budget is {budget}")]
    LargerThanBudget {
        id: String,
        needed: usize,
        budget: usize,
    },
    /// Every byte that could be freed is pinned by running requests; retry when they finish.
    #[error(
        "no room for adapter {id} ({needed} bytes): {pinned} of {budget} bytes are pinned by running requests"
    )]
    Busy {
        id: String,
        needed: usize,
        pinned: usize,
        budget: usize,
    },
}

impl ResidentError {
    pub fn code(&self) -> &'static str {
        match self {
            ResidentError::Read { .. } => "adapter_unavailable",
            ResidentError::Invalid(e) => e.code(),
            ResidentError::LargerThanBudget { .. } => "adapter_too_large_for_memory",
            ResidentError::Busy { .. } => "adapter_capacity_busy",
        }
    }

    /// Whether retrying later can succeed (capacity) rather than the adapter itself being at fault.
    pub fn is_transient(&self) -> bool {
        matches!(
            self,
            ResidentError::Busy { .. } | ResidentError::Read { .. }
        )
    }
}

/// Counters for metrics and tests.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ResidentStats {
    pub resident: usize,
    pub used_bytes: usize,
    pub pinned_bytes: usize,
    pub budget_bytes: usize,
    pub loads: u64,
    pub hits: u64,
    pub evictions: u64,
}

struct Entry {
    version: Arc<AdapterVersion>,
    pins: usize,
    last_used: u64,
}

#[derive(Default)]
struct State {
    entries: HashMap<String, Entry>,
    /// Versions some thread is loading right now (others wait instead of loading twice).
    loading: HashMap<String, ()>,
    used: usize,
    clock: u64,
    loads: u64,
    hits: u64,
    evictions: u64,
}

struct Inner {
    budget: usize,
    state: Mutex<State>,
    loaded: Condvar,
}

impl Inner {
    fn lock(&self) -> MutexGuard<'_, State> {
        // A panic while holding the lock leaves only counters half-updated; keep serving.
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// The resident adapter set. Cheap to clone (shared).
#[derive(Clone)]
pub struct ResidentAdapters {
    inner: Arc<Inner>,
}

impl fmt::Debug for ResidentAdapters {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ResidentAdapters")
            .field("stats", &self.stats())
            .finish()
    }
}

/// A pinned reference to a resident adapter version. While any lease of a version exists it
/// stays resident and unchanged; dropping the last one makes it evictable.
pub struct AdapterLease {
    version: Arc<AdapterVersion>,
    set: Arc<Inner>,
}

impl AdapterLease {
    pub fn version(&self) -> &Arc<AdapterVersion> {
        &self.version
    }

    pub fn id(&self) -> &str {
        self.version.id()
    }

    pub fn adapter(&self) -> &LoraAdapter {
        self.version.adapter()
    }
}

impl fmt::Debug for AdapterLease {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("AdapterLease")
            .field(&self.version.id)
            .finish()
    }
}

impl Clone for AdapterLease {
    fn clone(&self) -> Self {
        let mut st = self.set.lock();
        // Only the entry of this very version: after `remove`, the same id may be resident again.
        if let Some(e) = st.entries.get_mut(self.version.id())
            && Arc::ptr_eq(&e.version, &self.version)
        {
            e.pins += 1;
        }
        AdapterLease {
            version: Arc::clone(&self.version),
            set: Arc::clone(&self.set),
        }
    }
}

impl Drop for AdapterLease {
    fn drop(&mut self) {
        let mut st = self.set.lock();
        st.clock += 1;
        let now = st.clock;
        if let Some(e) = st.entries.get_mut(self.version.id())
            && Arc::ptr_eq(&e.version, &self.version)
        {
            e.pins = e.pins.saturating_sub(1);
            e.last_used = now;
        }
    }
}

impl ResidentAdapters {
    pub fn new(budget_bytes: usize) -> Self {
        ResidentAdapters {
            inner: Arc::new(Inner {
                budget: budget_bytes,
                state: Mutex::new(State::default()),
                loaded: Condvar::new(),
            }),
        }
    }

    pub fn budget_bytes(&self) -> usize {
        self.inner.budget
    }

    pub fn contains(&self, id: &str) -> bool {
        self.inner.lock().entries.contains_key(id)
    }

    pub fn stats(&self) -> ResidentStats {
        let st = self.inner.lock();
        ResidentStats {
            resident: st.entries.len(),
            used_bytes: st.used,
            pinned_bytes: st
                .entries
                .values()
                .filter(|e| e.pins > 0)
                .map(|e| e.version.size_bytes())
                .sum(),
            budget_bytes: self.inner.budget,
            loads: st.loads,
            hits: st.hits,
            evictions: st.evictions,
        }
    }

    /// Drops version `id` from the set (its files were deleted, so nothing can resolve it any
    /// more): its bytes are freed now instead of when it ages out of the LRU order. Leases
    /// still held keep their own reference, so running requests finish on it; the bytes they
    /// pin no longer count against the budget. Returns whether it was resident.
    pub fn remove(&self, id: &str) -> bool {
        let mut st = self.inner.lock();
        match st.entries.remove(id) {
            Some(e) => {
                st.used -= e.version.size_bytes();
                true
            }
            None => false,
        }
    }

    /// A lease on version `id` if it is resident (no loading).
    pub fn get(&self, id: &str) -> Option<AdapterLease> {
        let mut st = self.inner.lock();
        self.pin(&mut st, id)
    }

    fn pin(&self, st: &mut State, id: &str) -> Option<AdapterLease> {
        st.clock += 1;
        let now = st.clock;
        let e = st.entries.get_mut(id)?;
        e.pins += 1;
        e.last_used = now;
        let version = Arc::clone(&e.version);
        st.hits += 1;
        Some(AdapterLease {
            version,
            set: Arc::clone(&self.inner),
        })
    }

    /// A lease on version `id`, calling `load` to read and validate it when it is not resident.
    /// Blocks the calling thread for the load: call it from a thread that may block (a blocking
    /// task of the async runtime), never from the engine thread.
    pub fn get_or_load<F>(&self, id: &str, load: F) -> Result<AdapterLease, ResidentError>
    where
        F: FnOnce() -> Result<LoraAdapter, ResidentError>,
    {
        let mut st = self.inner.lock();
        loop {
            if let Some(lease) = self.pin(&mut st, id) {
                return Ok(lease);
            }
            if !st.loading.contains_key(id) {
                break;
            }
            st = self
                .inner
                .loaded
                .wait(st)
                .unwrap_or_else(|p| p.into_inner());
        }
        st.loading.insert(id.to_string(), ());
        drop(st);
        let loaded = load().map(|a| AdapterVersion::new(id, a));
        let mut st = self.inner.lock();
        st.loading.remove(id);
        self.inner.loaded.notify_all();
        let version = loaded?;
        st.loads += 1;
        self.insert_locked(&mut st, version)
    }

    /// Makes an already loaded version resident (evicting as needed) and leases it. A version
    /// with the same id that is already resident is kept and leased instead.
    pub fn insert(&self, version: AdapterVersion) -> Result<AdapterLease, ResidentError> {
        let mut st = self.inner.lock();
        self.insert_locked(&mut st, version)
    }

    fn insert_locked(
        &self,
        st: &mut State,
        version: AdapterVersion,
    ) -> Result<AdapterLease, ResidentError> {
        if let Some(lease) = self.pin(st, version.id()) {
            return Ok(lease);
        }
        let (needed, budget) = (version.size_bytes(), self.inner.budget);
        if needed > budget {
            return Err(ResidentError::LargerThanBudget {
                id: version.id.clone(),
                needed,
                budget,
            });
        }
        let evictable: usize = st
            .entries
            .values()
            .filter(|e| e.pins == 0)
            .map(|e| e.version.size_bytes())
            .sum();
        if st.used - evictable + needed > budget {
            return Err(ResidentError::Busy {
                id: version.id.clone(),
                needed,
                pinned: st.used - evictable,
                budget,
            });
        }
        while st.used + needed > budget {
            // INVARIANT: the check above guarantees enough unpinned bytes to evict.
            let victim = st
                .entries
                .iter()
                .filter(|(_, e)| e.pins == 0)
                .min_by_key(|(_, e)| e.last_used)
                .map(|(k, _)| k.clone())
                .expect("enough unpinned adapters to evict");
            if let Some(e) = st.entries.remove(&victim) {
                st.used -= e.version.size_bytes();
                st.evictions += 1;
                tracing::debug!(adapter = %victim, bytes = e.version.size_bytes(), "evicted resident adapter");
            }
        }
        st.used += needed;
        let id = version.id.clone();
        st.entries.insert(
            id.clone(),
            Entry {
                version: Arc::new(version),
                pins: 0,
                last_used: 0,
            },
        );
        st.hits = st.hits.saturating_sub(1); // pin() counts a hit; this was a load.
        // INVARIANT: inserted just above.
        Ok(self.pin(st, &id).expect("the adapter was just inserted"))
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;
    use std::sync::atomic::{AtomicUsize, Ordering};

    use super::*;
    use crate::adapters::{LoraWeights, Target};

    /// An adapter of exactly `bytes` bytes (one rank-1 factor pair).
    fn adapter(bytes: usize) -> LoraAdapter {
        let n = bytes / 4 / 2;
        let mut m = BTreeMap::new();
        m.insert(
            Target::Q,
            LoraWeights::from_f32(1, 1.0, vec![0.0; n], vec![0.0; n]),
        );
        LoraAdapter {
            layers: vec![m],
            warnings: vec![],
            max_rank: 1,
        }
    }

    fn load(set: &ResidentAdapters, id: &str, bytes: usize) -> Result<AdapterLease, ResidentError> {
        set.get_or_load(id, || Ok(adapter(bytes)))
    }

    #[test]
    fn least_recently_used_unpinned_versions_are_evicted_first() {
        let set = ResidentAdapters::new(3000);
        drop(load(&set, "a", 1000).expect("a"));
        drop(load(&set, "b", 1000).expect("b"));
        drop(load(&set, "c", 1000).expect("c"));
        drop(set.get("a").expect("a is resident")); // a is now more recent than b
        drop(load(&set, "d", 1000).expect("d"));
        assert!(set.contains("a") && !set.contains("b") && set.contains("c") && set.contains("d"));
        assert_eq!(set.stats().evictions, 1);
        assert_eq!(set.stats().used_bytes, 3000);
    }

    #[test]
    fn pinned_versions_stay_and_a_full_pinned_set_answers_busy() {
        let set = ResidentAdapters::new(2000);
        let a = load(&set, "a", 1000).expect("a");
        let b = load(&set, "b", 1000).expect("b");
        let err = load(&set, "c", 1000).expect_err("everything is pinned");
        assert_eq!(err.code(), "adapter_capacity_busy");
        assert!(err.is_transient());
        let b2 = b.clone();
        drop(b);
        assert!(load(&set, "c", 1000).is_err(), "a clone still pins b");
        drop(b2);
        let c = load(&set, "c", 1000).expect("b is evictable now");
        assert!(set.contains("a") && !set.contains("b"));
        assert_eq!(a.id(), "a");
        assert_eq!(c.version().size_bytes(), 1000);
        assert_eq!(set.stats().pinned_bytes, 2000);
    }

    #[test]
    fn a_removed_version_frees_its_bytes_and_its_leases_keep_working() {
        let set = ResidentAdapters::new(2000);
        let a = load(&set, "a", 1000).expect("a");
        drop(load(&set, "b", 1000).expect("b"));
        assert!(set.remove("a") && set.remove("b"));
        assert!(!set.remove("b"), "already gone");
        assert!(!set.contains("a") && set.get("a").is_none());
        assert_eq!(set.stats().used_bytes, 0);
        assert_eq!(a.id(), "a", "a running request keeps its version");
        let a2 = load(&set, "a", 1000).expect("the same id loads again as a new entry");
        drop(a.clone());
        drop(a);
        assert_eq!(
            set.stats().pinned_bytes,
            1000,
            "old leases do not unpin the new entry"
        );
        drop(a2);
        drop(load(&set, "c", 2000).expect("the whole budget is free once a2 is dropped"));
        assert_eq!(set.stats().used_bytes, 2000);
    }

    #[test]
    fn an_adapter_larger_than_the_budget_is_refused_and_nothing_is_evicted() {
        let set = ResidentAdapters::new(2000);
        drop(load(&set, "a", 1000).expect("a"));
        let err = load(&set, "huge", 4000).expect_err("too large");
        assert_eq!(err.code(), "adapter_too_large_for_memory");
        assert!(set.contains("a"));
    }

    #[test]
    fn a_failed_load_leaves_nothing_resident() {
        let set = ResidentAdapters::new(2000);
        let err = set
            .get_or_load("bad", || Err(AdapterError::NotLora("IA3".into()).into()))
            .expect_err("invalid");
        assert_eq!(err.code(), "adapter_not_lora");
        assert_eq!(set.stats().resident, 0);
        assert!(
            load(&set, "bad", 1000).is_ok(),
            "a later load of the same id may succeed"
        );
    }

    #[test]
    fn concurrent_requests_for_one_missing_version_load_it_once() {
        let set = ResidentAdapters::new(1 << 20);
        let calls = Arc::new(AtomicUsize::new(0));
        let leases: Vec<_> = std::thread::scope(|s| {
            let hs: Vec<_> = (0..8)
                .map(|_| {
                    let (set, calls) = (set.clone(), Arc::clone(&calls));
                    s.spawn(move || {
                        set.get_or_load("v1", || {
                            calls.fetch_add(1, Ordering::SeqCst);
                            std::thread::sleep(std::time::Duration::from_millis(20));
                            Ok(adapter(1000))
                        })
                    })
                })
                .collect();
            hs.into_iter()
                .map(|h| h.join().expect("thread").expect("lease"))
                .collect()
        });
        assert_eq!(calls.load(Ordering::SeqCst), 1);
        assert!(
            leases
                .iter()
                .all(|l| Arc::ptr_eq(l.version(), leases[0].version()))
        );
        assert_eq!(set.stats().loads, 1);
    }
}
