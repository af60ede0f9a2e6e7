//! Figures of a run in the seed's units: RX packets and bytes, observed receive rate in
//! MiB/s (2^20 bytes; the seed's "1.36 MB/s" is 578 MB over about 405 s, so MiB/s),
//! offered rate in MB/s (10^6 bytes), work dispatches per second and per 1000 RX packets,
//! BH redispatches, lock acquisitions, wake-ups per RX batch, modelled CPU shares, WARNs.

use super::config::{Config, Stage, WARMUP_NS};
use super::core::{Counters, Ctx, FailureKind, SimCore, NCTX};
use super::cost::CostModel;
use super::json::Json;
use crate::platform::{LockId, Warning};

const MIB: f64 = 1024.0 * 1024.0;

#[derive(Clone, Debug)]
pub struct StageReport {
    pub index: usize,
    pub stage: Stage,
    pub delta: Counters,
    /// Set when the run stopped inside this stage (seconds into it).
    pub cut_short_at_s: Option<f64>,
    pub cpus: usize,
}

impl StageReport {
    pub fn new(index: usize, stage: Stage, start: &Counters, end: &Counters, cost: &CostModel) -> Self {
        StageReport { index, stage, delta: diff(start, end), cut_short_at_s: None, cpus: cost.cpus }
    }

    /// Seconds of virtual time the figures cover.
    pub fn seconds(&self) -> f64 {
        self.cut_short_at_s.unwrap_or(self.stage.duration_ms as f64 / 1e3).max(1e-9)
    }

    pub fn observed_mib_per_s(&self) -> f64 {
        self.delta.rx_bytes as f64 / MIB / self.seconds()
    }

    pub fn rx_work_per_s(&self) -> f64 {
        self.delta.dispatches[Ctx::RxWork as usize] as f64 / self.seconds()
    }

    pub fn rx_packets_per_s(&self) -> f64 {
        self.delta.rx_packets as f64 / self.seconds()
    }

    pub fn tx_work_per_s(&self) -> f64 {
        self.delta.dispatches[Ctx::TxWork as usize] as f64 / self.seconds()
    }

    /// Time in lock pairs, all locks, in percent of one CPU (perf's
    /// `_raw_spin_unlock_irqrestore` share).
    pub fn lock_cpu_pct(&self) -> f64 {
        self.delta.lock_ns.iter().sum::<u64>() as f64 / (self.seconds() * 1e9) * 100.0
    }

    pub fn rx_work_per_1000_rx_packets(&self) -> f64 {
        per_1000(self.delta.dispatches[Ctx::RxWork as usize], self.delta.rx_packets)
    }

    pub fn lock_per_s(&self, id: LockId) -> f64 {
        self.delta.lock_acquisitions[super::core::lock_index(id)] as f64 / self.seconds()
    }

    pub fn lock_per_rx_packet(&self, id: LockId) -> f64 {
        ratio(self.delta.lock_acquisitions[super::core::lock_index(id)], self.delta.rx_packets)
    }

    /// RX wake-ups of the BH per RX batch (the seed's "one wake-up per IRQ batch").
    pub fn bh_rx_wakeups_per_rx_batch(&self) -> f64 {
        ratio(self.delta.bh_wakeups_rx, self.delta.rx_batches)
    }

    pub fn lock_per_rx_msg(&self, id: LockId) -> f64 {
        ratio(self.delta.lock_acquisitions[super::core::lock_index(id)], self.delta.rx_msgs)
    }

