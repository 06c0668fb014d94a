//! Attribute sets ("series") of the exported metrics: interning with a cap and an overflow series, and totals
//! kept per thread shard.
//!
//! A record's *raw key* is the handful of strings its attributes are made from (model id as reported, provider,
//! …). Each thread shard caches raw key → series, so the common case is one uncontended lock, one hash of a few
//! short strings and one probe. On a miss the shared registry turns the raw key into the exported attribute set
//! (canonical model id, values length-capped) and finds or creates its series; distinct raw keys that export
//! the same attributes share a series, so an observable instrument never reports one attribute set twice.
//! Totals live in the shard, indexed by series id, and are merged only at collection time, on the SDK's
//! export thread.

use std::hash::{Hash, Hasher};
use std::sync::Arc;

use hashbrown::HashTable;
use opentelemetry::KeyValue;
use parking_lot::Mutex;
use rustc_hash::FxHasher;

use crate::shards::Shards;

/// Strings in a raw key: four for a call's own attributes plus up to
/// [`MAX_METRIC_DIMENSIONS`](super::attributes::MAX_METRIC_DIMENSIONS) dimensions.
pub(crate) const KEY_SLOTS: usize = 12;

/// The strings a series' attributes are made from, borrowed from a record.
pub(crate) type RawKey<'a> = [Option<&'a str>; KEY_SLOTS];

/// Raw-key entries one shard caches beyond the series cap; past that, lookups go to the registry (slower, but
/// memory stays bounded whatever the input).
const CACHE_SLACK: usize = 256;

/// Hashes of raw keys one shard remembers as going to the overflow series once its cache is full (8 bytes
/// each); cleared when full. A raw key found there skips building its attributes.
const OVERFLOW_MEMORY: usize = 4_096;

/// One exported attribute set and the SDK handles bound to it.
pub(crate) struct Series<H> {
    pub(crate) id: usize,
    pub(crate) attributes: Box<[KeyValue]>,
    pub(crate) handles: H,
}

/// Totals of one series in one shard.
pub(crate) trait Totals: Default + Clone + Send + 'static {
    fn merge(&mut self, other: &Self);
}

struct CacheEntry<H> {
    hash: u64,
    key: [Option<Arc<str>>; KEY_SLOTS],
    series: Arc<Series<H>>,
}

impl<H> CacheEntry<H> {
    fn matches(&self, raw: &RawKey<'_>) -> bool {
        self.key.iter().zip(raw.iter()).all(|(a, b)| a.as_deref() == *b)
    }
}

struct Shard<H, T> {
    cache: HashTable<CacheEntry<H>>,
    /// Raw keys that went to the overflow series while `cache` was full, by their hash under the table's
    /// random seed (the keys are not kept: a value crafted to collide with a remembered key under the unseeded
    /// `FxHasher` would send an existing series' calls to the overflow series).
    overflowed: HashTable<u64>,
    totals: Vec<T>,
}

/// The registry once it is full: no series is ever added again, so lookups need no lock.
struct Frozen<H> {
    by_attributes: HashTable<usize>,
    series: Vec<Arc<Series<H>>>,
    overflow: Arc<Series<H>>,
}

impl<H> Frozen<H> {
    /// The series exporting `attributes` (hashed to `hash`), else the overflow series.
    fn lookup(&self, hash: u64, attributes: &[KeyValue]) -> Arc<Series<H>> {
        let series = &self.series;
        match self.by_attributes.find(hash, |&id| series.get(id).is_some_and(|s| *s.attributes == *attributes)) {
            Some(&id) => series.get(id).map_or_else(|| Arc::clone(&self.overflow), Arc::clone),
            None => Arc::clone(&self.overflow),
        }
    }
}

struct Registry<H> {
    /// Series id, by the hash of its attributes.
    by_attributes: HashTable<usize>,
    series: Vec<Arc<Series<H>>>,
    overflow: Option<Arc<Series<H>>>,
}

