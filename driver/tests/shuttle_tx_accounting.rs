//! The TX buffer accounting alone under shuttle's randomized scheduler: the BH allocates
//! while a second context (RX work, as after Patch C) releases. Without `c-prep-atomic`
//! the plain read-modify-write loses an update; with it, none is ever lost.

use bes2600::platform::{CpuOp, Event, LockId, Memory, Ordering, Platform, WaitQueue, WakeReason, Warning, Work};
use bes2600::Bes2600;
use shuttle::sync::atomic::{AtomicI32, Ordering as O};
use shuttle::sync::Arc;

struct ShuttlePlatform;

impl Memory for ShuttlePlatform {
    type Word = AtomicI32;
    fn new_word(&self, v: i32) -> AtomicI32 {
        AtomicI32::new(v)
    }
    // A plain access is a relaxed load or store: shuttle may switch between them.
    fn plain_load(&self, w: &AtomicI32) -> i32 {
        w.load(O::Relaxed)
    }
    fn plain_store(&self, w: &AtomicI32, v: i32) {
        w.store(v, O::Relaxed)
    }
    fn atomic_load(&self, w: &AtomicI32, _: Ordering) -> i32 {
        w.load(O::SeqCst)
    }
    fn atomic_store(&self, w: &AtomicI32, v: i32, _: Ordering) {
        w.store(v, O::SeqCst)
    }
    fn atomic_fetch_add(&self, w: &AtomicI32, d: i32, _: Ordering) -> i32 {
        w.fetch_add(d, O::SeqCst)
    }
    fn atomic_swap(&self, w: &AtomicI32, v: i32, _: Ordering) -> i32 {
        w.swap(v, O::SeqCst)
    }
    fn spin_lock(&self, l: &AtomicI32, _: LockId) {
        while l.compare_exchange(0, 1, O::Acquire, O::Relaxed).is_err() {
            shuttle::thread::yield_now();
        }
    }
    fn spin_unlock(&self, l: &AtomicI32, _: LockId) {
        l.store(0, O::Release)
    }
}

impl Platform for ShuttlePlatform {
    fn queue_work(&self, _: Work) -> bool {
        true
    }
    fn wake_bh(&self, _: WakeReason) {}
    fn bh_wait(&self, ready: &dyn Fn() -> bool, _: Option<u32>) -> bool {
        ready()
    }
    fn wait_event(&self, _: WaitQueue, ready: &dyn Fn() -> bool, _: u32) -> bool {
        ready()
    }
    fn wake_up(&self, _: WaitQueue) {}
    fn sdio_read_ctrl(&self) -> u8 {
        0
    }
    fn sdio_read_data(&self, _: &mut [u8]) {}
    fn sdio_write_data(&self, _: &[u8]) {}
    fn now_ns(&self) -> u64 {
        0
    }
    fn cpu(&self, _: CpuOp) {}
    fn warn(&self, _: Warning) {}
    fn event(&self, _: Event) {}
    fn bug(&self, what: &'static str) -> ! {
        panic!("BUG: {what}")
    }
    fn mod_pending_timer(&self, _: usize, _: u32) {}
    fn del_pending_timer(&self, _: usize) {}
    fn enter(&self, _: &'static str) {}
    fn leave(&self) {}
    fn netif_rx(&self, _: u16) {}
}

/// One frame in flight; the BH allocates two more while RX work releases the first.
fn scenario() {
    let drv = Arc::new(Bes2600::new(ShuttlePlatform));
    drv.num_inp_ch_bufs.set(&drv.plat, 8);
    drv.wsm_alloc_tx_buffer();
    let rx = {
        let drv = drv.clone();
        shuttle::thread::spawn(move || {
            drv.wsm_release_tx_buffer(1);
        })
    };
    drv.wsm_alloc_tx_buffer();
    drv.wsm_alloc_tx_buffer();
    rx.join().unwrap();
    assert_eq!(drv.hw_bufs_used_read(), 2, "lost update on hw_bufs_used");
}

/// Patch C's second counter: the BH counts a send while RX work counts a confirm down.
fn pending_scenario() {
    let drv = Arc::new(Bes2600::new(ShuttlePlatform));
    drv.bh_inc_pending_count(0);
    let rx = {
        let drv = drv.clone();
        shuttle::thread::spawn(move || {
            drv.bh_dec_pending_count(0);
        })
    };
    drv.bh_inc_pending_count(0);
    rx.join().unwrap();
    #[cfg(not(feature = "c-prep-pending"))]
    let left = drv.wsm_tx_pending[0].get(&drv.plat);
    #[cfg(feature = "c-prep-pending")]
    let left = drv.wsm_tx_pending[0].load(&drv.plat, O::Acquire);
    assert_eq!(left, 1, "lost update on wsm_tx_pending");
}

fn explore(iterations: usize) -> Result<(), String> {
    explore_scenario(iterations, scenario)
}

fn explore_scenario(iterations: usize, scenario: fn()) -> Result<(), String> {
    let mut config = shuttle::Config::new();
    // The driver struct carries its DMA buffers: give the shuttle threads room.
    config.stack_size = 1 << 20;
    config.failure_persistence = shuttle::FailurePersistence::None;
    let scheduler = shuttle::scheduler::RandomScheduler::new_from_seed(1, iterations);
    let runner = shuttle::Runner::new(scheduler, config);
    std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| runner.run(scenario))).map(|_| ()).map_err(|e| {
        e.downcast_ref::<String>()
            .cloned()
            .or_else(|| e.downcast_ref::<&str>().map(|s| s.to_string()))
            .unwrap_or_default()
    })
}

#[test]
fn lost_update_found_without_c_prep_atomic_and_never_with_it() {
    let outcome = explore(2000);
    if cfg!(feature = "c-prep-atomic") {
        assert!(outcome.is_ok(), "atomics lost an update: {outcome:?}");
    } else {
        let msg = outcome.expect_err("shuttle found no lost update in the plain counter");
        assert!(msg.contains("lost update"), "{msg}");
    }
}

#[test]
fn pending_count_lost_update_found_without_c_prep_pending_and_never_with_it() {
    let outcome = explore_scenario(2000, pending_scenario);
    if cfg!(feature = "c-prep-pending") {
        assert!(outcome.is_ok(), "atomics lost an update: {outcome:?}");
    } else {
        let msg = outcome.expect_err("shuttle found no lost update in the plain pending count");
        assert!(msg.contains("lost update on wsm_tx_pending"), "{msg}");
    }
}
