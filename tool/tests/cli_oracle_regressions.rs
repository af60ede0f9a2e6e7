//! The stress oracle against regressions a driver developer writes, not only Patch C: each
//! case changes (or moves) one line of the data path of a copy of the workspace, and `bench
//! stress` on a small swarm with every fault must fail it (exit 1) and name what went wrong. The
//! unchanged tree passes the same command (exit 0), so a case cannot pass by accident.

mod common;

use common::Ws;

/// The swarm each case runs: 4 seeds of one 60 s stage at 4 MB/s with every fault (the
/// `tx-heavy` fault's upload-only spells fall at 8-10 s of every 10).
const SWARM: &[&str] = &[
    "stress",
    "--variant",
    "c-v2",
    "--seeds",
    "1..4",
    "--ramp",
    "4:60s",
    "--faults",
    "slow-air,stall,stale-ctrl,spurious-irq,tx-heavy,cmd-burst,preempt",
];

struct Regression {
    what: &'static str,
    file: &'static str,
    from: &'static str,
    to: &'static str,
    /// What the swarm's report must say.
    says: &'static str,
    /// A second edit of the same file, for a change that moves a line.
    also: Option<(&'static str, &'static str)>,
}

const REGRESSIONS: &[Regression] = &[
    Regression {
        what: "a data frame may take the input buffer reserved for commands",
        file: "driver/src/bh.rs",
        from: "self.wsm_get_tx(used >= num_inp_ch_bufs)",
        to: "self.wsm_get_tx(used > num_inp_ch_bufs)",
        says: "reserved for commands",
        also: None,
    },
    Regression {
        what: "the TX restart after a release that returns 1 is dropped",
        file: "driver/src/sdio.rs",
        from: "Ok(true) => self.bh_wakeup_tx(),",
        to: "Ok(true) => {}",
        says: "lost wake-up",
        also: None,
    },
    Regression {
        what: "the BH is not woken for a frame the stack hands down",
        file: "driver/src/txrx.rs",
        from: "            p.event(Event::TxQueueFull);\n        }\n        self.bh_wakeup_tx();",
        to: "            p.event(Event::TxQueueFull);\n        }",
        says: "lost wake-up",
        also: None,
    },
    Regression {
        what: "a release does not say TX was throttled at the last free buffer",
        file: "driver/src/bh.rs",
        from: "if before >= self.num_inp_ch_bufs.get(p) - 1 {",
        to: "if before >= self.num_inp_ch_bufs.get(p) {",
        says: "lost wake-up",
        also: None,
    },
    Regression {
        what: "a configuration change's TX lock is ignored for data frames",
        file: "driver/src/bh.rs",
        from: "self.tx_lock.load(p, Ordering::Acquire) > 0",
        to: "self.tx_lock.load(p, Ordering::Acquire) < 0",
        says: "holds TX",
        also: None,
    },
    Regression {
        what: "received data frames are no longer handed to the stack",
        file: "driver/src/txrx.rs",
        from: "p.netif_rx(msg.frame_len());",
        to: "let _ = msg.frame_len();",
        says: "never reached the stack",
        also: None,
    },
    Regression {
        what: "a flush returns at once while TX buffers are out",
        file: "driver/src/txrx.rs",
        from: "        if self.hw_bufs_used_read() == 0 {\n            return true;",
        to: "        if self.hw_bufs_used_read() != 0 {\n            return true;",
        says: "still unconfirmed to the host",
        also: None,
    },
    Regression {
        what: "commands instead of data frames count against their vif",
        file: "driver/src/bh.rs",
        from: "            if desc.kind == TxKind::Data {",
        to: "            if desc.kind != TxKind::Data {",
        says: "hw_bufs_used_vif",
        also: None,
    },
    Regression {
        what: "a TX frame's length leaves out its own bytes",
        file: "driver/src/sdio.rs",
        from: "wsm::WSM_HDR_LEN + wsm::TX_REQ_HDR_LEN + desc.frame_len as usize",
        to: "wsm::WSM_HDR_LEN + desc.frame_len as usize",
        says: "where the stack had handed down",
        also: None,
    },
    Regression {
        what: "a command already taken by the BH is reported done at once",
        file: "driver/src/txrx.rs",
        from: "        self.bh_wakeup_tx();
        let confirmed",
        to: "        self.bh_wakeup_tx();
        if id != wsm::WSM_READ_MIB_REQ_ID { *self.wsm_cmd.lock(p) = WsmCmd::IDLE; return 0; }
        let confirmed",
        says: "a command the chip never received",
        also: None,
    },
    Regression {
        what: "driver-to-MCU commands take sequence space 0",
        file: "driver/src/wsm.rs",
        from: "if id & 0x0F00 == 0x0C00 {",
        to: "if id & 0x0F00 == 0x0F00 {",
        says: "TX sequence",
        also: None,
    },
    Regression {
        what: "the TX queue-full drop is counted for frames that were queued",
        file: "driver/src/txrx.rs",
        from: "        if !queued {\n            p.event(Event::TxQueueFull);",
        to: "        if queued {\n            p.event(Event::TxQueueFull);",
        says: "dropped at a full TX queue",
        also: None,
    },
    Regression {
        what: "a flush with nothing out says it failed",
        file: "driver/src/txrx.rs",
        from: "        if self.hw_bufs_used_read() == 0 {\n            return true;",
        to: "        if self.hw_bufs_used_read() == 0 {\n            return false;",
        says: "without a flush timeout",
        also: None,
    },
    Regression {
        what: "an atomic read-modify-write split into an atomic load and an atomic store",
        file: "driver/src/bh.rs",
        from: "let before = self.hw_bufs_used.fetch_sub(p, count, Ordering::Release);",
        to: "let before = self.hw_bufs_used.load(p, Ordering::Acquire);\n        self.hw_bufs_used.store(p, before - count, Ordering::Release);",
        says: "Bes2600.hw_bufs_used: lost update: rx_work atomic loaded",
        also: None,
    },
    Regression {
        what: "a frame is listed for the TX work before its pending count goes up (C's own order)",
        file: "driver/src/bh.rs",
        from: "            self.bh_inc_pending_count(space);\n",
        to: "",
        says: "tx pending count error (space 0) in rx_work",
        also: Some(("            p.queue_work(Work::SdioTx);\n", "            p.queue_work(Work::SdioTx);\n            self.bh_inc_pending_count(space);\n")),
    },
    Regression {
        what: "mac80211's flush returns at once without locking or waiting",
        file: "driver/src/txrx.rs",
        from: "        let flushed = self.wsm_lock_tx();\n        self.wsm_unlock_tx();\n        flushed",
        to: "        true",
        says: "bes2600_flush returned true with",
        also: None,
    },
    Regression {
        what: "the module's stop no longer asks the BH to leave",
        file: "driver/src/device.rs",
        from: "        self.bh_term.store(&self.plat, 1, Ordering::Release);\n        self.plat.wake_bh(WakeReason::Tx);\n",
        to: "",
        says: "stop_timeout: the BH did not leave its loop",
        also: None,
    },
    Regression {
        what: "the BH's TX pass ends at the budget it read at its start, frames still queued",
        file: "driver/src/bh.rs",
        from: "self.bh_tx.store(p, 1, Ordering::Release);",
        to: "let _ = p;",
        says: "lost wake-up",
        also: None,
    },
];