    fn to_json(&self) -> Json {
        let d = &self.delta;
        let s = self.seconds();
        let per_s = |n: u64| Json::Fixed(n as f64 / s, 1);
        let cpu_pct = |ns: u64| Json::Fixed(ns as f64 / (s * 1e9) * 100.0, 2);
        let rx = Ctx::RxWork as usize;
        let tx = Ctx::TxWork as usize;
        Json::Obj(vec![
            ("stage", Json::Int(self.index as i64)),
            ("offered_mb_per_s", Json::Fixed(self.stage.offered_mb_per_s, 3)),
            (
                "duration_s",
                match self.stage.duration_ms {
                    ms if ms % 1000 == 0 => Json::Int((ms / 1000) as i64),
                    ms => Json::Fixed(ms as f64 / 1e3, 3),
                },
            ),
            ("cut_short_at_s", self.cut_short_at_s.map_or(Json::Null, |t| Json::Fixed(t, 3))),
            ("rx_packets", Json::Int(d.rx_packets as i64)),
            ("rx_bytes", Json::Int(d.rx_bytes as i64)),
            ("rx_mb", Json::Fixed(d.rx_bytes as f64 / 1e6, 1)),
            ("observed_mib_per_s", Json::Fixed(self.observed_mib_per_s(), 3)),
            ("frames_offered", Json::Int(d.frames_arrived as i64)),
            ("frames_dropped_by_chip", Json::Int(d.frames_dropped as i64)),
            ("irqs", Json::Int(d.irqs as i64)),
            ("rx_work_dispatches", Json::Int(d.dispatches[rx] as i64)),
            ("rx_work_per_s", Json::Fixed(self.rx_work_per_s(), 1)),
            ("rx_work_per_1000_rx_packets", Json::Fixed(self.rx_work_per_1000_rx_packets(), 1)),
            ("tx_work_dispatches", Json::Int(d.dispatches[tx] as i64)),
            ("tx_work_per_s", Json::Fixed(self.tx_work_per_s(), 1)),
            ("work_dispatches_per_s", per_s(d.dispatches[rx] + d.dispatches[tx])),
            ("bh_redispatches", Json::Int(d.bh_starts as i64)),
            ("rx_batches", Json::Int(d.rx_batches as i64)),
            ("rx_msgs", Json::Int(d.rx_msgs as i64)),
            ("bh_wakeups", Json::Int(d.bh_wakeups as i64)),
            ("bh_rx_wakeups", Json::Int(d.bh_wakeups_rx as i64)),
            ("bh_rx_wakeups_per_rx_batch", Json::Fixed(self.bh_rx_wakeups_per_rx_batch(), 3)),
            ("bh_tx_restart_wakeups", Json::Int(d.bh_wakeups_tx_restart as i64)),
            ("rx_queue_lock_per_s", Json::Fixed(self.lock_per_s(LockId::RxQueue), 1)),
            ("rx_queue_lock_per_rx_packet", Json::Fixed(self.lock_per_rx_packet(LockId::RxQueue), 3)),
            ("rx_queue_lock_per_rx_msg", Json::Fixed(self.lock_per_rx_msg(LockId::RxQueue), 3)),
            ("tx_frames", Json::Int(d.tx_frames as i64)),
            ("confirms", Json::Int(d.confirms as i64)),
            ("multi_confirms", Json::Int(d.multi_confirms as i64)),
            ("sdio_bus_busy_pct", cpu_pct(d.bus_busy_ns)),
            ("tx_wait_ms", tx_wait_json(&d.tx_wait)),
            (
                "cpu_pct_of_one_cpu",
                Json::Obj(Ctx::ALL.iter().map(|&c| (c.name(), cpu_pct(d.cpu_ns[c as usize]))).collect()),
            ),
            (
                "locks",
                Json::Obj(
                    LockId::ALL
                        .iter()
                        .map(|&l| {
                            let i = super::core::lock_index(l);
                            (
                                l.name(),
                                Json::Obj(vec![
                                    ("acquisitions_per_s", per_s(d.lock_acquisitions[i])),
                                    ("cpu_pct_of_one_cpu", cpu_pct(d.lock_ns[i])),
                                ]),
                            )
                        })
                        .collect(),
                ),
            ),
            ("warns", Json::Int(d.warns as i64)),
            ("missed_interrupts", Json::Int(d.missed_irqs as i64)),
            ("release_failures_logged", Json::Int(d.release_failed as i64)),
        ])
    }
}