/// Every series with its totals.
pub(crate) type Snapshot<H, T> = Vec<(Arc<Series<H>>, T)>;

/// The series of one family of metrics (calls, tasks or tools) and their totals.
pub(crate) struct SeriesTable<H, T> {
    registry: Mutex<Registry<H>>,
    /// Set when the cap is reached (with the overflow series made): from then on [`SeriesTable::resolve`] reads
    /// it without taking `registry`, which every thread would otherwise take for each raw key its cache cannot
    /// hold (a high-cardinality dimension such as the user).
    frozen: std::sync::OnceLock<Frozen<H>>,
    /// Seeds the hashes in [`Shard::overflowed`].
    seed: std::hash::RandomState,
    shards: Shards<Shard<H, T>>,
    cap: usize,
}

fn hash_raw(raw: &RawKey<'_>) -> u64 {
    let mut h = FxHasher::default();
    for slot in raw {
        match slot {
            None => h.write_u8(0),
            Some(s) => {
                h.write_u8(1);
                h.write(s.as_bytes());
                h.write_u8(0xff);
            }
        }
    }
    h.finish()
}

fn with_totals<H, T: Totals, R>(totals: &mut Vec<T>, series: &Series<H>, f: impl FnOnce(&Series<H>, &mut T) -> R) -> R {
    if totals.len() <= series.id {
        totals.resize(series.id + 1, T::default());
    }
    match totals.get_mut(series.id) {
        Some(t) => f(series, t),
        None => f(series, &mut T::default()),
    }
}

fn hash_attributes(attributes: &[KeyValue]) -> u64 {
    let mut h = FxHasher::default();
    attributes.hash(&mut h);
    h.finish()
}