/// A copy of the workspace with the regression's edit (and its second one) made.
fn with_regression(r: &Regression) -> Ws {
    let ws = Ws::new();
    let path = ws.root.join(r.file);
    let text = std::fs::read_to_string(&path).unwrap();
    assert!(text.contains(r.from), "{}: the case's line is not in {}", r.what, r.file);
    let mut changed = text.replacen(r.from, r.to, 1);
    if let Some((from, to)) = r.also {
        assert!(changed.contains(from), "{}: the case's second line is not in {}", r.what, r.file);
        changed = changed.replacen(from, to, 1);
    }
    std::fs::write(&path, changed).unwrap();
    ws
}

#[test]
fn the_unchanged_tree_passes_the_swarm() {
    let ws = Ws::new();
    let (code, out, err) = ws.bench(SWARM);
    assert_eq!(code, 0, "{out}\n{err}");
    assert!(out.contains("failed 0 of 4 seeds"), "{out}");
}

#[test]
fn each_one_line_regression_fails_the_swarm_and_is_named() {
    let mut missed = Vec::new();
    for r in REGRESSIONS {
        let ws = with_regression(r);
        let (code, out, err) = ws.bench(SWARM);
        if code != 1 || !(out.contains(r.says) || err.contains(r.says)) {
            missed.push(format!("{} (exit {code}):\n{out}\n{err}", r.what));
        }
    }
    assert!(missed.is_empty(), "the oracle missed:\n{}", missed.join("\n"));
}

/// Regressions of the error paths, which no swarm reaches (the chip never fails so): each
/// must fail `bench stress --probes`, on the probe of its path.
const PROBE_REGRESSIONS: &[Regression] = &[
    Regression {
        what: "the missed-interrupt timeout is armed only with nothing outstanding",
        file: "driver/src/bh.rs",
        from: "let timeout_ms = if outstanding > 0 {",
        to: "let timeout_ms = if outstanding == 0 {",
        says: "hang",
        also: None,
    },
    Regression {
        what: "a stale control byte is re-read without bound",
        file: "driver/src/sdio.rs",
        from: "stale_retries += 1;",
        to: "stale_retries += 0;",
        says: "stuck-ctrl",
        also: None,
    },
    Regression {
        what: "a batch of exactly the buffer's size is refused",
        file: "driver/src/sdio.rs",
        from: "if len > wsm::BATCH_MAX_BYTES {",
        to: "if len >= wsm::BATCH_MAX_BYTES {",
        says: "oversize-batch",
        also: None,
    },
    Regression {
        what: "a command that timed out after it was sent returns +EBUSY",
        file: "driver/src/txrx.rs",
        from: "-EBUSY\n",
        to: "EBUSY\n",
        says: "hang",
        also: None,
    },
    Regression {
        what: "a confirm is taken by whatever command is in flight",
        file: "driver/src/txrx.rs",
        from: "cmd.id != WsmCmd::NONE && (cmd.id | wsm::CONFIRM_BIT) == confirm_id",
        to: "cmd.id != WsmCmd::NONE",
        says: "late-confirm",
        also: None,
    },
];

const PROBES: &[&str] = &["stress", "--variant", "c-v2", "--probes"];

#[test]
fn each_error_path_regression_fails_its_probe() {
    let ws = Ws::new();
    let (code, out, err) = ws.bench(PROBES);
    assert_eq!(code, 0, "the unchanged tree passes the probes:\n{out}\n{err}");
    let mut missed = Vec::new();
    for r in PROBE_REGRESSIONS {
        let ws = with_regression(r);
        let (code, out, err) = ws.bench(PROBES);
        let failed = format!("  {:<17} FAILED", r.says);
        if code != 1 || !out.contains(&failed) {
            missed.push(format!("{} (exit {code}, wanted probe {} failed):\n{out}\n{err}", r.what, r.says));
        }
    }
    assert!(missed.is_empty(), "the probes missed:\n{}", missed.join("\n"));
}