fn diff(a: &Counters, b: &Counters) -> Counters {
    let mut d = Counters::default();
    macro_rules! sub {
        ($($f:ident),*) => { $( d.$f = b.$f - a.$f; )* };
    }
    sub!(
        rx_packets,
        rx_bytes,
        irqs,
        ctrl_reads,
        rx_batches,
        tx_transfers,
        acks_queued,
        acks_dropped,
        bus_busy_ns,
        bh_wakeups,
        bh_wakeups_rx,
        bh_wakeups_tx_restart,
        rx_msgs,
        bh_starts,
        warns,
        missed_irqs,
        release_failed,
        rx_queue_full,
        frames_arrived,
        frames_dropped,
        bytes_arrived,
        confirms,
        multi_confirms,
        tx_frames
    );
    for i in 0..NCTX {
        d.dispatches[i] = b.dispatches[i] - a.dispatches[i];
        d.cpu_ns[i] = b.cpu_ns[i] - a.cpu_ns[i];
    }
    d.tx_wait = b.tx_wait.since(&a.tx_wait);
    for i in 0..4 {
        d.lock_acquisitions[i] = b.lock_acquisitions[i] - a.lock_acquisitions[i];
        d.lock_ns[i] = b.lock_ns[i] - a.lock_ns[i];
    }
    d
}

/// How long the stage's data frames waited in the driver, `xmit` to the SDIO write, in ms:
/// the median, the 99th percentile and the longest, each a bucket's upper bound (null
/// without a data frame).
fn tx_wait_json(h: &super::latency::WaitHist) -> Json {
    let ms = |us: Option<u64>| us.map_or(Json::Null, |us| Json::Fixed(us as f64 / 1e3, 3));
    Json::Obj(vec![
        ("frames", Json::Int(h.count() as i64)),
        ("p50", ms(h.quantile_us(0.5))),
        ("p99", ms(h.quantile_us(0.99))),
        ("max", ms(h.max_us())),
    ])
}

fn ratio(n: u64, d: u64) -> f64 {
    if d == 0 {
        0.0
    } else {
        n as f64 / d as f64
    }
}

fn per_1000(n: u64, d: u64) -> f64 {
    ratio(n, d) * 1000.0
}

/// One WARN of the run.
#[derive(Clone, Debug)]
pub struct WarnLine {
    pub time_s: f64,
    pub context: &'static str,
    pub call_path: Vec<&'static str>,
    pub warning: Warning,
}

impl WarnLine {
    /// The kernel-log style message.
    pub fn message(&self) -> String {
        match self.warning {
            Warning::TxBufferUnderflow { hw_bufs_used } => {
                format!("WARNING: at wsm_release_tx_buffer: hw_bufs_used {hw_bufs_used} < 0 (returned -1)")
            }
            Warning::RxSeqMismatch { space, expected, got } => {
                format!("WARNING: wsm_rx_seq[{space}] mismatch: expected {expected}, got {got}")
            }
            Warning::BadRxLength { len } => format!("WARNING: bad RX message length {len}"),
        }
    }
}

/// One run-time contract report, named as the static audit names fields.
#[derive(Clone, Debug)]
pub struct ContractLine {
    /// Seconds after the warm-up (negative: during it).
    pub time_s: f64,
    pub field: &'static str,
    pub context: &'static str,
    pub what: String,
    pub call_path: Vec<&'static str>,
}

