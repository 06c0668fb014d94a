//! Per-thread shards: state that recording threads write on every call, split so that two threads rarely
//! share a lock or a cache line. Each thread is given an index once (round robin, at its first use of any
//! shard set) and always takes the same shard of a set; readers visit every shard.

use std::sync::atomic::{AtomicUsize, Ordering};

use parking_lot::Mutex;

static NEXT_INDEX: AtomicUsize = AtomicUsize::new(0);

thread_local! {
    static THREAD_INDEX: usize = NEXT_INDEX.fetch_add(1, Ordering::Relaxed);
}

/// A value on its own cache lines (128 bytes: adjacent-line prefetch pairs 64-byte lines).
#[repr(align(128))]
#[derive(Debug)]
pub(crate) struct Padded<T>(pub(crate) T);

/// A power-of-two number of `Mutex<T>`s, one per thread index modulo the count.
#[derive(Debug)]
pub(crate) struct Shards<T> {
    slots: Box<[Padded<Mutex<T>>]>,
}

impl<T> Shards<T> {
    /// `count` shards (rounded up to a power of two, at least one), each made by `make`.
    pub(crate) fn new(count: usize, mut make: impl FnMut() -> T) -> Self {
        let count = count.max(1).next_power_of_two();
        Shards { slots: (0..count).map(|_| Padded(Mutex::new(make()))).collect() }
    }

    /// The calling thread's shard.
    pub(crate) fn mine(&self) -> &Mutex<T> {
        let idx = THREAD_INDEX.try_with(|i| *i).unwrap_or(0);
        &self.slots[idx & (self.slots.len() - 1)].0
    }

    /// Every shard, for readers.
    pub(crate) fn iter(&self) -> impl Iterator<Item = &Mutex<T>> {
        self.slots.iter().map(|p| &p.0)
    }

    pub(crate) fn len(&self) -> usize {
        self.slots.len()
    }
}

/// A power-of-two number of `T`s on their own cache lines, one per thread index modulo the count, for state each
/// thread writes without a lock (atomics).
#[derive(Debug)]
pub(crate) struct PerThread<T> {
    slots: Box<[Padded<T>]>,
}

impl<T> PerThread<T> {
    /// `count` slots (rounded up to a power of two, at least one), each made by `make`.
    pub(crate) fn new(count: usize, mut make: impl FnMut() -> T) -> Self {
        let count = count.max(1).next_power_of_two();
        PerThread { slots: (0..count).map(|_| Padded(make())).collect() }
    }

    /// The calling thread's slot.
    pub(crate) fn mine(&self) -> &T {
        let idx = THREAD_INDEX.try_with(|i| *i).unwrap_or(0);
        &self.slots[idx & (self.slots.len() - 1)].0
    }

    /// Every slot, for readers.
    pub(crate) fn iter(&self) -> impl Iterator<Item = &T> {
        self.slots.iter().map(|p| &p.0)
    }
}

/// Shards for state every recording thread writes: four per core (so that threads rarely share one), between
/// 4 and 64.
pub(crate) fn per_core_count() -> usize {
    std::thread::available_parallelism().map(|n| n.get()).unwrap_or(4).saturating_mul(4).clamp(4, 64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn threads_keep_their_shard_and_readers_see_every_shard() {
        let shards = Shards::new(3, || 0u64);
        assert_eq!(shards.len(), 4);
        let work = |n: u64| {
            for _ in 0..n {
                *shards.mine().lock() += 1;
            }
            // The same thread always lands on the same shard.
            std::ptr::from_ref(shards.mine()) as usize
        };
        std::thread::scope(|s| {
            let a = s.spawn(|| (work(10), work(5)));
            let (first, second) = a.join().unwrap();
            assert_eq!(first, second);
            s.spawn(|| work(7)).join().unwrap();
        });
        assert_eq!(shards.iter().map(|m| *m.lock()).sum::<u64>(), 22);
    }
}
