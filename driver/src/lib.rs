//! bes2600 SDIO WiFi data path: a `#![no_std]` core without allocation, generic over a
//! small platform layer, plus (feature `sim`, std only) a deterministic simulator of the
//! chip that replays the stress ramp.
//!
//! # Execution contexts
//!
//! The data path runs in these contexts (DESIGN.md section 4). Every entry point states
//! the context it runs in with a doc line of the form
//!
//! ```text
//! /// context: rx_work
//! ```
//!
//! where the name is one of `irq`, `rx_work`, `tx_work`, `bh`, `net_tx`, `cmd` (a
//! command's sender, which waits for its confirm), `flush` (mac80211's flush, which waits
//! for every TX buffer), `timer` (the softirq monitor timers), `probe`.
//!
//! # Shared-state contracts (machine-readable)
//!
//! Every field of [`Bes2600`] states how it may be shared, in one doc line directly above
//! the field, of exactly one of these forms:
//!
//! ```text
//! /// contract: writers(bh)            plain data; only the listed contexts write it
//! /// contract: writers(bh, rx_work)   ... (any number of contexts)
//! /// contract: atomic                 every access is an atomic operation
//! /// contract: lock(rx_queue_lock)    only accessed with that lock held (the lock is a
//! ///                                   `SpinLock` field and the data lives inside it)
//! /// contract: owner(rx_work)         used by one context only, never shared
//! /// contract: init                   written before any context starts, then read-only
//! ```
//!
//! A field of a nested struct states its own contract (the audit descends into structs
//! that have contract lines); a `static` states one in its docs too. `lock(L)` names the
//! field that is the lock, or, when no field is called `L`, the field is a `SpinLock`
//! holding its own data.
//!
//! The platform layer's memory primitives say what they do in an `access:` line
//! (`load`, `store`, `atomic-load`, `atomic-store`, `atomic-rmw`, `atomic-cas`, `lock`,
//! `unlock`), and a registration whose callable runs in a context of its own says so in a
//! `callback-context: NAME` line. `probe` runs alone, before and after every other context.
//!
//! A C `int` shared by contract ("only the BH writes this") is a [`shared::SingleWriter`]:
//! its read-modify-writes are a plain load followed by a plain store, and it is `Sync` only
//! because of the documented single-writer contract. The contract audit reads these lines
//! (through rustdoc) and compares them with what rustc's MIR of each feature build does.
//!
//! # Features (our model of the patch series)
//!
//! - `patch-b`: `pipe_read` no longer re-queues `sdio_rx_work` when `rx_queue` is empty
//!   while buffers are outstanding; confirms arrive through the chip's interrupt.
//! - `c-prep-atomic`: as the seed's C-prep: `hw_bufs_used` and `hw_bufs_used_vif[]` become
//!   atomics; release is a fetch-sub with release ordering. No functional change.
//! - `c-prep-pending` (ours, beyond the seed): `wsm_tx_pending[]` becomes an atomic too, and
//!   the monitor timer follows the value before each change. Patch C moves the pending
//!   count's decrement into `sdio_rx_work` while the BH keeps incrementing it; bench's
//!   audit of the seed's C v2 as posted found it.
//! - `c-direct-rx`: `extract_packets` hands each message to [`Bes2600::handle_rx_skb`] in
//!   `rx_work` context; `rx_work` stops waking the BH per batch; `rx_queue`, its lock and
//!   `pipe_read` stay in the source, unused (minimum-diff scope).
#![cfg_attr(not(any(test, feature = "sim")), no_std)]
#![forbid(unsafe_op_in_unsafe_fn)]
// The kernel builds Rust modules with -W missing-docs: every pub item says what it is.
#![cfg_attr(not(feature = "sim"), deny(missing_docs))]

pub mod bh;
pub mod chip;
pub mod pending;
pub mod platform;
pub mod ring;
pub mod sdio;
pub mod shared;
pub mod txrx;
pub mod wsm;

#[cfg(test)]
mod testplat;

mod device;
pub use device::{Bes2600, TxDesc, TxKind, FEATURES};
pub use wsm::RxMsg;

#[cfg(feature = "sim")]
pub mod sim;

// The kernel entry: only the kernel lab's build (Kbuild passes the kernel's config as
// `--cfg CONFIG_...`) compiles it.
#[cfg(CONFIG_RUST)]
mod kmod;

#[cfg(CONFIG_RUST)]
kernel::prelude::module! {
    type: kmod::Bes2600Module,
    name: "bes2600",
    authors: ["bench"],
    description: "bes2600 SDIO WiFi data path on the bench chip model (kernel lab)",
    license: "GPL",
    params: {
        stress_ms: u32 {
            default: 0,
            description: "Run a stress of this many ms at load (0: load only)",
        },
        rate_kbps: u32 {
            default: 4096,
            description: "Offered RX rate over the air in KiB/s during the stress",
        },
        stall_every: u32 {
            default: 0,
            description: "Stall one plain load in N (0: never), KCSAN-style race window",
        },
        stall_us: u32 {
            default: 0,
            description: "Length of a plain-load stall in microseconds",
        },
    },
}