impl<H: Send + Sync + 'static, T: Totals> SeriesTable<H, T> {
    /// A table keeping at most `cap` series (plus the overflow series), sharded `shards` ways (a power of two).
    pub(crate) fn new(cap: usize, shards: usize) -> Self {
        SeriesTable {
            registry: Mutex::new(Registry { by_attributes: HashTable::new(), series: Vec::new(), overflow: None }),
            frozen: std::sync::OnceLock::new(),
            seed: std::hash::RandomState::new(),
            shards: Shards::new(shards, || Shard {
                cache: HashTable::new(),
                overflowed: HashTable::new(),
                totals: Vec::new(),
            }),
            cap: cap.max(1),
        }
    }

    fn shard(&self) -> &Mutex<Shard<H, T>> {
        self.shards.mine()
    }

    /// Finds (or makes) the series of `raw` and runs `f` on it and this thread's totals for it, under this
    /// thread's shard lock. `attributes` turns a raw key into the exported attribute set and `handles` binds the
    /// SDK handles of a new series; both run only the first time a shard sees a raw key.
    pub(crate) fn record<R>(
        &self,
        raw: &RawKey<'_>,
        attributes: impl FnOnce(&RawKey<'_>) -> Vec<KeyValue>,
        handles: impl FnOnce() -> H,
        f: impl FnOnce(&Series<H>, &mut T) -> R,
    ) -> R {
        let hash = hash_raw(raw);
        let mut guard = self.shard().lock();
        let Shard { cache, overflowed, totals } = &mut *guard;
        // Hit: no reference count touched (the series' `Arc` is shared between shards, and bumping it would
        // bounce its cache line between cores).
        if let Some(entry) = cache.find(hash, |e| e.hash == hash && e.matches(raw)) {
            return with_totals(totals, &entry.series, f);
        }
        let full = cache.len() >= self.cap + CACHE_SLACK;
        let seeded = full.then(|| std::hash::BuildHasher::hash_one(&self.seed, raw));
        if let (Some(frozen), Some(seeded)) = (self.frozen.get(), seeded)
            && overflowed.find(seeded, |&h| h == seeded).is_some()
        {
            return with_totals(totals, &frozen.overflow, f);
        }
        let series = self.resolve(attributes(raw), handles);
        match seeded {
            None => {
                let key = raw.map(|s| s.map(Arc::<str>::from));
                cache.insert_unique(hash, CacheEntry { hash, key, series: Arc::clone(&series) }, |e| e.hash);
            }
            Some(seeded) if series.id == self.cap => {
                if overflowed.len() >= OVERFLOW_MEMORY {
                    overflowed.clear();
                }
                overflowed.insert_unique(seeded, seeded, |&h| h);
            }
            Some(_) => {}
        }
        with_totals(totals, &series, f)
    }

    /// The series exporting `attributes`, made if new; the overflow series once the cap is reached.
    fn resolve(&self, attributes: Vec<KeyValue>, handles: impl FnOnce() -> H) -> Arc<Series<H>> {
        let hash = hash_attributes(&attributes);
        if let Some(frozen) = self.frozen.get() {
            return frozen.lookup(hash, &attributes);
        }
        let mut reg = self.registry.lock();
        let reg = &mut *reg;
        // Frozen while this thread waited for the lock.
        if let Some(frozen) = self.frozen.get() {
            return frozen.lookup(hash, &attributes);
        }
        let series = &reg.series;
        if let Some(&id) =
            reg.by_attributes.find(hash, |&id| series.get(id).is_some_and(|s| *s.attributes == *attributes))
            && let Some(s) = reg.series.get(id)
        {
            return Arc::clone(s);
        }
        if reg.series.len() < self.cap {
            let id = reg.series.len();
            let s = Arc::new(Series { id, attributes: attributes.into_boxed_slice(), handles: handles() });
            reg.series.push(Arc::clone(&s));
            let series = &reg.series;
            reg.by_attributes.insert_unique(hash, id, |&id| {
                series.get(id).map(|s| hash_attributes(&s.attributes)).unwrap_or_default()
            });
            return s;
        }
        let cap = self.cap;
        let overflow = Arc::clone(reg.overflow.get_or_insert_with(|| {
            Arc::new(Series {
                id: cap,
                attributes: Box::new([KeyValue::new(super::OVERFLOW_ATTRIBUTE, true)]),
                handles: handles(),
            })
        }));
        // Full for good (series are never removed): publish a copy that later lookups read without the lock.
        let _ = self.frozen.set(Frozen {
            by_attributes: reg.by_attributes.clone(),
            series: reg.series.clone(),
            overflow: Arc::clone(&overflow),
        });
        overflow
    }

    /// Every series with its totals summed over the shards. Runs at collection time, off the recording threads.
    pub(crate) fn snapshot(&self) -> Snapshot<H, T> {
        let (mut out, overflow): (Snapshot<H, T>, Option<Arc<Series<H>>>) = {
            let reg = self.registry.lock();
            (reg.series.iter().map(|s| (Arc::clone(s), T::default())).collect(), reg.overflow.clone())
        };
        let mut overflow_totals = T::default();
        for shard in self.shards.iter() {
            let shard = shard.lock();
            for (id, totals) in shard.totals.iter().enumerate() {
                if let Some((_, acc)) = out.get_mut(id) {
                    acc.merge(totals);
                } else if id == self.cap {
                    overflow_totals.merge(totals);
                }
            }
        }
        if let Some(o) = overflow {
            out.push((o, overflow_totals));
        }
        out
    }

    /// Series made so far (the overflow series not counted).
    #[cfg(test)]
    pub(crate) fn len(&self) -> usize {
        self.registry.lock().series.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Default, Clone)]
    struct Count(u64);

    impl Totals for Count {
        fn merge(&mut self, other: &Self) {
            self.0 += other.0;
        }
    }

    fn key(a: &str) -> RawKey<'_> {
        let mut k: RawKey<'_> = [None; KEY_SLOTS];
        k[0] = Some(a);
        k
    }

    fn attrs(raw: &RawKey<'_>) -> Vec<KeyValue> {
        // Exported value: lower-cased, so raw keys "A" and "a" share one series.
        vec![KeyValue::new("k", raw[0].unwrap_or("").to_ascii_lowercase())]
    }

    #[test]
    fn series_are_interned_capped_and_merged() {
        let table: SeriesTable<(), Count> = SeriesTable::new(3, 4);
        for name in ["a", "A", "b", "c", "d", "e", "a"] {
            table.record(&key(name), attrs, || (), |_, t| t.0 += 1);
        }
        assert_eq!(table.len(), 3, "a/A share a series; d and e overflow");
        let snap = table.snapshot();
        let got: Vec<(String, u64)> = snap.iter().map(|(s, t)| (format!("{}", s.attributes[0].value), t.0)).collect();
        assert_eq!(
            got,
            vec![("a".into(), 3), ("b".into(), 1), ("c".into(), 1), ("true".into(), 2)],
            "overflow carries otel.metric.overflow=true and the sum of what did not fit"
        );
    }

    #[test]
    fn shards_merge_across_threads() {
        let table = Arc::new(SeriesTable::<(), Count>::new(10, 8));
        std::thread::scope(|s| {
            for _ in 0..4 {
                let table = Arc::clone(&table);
                s.spawn(move || {
                    for _ in 0..1000 {
                        table.record(&key("m"), attrs, || (), |_, t| t.0 += 1);
                    }
                });
            }
        });
        let snap = table.snapshot();
        assert_eq!(snap.len(), 1);
        assert_eq!(snap[0].1.0, 4000);
    }

    /// Past the cap, with the shard's cache full (a high-cardinality dimension): keys seen before skip
    /// building their attributes, and new ones are looked up without the registry's lock, which every thread
    /// would otherwise take for every call.
    #[test]
    fn past_the_cap_lookups_take_no_shared_lock_and_repeat_keys_build_nothing() {
        let table = Arc::new(SeriesTable::<(), Count>::new(5, 1));
        let built = std::sync::atomic::AtomicU64::new(0);
        let counted = |raw: &RawKey<'_>| {
            built.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            attrs(raw)
        };
        let names: Vec<String> = (0..2_000).map(|i| format!("k{i}")).collect();
        for name in &names {
            table.record(&key(name), counted, || (), |_, t| t.0 += 1);
        }
        assert_eq!(built.load(std::sync::atomic::Ordering::Relaxed), 2_000);
        for name in &names {
            table.record(&key(name), counted, || (), |_, t| t.0 += 1);
        }
        assert_eq!(built.load(std::sync::atomic::Ordering::Relaxed), 2_000, "the second round built no attributes");
        // "K0" exports as the series of "k0" (the first made): found without the lock while this thread holds it.
        let held = table.registry.lock();
        let (tx, rx) = std::sync::mpsc::channel();
        let t = Arc::clone(&table);
        std::thread::spawn(move || {
            t.record(
                &key("K0"),
                attrs,
                || (),
                |s, c| {
                    c.0 += 1;
                    tx.send(s.id).ok()
                },
            )
        });
        let id = rx.recv_timeout(std::time::Duration::from_secs(10)).expect("recorded while the registry was locked");
        drop(held);
        assert_eq!(id, 0, "k0's series");
        let snap = table.snapshot();
        let total: u64 = snap.iter().map(|(_, t)| t.0).sum();
        assert_eq!(total, 4_001);
        assert_eq!(snap.iter().find(|(s, _)| s.id == 0).map(|(_, t)| t.0), Some(3));
    }

    #[test]
    fn memory_is_bounded_under_a_flood_of_keys() {
        let table: SeriesTable<(), Count> = SeriesTable::new(5, 1);
        for i in 0..10_000 {
            let name = format!("k{i}");
            table.record(&key(&name), attrs, || (), |_, t| t.0 += 1);
        }
        let shard = table.shards.iter().next().unwrap().lock();
        assert!(shard.cache.len() <= 5 + CACHE_SLACK);
        assert!(shard.totals.len() <= 6);
        drop(shard);
        let total: u64 = table.snapshot().iter().map(|(_, t)| t.0).sum();
        assert_eq!(total, 10_000);
    }
}
