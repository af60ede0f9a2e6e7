//! Shared-state wrappers, one per contract kind of the crate docs.
//!
//! # Invariants
//! - [`SingleWriter`]: only the contexts named in the field's `contract: writers(..)` line
//!   write it; a read-modify-write is a plain load then a plain store.
//! - [`SpinLock`]: the data is only reachable through a guard, so only with the lock held.
//! - [`Owned`]: only the one context named in `contract: owner(..)` touches it.

use crate::platform::{LockId, Memory, Ordering};
use core::cell::UnsafeCell;
use core::ops::{Deref, DerefMut};

/// A C `int` shared between contexts by a single-writer contract.
pub struct SingleWriter<W> {
    word: W,
}

// SAFETY: the word is only written by the contexts its field's contract names (one context
// by design); readers in other contexts may see a stale value, exactly as in the C driver.
// The platform's `Word` is a memory cell that tolerates concurrent plain access (a relaxed
// atomic in a kernel build), so there is no undefined behaviour, only lost updates when the
// contract is broken, which is what the contract audit and the simulator look for.
unsafe impl<W> Sync for SingleWriter<W> {}

impl<W> SingleWriter<W> {
    /// A word holding `value`.
    pub fn new<M: Memory<Word = W>>(m: &M, value: i32) -> Self {
        SingleWriter { word: m.new_word(value) }
    }
    /// A field of the driver: `field` is its `Owner.field` name for run-time reports.
    pub fn named<M: Memory<Word = W>>(m: &M, field: &'static str, value: i32) -> Self {
        SingleWriter { word: m.new_named_word(value, field) }
    }
    /// A plain load.
    pub fn get<M: Memory<Word = W>>(&self, m: &M) -> i32 {
        m.plain_load(&self.word)
    }
    /// A plain store.
    pub fn set<M: Memory<Word = W>>(&self, m: &M, value: i32) {
        m.plain_store(&self.word, value)
    }
    /// `x += delta` in C: a load, then a store; returns the value loaded.
    pub fn add<M: Memory<Word = W>>(&self, m: &M, delta: i32) -> i32 {
        let before = m.plain_load(&self.word);
        m.plain_store(&self.word, before.wrapping_add(delta));
        before
    }
}

/// An `atomic_t`.
pub struct Atomic<W> {
    word: W,
}

// SAFETY: every access is an atomic operation of the platform.
unsafe impl<W> Sync for Atomic<W> {}

impl<W> Atomic<W> {
    /// An `atomic_t` holding `value`.
    pub fn new<M: Memory<Word = W>>(m: &M, value: i32) -> Self {
        Atomic { word: m.new_word(value) }
    }
    /// An `atomic_t` field of the driver: `field` is its `Owner.field` name for run-time
    /// reports (a lost update through an `atomic_read` then an `atomic_set`).
    pub fn named<M: Memory<Word = W>>(m: &M, field: &'static str, value: i32) -> Self {
        Atomic { word: m.new_named_word(value, field) }
    }
    /// `atomic_read` (with `order`).
    pub fn load<M: Memory<Word = W>>(&self, m: &M, order: Ordering) -> i32 {
        m.atomic_load(&self.word, order)
    }
    /// `atomic_set` (with `order`).
    pub fn store<M: Memory<Word = W>>(&self, m: &M, value: i32, order: Ordering) {
        m.atomic_store(&self.word, value, order)
    }
    /// `atomic_fetch_add`: adds `delta`, returns the value before.
    pub fn fetch_add<M: Memory<Word = W>>(&self, m: &M, delta: i32, order: Ordering) -> i32 {
        m.atomic_fetch_add(&self.word, delta, order)
    }
    /// `atomic_fetch_sub`: subtracts `delta`, returns the value before.
    pub fn fetch_sub<M: Memory<Word = W>>(&self, m: &M, delta: i32, order: Ordering) -> i32 {
        m.atomic_fetch_add(&self.word, delta.wrapping_neg(), order)
    }
    /// `atomic_xchg`: stores `value`, returns the value before.
    pub fn swap<M: Memory<Word = W>>(&self, m: &M, value: i32, order: Ordering) -> i32 {
        m.atomic_swap(&self.word, value, order)
    }
}

/// A `spinlock_t` together with the data it protects.
pub struct SpinLock<W, T> {
    word: W,
    id: LockId,
    data: UnsafeCell<T>,
}

// SAFETY: the data is only reachable through `SpinLockGuard`, which exists only while the
// platform's spinlock is held.
unsafe impl<W, T: Send> Sync for SpinLock<W, T> {}

impl<W, T> SpinLock<W, T> {
    /// A spinlock named `id` around `data`.
    pub fn new<M: Memory<Word = W>>(m: &M, id: LockId, data: T) -> Self {
        SpinLock { word: m.new_word(0), id, data: UnsafeCell::new(data) }
    }
    /// Initialises the lock in place around data that is already in `slot` as zero bytes.
    ///
    /// # Safety
    /// `slot` is valid for writes, its data bytes are zero, and all-zero bytes are a valid
    /// `T` holding the wanted initial value.
    pub unsafe fn init_around_zeroed<M: Memory<Word = W>>(slot: *mut Self, m: &M, id: LockId) {
        // SAFETY: `slot` is valid for writes (the caller's contract); the data stays.
        unsafe {
            core::ptr::addr_of_mut!((*slot).word).write(m.new_word(0));
            core::ptr::addr_of_mut!((*slot).id).write(id);
        }
    }
    /// `spin_lock_bh`: the data, until the guard is dropped.
    pub fn lock<'a, M: Memory<Word = W>>(&'a self, m: &'a M) -> SpinLockGuard<'a, M, T> {
        m.spin_lock(&self.word, self.id);
        SpinLockGuard { lock: self, m }
    }
}

/// The held lock; unlocks when dropped.
pub struct SpinLockGuard<'a, M: Memory, T> {
    lock: &'a SpinLock<M::Word, T>,
    m: &'a M,
}

impl<M: Memory, T> Deref for SpinLockGuard<'_, M, T> {
    type Target = T;
    fn deref(&self) -> &T {
        // SAFETY: the guard exists only while the lock is held, so no other reference to
        // the data exists.
        unsafe { &*self.lock.data.get() }
    }
}

impl<M: Memory, T> DerefMut for SpinLockGuard<'_, M, T> {
    fn deref_mut(&mut self) -> &mut T {
        // SAFETY: as in `deref`; `&mut self` makes this the only reference.
        unsafe { &mut *self.lock.data.get() }
    }
}

impl<M: Memory, T> Drop for SpinLockGuard<'_, M, T> {
    fn drop(&mut self) {
        self.m.spin_unlock(&self.lock.word, self.lock.id);
    }
}

/// Data used by exactly one context (a work item's private buffer).
pub struct Owned<T> {
    data: UnsafeCell<T>,
}

// SAFETY: only the one context named in the field's contract touches the data, and a work
// item never runs concurrently with itself.
unsafe impl<T: Send> Sync for Owned<T> {}

impl<T> Owned<T> {
    /// Data only its owner context touches.
    pub const fn new(data: T) -> Self {
        Owned { data: UnsafeCell::new(data) }
    }
    /// # Safety
    /// Call only from the owning context, and hold no other reference from `get`.
    #[allow(clippy::mut_from_ref)]
    pub unsafe fn get(&self) -> &mut T {
        // SAFETY: the caller is the single owning context (see the function's contract).
        unsafe { &mut *self.data.get() }
    }
}