/// The whole run.
#[derive(Clone, Debug)]
pub struct Report {
    pub seed: u64,
    pub features: Vec<&'static str>,
    pub stages: Vec<StageReport>,
    pub warns: Vec<WarnLine>,
    pub warn_count: u64,
    /// Seconds after the warm-up (negative: during it).
    pub failures: Vec<(f64, FailureKind, String)>,
    /// Run-time contract reports (the first ones), and how many there were in all.
    pub contracts: Vec<ContractLine>,
    pub contract_count: u64,
    pub calibration: Vec<(&'static str, String, &'static str)>,
    pub virtual_s: f64,
    /// Faults switched on, by name, and how often each fired.
    pub faults: Vec<(&'static str, u64)>,
    /// How often the rare paths ran (a path at 0 was never reached by this run).
    pub coverage: Vec<(&'static str, u64)>,
    /// An error path's probe and its verdict (`Config::probe`).
    pub probe: Option<super::probe::ProbeReport>,
}

impl Report {
    pub fn new(config: &Config, core: &SimCore, stages: Vec<StageReport>) -> Self {
        let warns = core
            .warns
            .borrow()
            .iter()
            .map(|w| WarnLine {
                time_s: w.time_ns.saturating_sub(WARMUP_NS) as f64 / 1e9,
                context: w.context,
                call_path: w.call_path.clone(),
                warning: w.warning,
            })
            .collect();
        let failures = core
            .failures
            .borrow()
            .iter()
            .map(|f| ((f.time_ns as f64 - WARMUP_NS as f64) / 1e9, f.kind.clone(), f.detail.clone()))
            .collect();
        let contracts = core
            .contract_records
            .borrow()
            .iter()
            .map(|c| ContractLine {
                time_s: (c.time_ns as f64 - WARMUP_NS as f64) / 1e9,
                field: c.field,
                context: c.context,
                what: c.what.clone(),
                call_path: c.call_path.clone(),
            })
            .collect();
        Report {
            seed: config.seed,
            features: crate::FEATURES.to_vec(),
            stages,
            warns,
            warn_count: core.counters.borrow().warns,
            failures,
            contracts,
            contract_count: core.counters.borrow().contract_violations,
            calibration: config.cost.describe(),
            virtual_s: core.now().saturating_sub(WARMUP_NS) as f64 / 1e9,
            coverage: {
                let c = core.counters.borrow();
                let chip = core.chip().stats;
                vec![
                    ("data_at_throttle_point", chip.data_at_throttle),
                    ("command_took_last_buffer", chip.command_took_last_buffer),
                    ("multi_confirms", chip.multi_confirms_sent),
                    ("tx_restart_wakeups_from_rx", c.bh_wakeups_tx_restart),
                    ("pending_timer_arms", c.pending_timer_arms),
                    ("tx_lock_periods", c.tx_lock_periods),
                    ("command_confirm_waits", c.cmd_waits),
                    ("command_timeouts", c.cmd_timeouts),
                    ("flushes", c.flushes),
                    ("flush_waits", c.flush_waits),
                    ("flush_timeouts", c.flush_timeouts),
                    ("missed_interrupts", c.missed_irqs),
                    ("stale_toggle_retries", c.stale_toggle_retries),
                    ("release_failures", c.release_failed),
                    ("pending_count_errors", c.pending_count_errors),
                ]
            },
            faults: config
                .cost
                .faults()
                .into_iter()
                .map(|f| {
                    let fired = match f {
                        "slow-air" => core.chip().stats.tx_delayed,
                        "stall" => core.stalls.get(),
                        "stale-ctrl" => core.stale_ctrls.get(),
                        "spurious-irq" => core.spurious_irqs.get(),
                        "tx-heavy" => core.upload_frames.get(),
                        "cmd-burst" => core.cmd_bursts.get(),
                        "preempt" => core.preempts.get(),
                        _ => 0,
                    };
                    (f, fired)
                })
                .collect(),
            probe: None,
        }
    }

    /// Clean: no WARN, no wedge, no dead link, no BUG. A probe's run: the driver answered
    /// its firmware failure as promised, with no WARN or failure before it, and no BUG or
    /// contract report at all (the WARNs and failures that follow a fatal failure are its
    /// expected consequences).
    pub fn clean(&self) -> bool {
        let Some(probe) = &self.probe else { return self.warn_count == 0 && self.failures.is_empty() };
        let at_s = (super::probe::PROBE_AT_NS - WARMUP_NS) as f64 / 1e9;
        probe.passed
            && self.contract_count == 0
            && self.warns.iter().all(|w| w.time_s >= at_s)
            && self.failures.iter().all(|f| f.0 >= at_s && !matches!(f.1, FailureKind::Bug | FailureKind::Contract))
    }

    /// The first underflow WARN, if any.
    pub fn first_underflow(&self) -> Option<&WarnLine> {
        self.warns.iter().find(|w| matches!(w.warning, Warning::TxBufferUnderflow { .. }))
    }

    /// The report as JSON. Long because it lists every figure of the report, in order.
    pub fn to_json(&self) -> String {
        let kind = |k: &FailureKind| match k {
            FailureKind::TxWedge => "tx_wedge",
            FailureKind::LinkDead => "link_dead",
            FailureKind::Bug => "bug",
            FailureKind::PendingCount => "pending_count_error",
            FailureKind::LinkBreak => "link_break",
            FailureKind::Contract => "contract",
            FailureKind::CmdTimeout => "cmd_timeout",
            FailureKind::FlushTimeout => "flush_timeout",
            FailureKind::MissedInterrupt => "missed_interrupt",
            FailureKind::LostWakeup => "lost_wakeup",
            FailureKind::FlushIncomplete => "flush_incomplete",
            FailureKind::BufferCount => "buffer_count",
            FailureKind::RxLost => "rx_lost",
            FailureKind::Protocol => "protocol",
            FailureKind::TxLost => "tx_lost",
            FailureKind::StopTimeout => "stop_timeout",
        };
        let mut top = vec![
            ("seed", Json::str(self.seed.to_string())),
            ("features", Json::Arr(self.features.iter().map(|f| Json::str(*f)).collect())),
            ("clean", Json::Bool(self.clean())),
            ("virtual_s", Json::Fixed(self.virtual_s, 3)),
            ("warn_count", Json::Int(self.warn_count as i64)),
            (
                "warns",
                Json::Arr(
                    self.warns
                        .iter()
                        .map(|w| {
                            Json::Obj(vec![
                                ("time_s", Json::Fixed(w.time_s, 6)),
                                ("context", Json::str(w.context)),
                                ("call_path", Json::Arr(w.call_path.iter().map(|f| Json::str(*f)).collect())),
                                ("message", Json::str(w.message())),
                            ])
                        })
                        .collect(),
                ),
            ),
            (
                "faults",
                Json::Arr(
                    self.faults
                        .iter()
                        .map(|(n, k)| Json::Obj(vec![("name", Json::str(*n)), ("fired", Json::Int(*k as i64))]))
                        .collect(),
                ),
            ),
            ("coverage", Json::Obj(self.coverage.iter().map(|(n, k)| (*n, Json::Int(*k as i64))).collect())),
            ("contract_violations", Json::Int(self.contract_count as i64)),
            (
                "contracts",
                Json::Arr(
                    self.contracts
                        .iter()
                        .take(8)
                        .map(|c| {
                            Json::Obj(vec![
                                ("time_s", Json::Fixed(c.time_s, 6)),
                                ("field", Json::str(c.field)),
                                ("context", Json::str(c.context)),
                                ("what", Json::str(c.what.clone())),
                                ("call_path", Json::Arr(c.call_path.iter().map(|f| Json::str(*f)).collect())),
                            ])
                        })
                        .collect(),
                ),
            ),
            (
                "failures",
                Json::Arr(
                    self.failures
                        .iter()
                        .map(|(t, k, d)| {
                            Json::Obj(vec![
                                ("time_s", Json::Fixed(*t, 3)),
                                ("kind", Json::str(kind(k))),
                                ("detail", Json::str(d.clone())),
                            ])
                        })
                        .collect(),
                ),
            ),
            ("stages", Json::Arr(self.stages.iter().map(|s| s.to_json()).collect())),
            (
                "calibration",
                Json::Arr(
                    self.calibration
                        .iter()
                        .map(|(n, v, src)| {
                            Json::Obj(vec![
                                ("name", Json::str(*n)),
                                ("value", Json::str(v.clone())),
                                ("source", Json::str(*src)),
                            ])
                        })
                        .collect(),
                ),
            ),
        ];
        if let Some(p) = &self.probe {
            top.push((
                "probe",
                Json::Obj(vec![
                    ("name", Json::str(p.name)),
                    ("passed", Json::Bool(p.passed)),
                    ("detail", Json::str(p.detail.clone())),
                ]),
            ));
        }
        Json::Obj(top).render()
    }
}
