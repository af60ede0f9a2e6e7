//! A single-threaded platform for unit tests of the core: plain cells, a scripted SDIO
//! bus, and a record of what the driver asked for.

use crate::platform::{CpuOp, Event, LockId, Memory, Ordering, Platform, WaitQueue, WakeReason, Warning, Work};
use std::cell::{Cell, RefCell};
use std::collections::VecDeque;

#[derive(Default)]
pub struct TestPlatform {
    pub warns: RefCell<Vec<Warning>>,
    pub events: RefCell<Vec<Event>>,
    pub queued: RefCell<Vec<Work>>,
    pub wakes: RefCell<Vec<WakeReason>>,
    /// `wake_up` calls on the other wait queues.
    pub wake_ups: RefCell<Vec<WaitQueue>>,
    pub ctrl_bytes: RefCell<VecDeque<u8>>,
    pub batches: RefCell<VecDeque<Vec<u8>>>,
    pub written: RefCell<Vec<Vec<u8>>>,
    pub delivered: RefCell<Vec<u16>>,
    pub locks_taken: Cell<u32>,
    /// Armed monitor timers: (space, timeout_ms); a `del` removes the space's entry.
    pub pending_timers: RefCell<Vec<(usize, u32)>>,
}

impl Memory for TestPlatform {
    type Word = Cell<i32>;
    fn new_word(&self, value: i32) -> Cell<i32> {
        Cell::new(value)
    }
    fn plain_load(&self, w: &Cell<i32>) -> i32 {
        w.get()
    }
    fn plain_store(&self, w: &Cell<i32>, v: i32) {
        w.set(v)
    }
    fn atomic_load(&self, w: &Cell<i32>, _: Ordering) -> i32 {
        w.get()
    }
    fn atomic_store(&self, w: &Cell<i32>, v: i32, _: Ordering) {
        w.set(v)
    }
    fn atomic_fetch_add(&self, w: &Cell<i32>, d: i32, _: Ordering) -> i32 {
        let b = w.get();
        w.set(b + d);
        b
    }
    fn atomic_swap(&self, w: &Cell<i32>, v: i32, _: Ordering) -> i32 {
        w.replace(v)
    }
    fn spin_lock(&self, l: &Cell<i32>, _: LockId) {
        assert_eq!(l.get(), 0, "lock taken twice in a single-threaded test");
        l.set(1);
        self.locks_taken.set(self.locks_taken.get() + 1);
    }
    fn spin_unlock(&self, l: &Cell<i32>, _: LockId) {
        l.set(0)
    }
}

impl Platform for TestPlatform {
    fn queue_work(&self, work: Work) -> bool {
        self.queued.borrow_mut().push(work);
        true
    }
    fn wake_bh(&self, reason: WakeReason) {
        self.wakes.borrow_mut().push(reason);
    }
    fn bh_wait(&self, ready: &dyn Fn() -> bool, _: Option<u32>) -> bool {
        ready()
    }
    /// Nothing else runs while a test waits: the condition holds now or the wait times out.
    fn wait_event(&self, _: WaitQueue, ready: &dyn Fn() -> bool, _: u32) -> bool {
        ready()
    }
    fn wake_up(&self, wq: WaitQueue) {
        self.wake_ups.borrow_mut().push(wq);
    }
    fn sdio_read_ctrl(&self) -> u8 {
        self.ctrl_bytes.borrow_mut().pop_front().unwrap_or(0)
    }
    fn sdio_read_data(&self, buf: &mut [u8]) {
        buf.fill(0);
        if let Some(b) = self.batches.borrow_mut().pop_front() {
            buf[..b.len()].copy_from_slice(&b);
        }
    }
    fn sdio_write_data(&self, buf: &[u8]) {
        self.written.borrow_mut().push(buf.to_vec());
    }
    fn now_ns(&self) -> u64 {
        0
    }
    fn cpu(&self, _: CpuOp) {}
    fn warn(&self, w: Warning) {
        self.warns.borrow_mut().push(w);
    }
    fn event(&self, e: Event) {
        self.events.borrow_mut().push(e);
    }
    fn bug(&self, what: &'static str) -> ! {
        panic!("BUG: {what}")
    }
    fn mod_pending_timer(&self, space: usize, timeout_ms: u32) {
        let mut t = self.pending_timers.borrow_mut();
        t.retain(|(s, _)| *s != space);
        t.push((space, timeout_ms));
    }
    fn del_pending_timer(&self, space: usize) {
        self.pending_timers.borrow_mut().retain(|(s, _)| *s != space);
    }
    fn enter(&self, _: &'static str) {}
    fn leave(&self) {}
    fn netif_rx(&self, len: u16) {
        self.delivered.borrow_mut().push(len);
    }
}
