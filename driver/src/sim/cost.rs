//! The cost model: what each operation costs in virtual time, and where each figure comes
//! from. Calibrated so that variant `b` at 4 MB/s offered lands near the seed's Patch B
//! baseline (1.36 MiB/s observed, 86.4 `sdio_rx_work` dispatches/s, 90.3 per 1000 RX
//! packets); `bench stress` prints the calibration next to every run.

use crate::chip::ChipConfig;

/// Every constant of the model. Times in nanoseconds.
#[derive(Clone, Debug)]
pub struct CostModel {
    /// CPUs of the board (RK3566 has 4; the seed's workqueue has max_active 2 and the
    /// interesting contention is between two CPUs).
    pub cpus: usize,
    /// One plain or atomic access to a shared word (an L1 hit plus the instruction).
    pub shared_access_ns: u64,
    /// Chance that a CPU is interrupted at a shared access (timer tick, MMC and GPIO
    /// interrupts, IPIs), and how long the interruption lasts. This is what opens the
    /// window between a load and a store that Patch C's race needs.
    pub preempt_chance: f64,
    /// The same on the CPU that takes the MMC host controller's interrupts (CPU0, where
    /// the IRQ thread queues `sdio_rx_work` as a per-CPU kworker: `kworker/0:3H` in the
    /// seed's trace). Transfer-complete interrupts arrive there during every batch.
    pub preempt_chance_irq_cpu: f64,
    pub preempt_min_ns: u64,
    pub preempt_max_ns: u64,
    /// One `spin_lock_irqsave` + `spin_unlock_irqrestore` pair, with the interrupts held
    /// off that run at restore. Calibrated on the seed's Patch B baseline: all lock pairs
    /// of b at 4 MB/s (about 5,000/s of four locks) make `_raw_spin_unlock_irqrestore`'s
    /// 20% of one CPU (the model: 20.0%).
    pub lock_pair_ns: u64,
    /// One iteration of spinning on a held lock.
    pub spin_iteration_ns: u64,
    /// Allocating and filling one skb from a batch message.
    pub skb_alloc_ns: u64,
    /// `wsm_handle_rx` for a data frame up to `netif_rx` (802.11 -> 802.3, stack entry).
    pub handle_rx_ns: u64,
    pub tx_build_ns: u64,
    pub irq_handler_ns: u64,
    /// From `queue_work` to the work item running, for `sdio_rx_work`: the MMC IRQ thread
    /// queues it and goes to sleep, so the kworker gets the CPU at once.
    pub work_dispatch_ns: u64,
    /// The same for `sdio_tx_work`. The BH queues it for every frame it lists and keeps
    /// running: `sdio_wq` is a per-CPU (bound) workqueue, so the kworker is woken on the
    /// BH's own CPU and waits until the scheduler preempts the BH (both nice -20, C's
    /// `bes2600_bh` and `bes_sdio` workqueues being WQ_HIGHPRI). Frames listed meanwhile
    /// go in the same run. Calibrated on the seed's 276.1 `sdio_tx_work`/s (b, 4 MB/s).
    pub tx_work_dispatch_ns: u64,
    /// From the card interrupt to the MMC IRQ thread running.
    pub irq_thread_ns: u64,
    /// From `netif_rx` to the stack's ACK reaching `ndo_start_xmit` (softirq).
    pub softirq_ns: u64,
    /// From `wake_up` to the BH running.
    pub wake_ns: u64,
    pub context_switch_ns: u64,
    /// SDIO: one CMD52 (the control byte), the fixed part of one CMD53, and the data rate.
    /// The rate is the effective rate of the seed's board under Bug #5 (a 4-bit bus that
    /// moves a 16 KiB batch in about 8 ms), not the bus clock.
    pub cmd52_ns: u64,
    pub cmd53_overhead_ns: u64,
    pub sdio_ns_per_byte: u64,
    /// Firmware: batch preparation, RX buffer, input buffers, airtime, boot, multi-confirm
    /// size (the chip the kernel lab loads has the same figures: `ChipConfig::DEFAULT`).
    pub chip: ChipConfig,
    /// Traffic: a TCP receive. 98.5% of frames are full 1514-byte Ethernet frames and the
    /// rest 60-byte ones (seed: 578 MB in 387,532 packets = 1491.5 bytes per packet). One
    /// 66-byte ACK goes back per two data frames (delayed ACK).
    pub frame_full_bytes: u16,
    pub frame_small_bytes: u16,
    pub frame_small_share: f64,
    pub ack_every_frames: u32,
    pub ack_frame_bytes: u16,
    /// The TCP sender stops sending when no ACK went over the air for this long.
    pub tcp_ack_timeout_ns: u64,
    /// One WSM command (a MIB read, like wpa_supplicant's signal poll) per period.
    pub cmd_period_ns: u64,
    /// One mac80211 flush (`wsm_lock_tx` + `wsm_flush_tx` + `wsm_unlock_tx`) per period, as
    /// a background scan or a power-save change asks for.
    pub flush_period_ns: u64,
    /// A link with no RX progress for this long while traffic is offered is dead.
    pub link_dead_after_ns: u64,
    /// TX is wedged when frames wait in the driver and nothing reached the chip this long:
    /// far above any pause of a correct driver (a configuration change holds data 100 ms,
    /// `slow-air` holds the air 40 ms at most), below the monitor timer's 3 s so a stopped
    /// TX path is named before the link break it causes.
    pub tx_wedge_after_ns: u64,
    /// Fault `slow-air` (off: 0): the chance per transmitted frame that the firmware holds
    /// the air (retries on a busy channel) for a time in `fault_slow_air_ns`, which bunches
    /// confirms and exhausts the input buffers. Seeded from its own stream.
    pub fault_slow_air_chance: f64,
    pub fault_slow_air_ns: (u64, u64),
    /// Fault `stall` (off: 0): the chance that a work item or the BH, when woken, starts
    /// late by a time in `fault_stall_ns` (a busy CPU, a higher-priority kworker, an
    /// interrupt storm): far below every driver timeout (3 s pending, 5 s missed
    /// interrupt, 6 s command, 10 s flush), so a correct driver survives it.
    pub fault_stall_chance: f64,
    pub fault_stall_ns: (u64, u64),
    /// Fault `stale-ctrl` (off: 0): the chance that a control-byte read returns the last
    /// value again (an SDIO read that raced the firmware's update): the driver must see
    /// the unchanged toggle and read again.
    pub fault_stale_ctrl_chance: f64,
    /// Fault `spurious-irq` (off: 0): the chance, every 100 ms check, of an interrupt the
    /// chip did not raise (a shared line, a glitch): the driver reads an empty control
    /// byte, or a batch early.
    pub fault_spurious_irq_chance: f64,
    /// Fault `tx-heavy` (off: false): a bulk upload beside the RX ramp. The stack keeps
    /// the driver's queue full of 1514-byte frames; when a frame is refused it stops its
    /// queue and starts it again when frames reach the chip (the driver's dequeue wakes
    /// mac80211's queues). The input buffers run out and TX restarts all the time. 2 s of
    /// every 10 the RX sender pauses, so no ACK wakes the BH: only the TX restart does.
    pub fault_tx_heavy: bool,
    /// Fault `cmd-burst` (off: 0): the chance that a command period sends a burst of
    /// `fault_cmd_burst_len` commands back to back (a scan or a roam asking many things
    /// at once), whatever the input buffers hold: a command may take the buffer kept for it.
    pub fault_cmd_burst_chance: f64,
    pub fault_cmd_burst_len: u32,
    /// Fault `preempt` (off: 0): the chance, at each shared access a work item, the BH or
    /// a process context (command, flush) makes outside every spinlock, that it loses its
    /// CPU for a time in `fault_preempt_ns`: a preemptible kernel gives the CPU to another
    /// task there (another kworker, a user thread). The driver must be correct wherever a
    /// spinlock is not held; this opens the windows between two steps of one context that
    /// the other contexts' whole round trips fit in (a frame sent and confirmed between
    /// the BH listing it and counting it). Interrupt threads and softirqs are not
    /// preempted here. Seeded from its own stream.
    pub fault_preempt_chance: f64,
    pub fault_preempt_ns: (u64, u64),
}

impl Default for CostModel {
    fn default() -> Self {
        CostModel {
            cpus: 2,
            shared_access_ns: 20,
            preempt_chance: 0.00005,
            preempt_chance_irq_cpu: 0.01,
            preempt_min_ns: 2_000,
            preempt_max_ns: 25_000,
            lock_pair_ns: 38_000,
            spin_iteration_ns: 200,
            skb_alloc_ns: 15_000,
            handle_rx_ns: 30_000,
            tx_build_ns: 5_000,
            irq_handler_ns: 10_000,
            work_dispatch_ns: 40_000,
            tx_work_dispatch_ns: 60_000,
            irq_thread_ns: 50_000,
            softirq_ns: 20_000,
            wake_ns: 30_000,
            context_switch_ns: 5_000,
            cmd52_ns: 80_000,
            cmd53_overhead_ns: 150_000,
            sdio_ns_per_byte: 460,
            chip: ChipConfig::DEFAULT,
            frame_full_bytes: 1514,
            frame_small_bytes: 60,
            frame_small_share: 0.005,
            ack_every_frames: 2,
            ack_frame_bytes: 66,
            tcp_ack_timeout_ns: 1_000_000_000,
            cmd_period_ns: 100_000_000,
            flush_period_ns: 3_000_000_000,
            link_dead_after_ns: 10_000_000_000,
            tx_wedge_after_ns: 2_000_000_000,
            fault_slow_air_chance: 0.0,
            fault_slow_air_ns: (5_000_000, 40_000_000),
            fault_stall_chance: 0.0,
            fault_stall_ns: (1_000_000, 20_000_000),
            fault_stale_ctrl_chance: 0.0,
            fault_spurious_irq_chance: 0.0,
            fault_tx_heavy: false,
            fault_cmd_burst_chance: 0.0,
            fault_cmd_burst_len: 8,
            fault_preempt_chance: 0.0,
            fault_preempt_ns: (500_000, 10_000_000),
        }
    }
}

/// The faults a run can switch on, by name: each stays within what the driver must survive.
pub const FAULTS: &[(&str, &str)] = &[
    ("slow-air", "the firmware holds the air 5-40 ms on 2% of frames: confirms bunch, input buffers run out"),
    ("stall", "a woken work item or the BH starts 1-20 ms late on 5% of wake-ups: contexts interleave otherwise"),
    ("stale-ctrl", "5% of control-byte reads return the last value again: the toggle catches it, the driver re-reads"),
    ("spurious-irq", "an interrupt the chip did not raise on 30% of 100 ms periods: empty or early control-byte reads"),
    (
        "tx-heavy",
        "a bulk upload keeps the driver's TX queue full; 2 s of every 10 the RX sender pauses and only it runs, 300 ms of every 500",
    ),
    ("cmd-burst", "20% of command periods send 8 commands back to back, whatever the input buffers hold"),
    (
        "preempt",
        "a work item, the BH or a process context loses its CPU 0.5-10 ms at 1 in 5,000 shared accesses outside spinlocks",
    ),
];

impl CostModel {
    /// Switches on the named fault; an unknown name is an error naming the known ones.
    pub fn enable_fault(&mut self, name: &str) -> Result<(), String> {
        match name {
            "slow-air" => self.fault_slow_air_chance = 0.02,
            "stall" => self.fault_stall_chance = 0.05,
            "stale-ctrl" => self.fault_stale_ctrl_chance = 0.05,
            "spurious-irq" => self.fault_spurious_irq_chance = 0.3,
            "tx-heavy" => self.fault_tx_heavy = true,
            "cmd-burst" => self.fault_cmd_burst_chance = 0.2,
            "preempt" => self.fault_preempt_chance = 0.0002,
            _ => {
                let known: Vec<&str> = FAULTS.iter().map(|f| f.0).collect();
                return Err(format!("unknown fault `{name}`: known faults are {}", known.join(", ")));
            }
        }
        Ok(())
    }

    /// The faults switched on, by name.
    pub fn faults(&self) -> Vec<&'static str> {
        let mut v = Vec::new();
        if self.fault_slow_air_chance > 0.0 {
            v.push("slow-air");
        }
        if self.fault_stall_chance > 0.0 {
            v.push("stall");
        }
        if self.fault_stale_ctrl_chance > 0.0 {
            v.push("stale-ctrl");
        }
        if self.fault_spurious_irq_chance > 0.0 {
            v.push("spurious-irq");
        }
        if self.fault_tx_heavy {
            v.push("tx-heavy");
        }
        if self.fault_cmd_burst_chance > 0.0 {
            v.push("cmd-burst");
        }
        if self.fault_preempt_chance > 0.0 {
            v.push("preempt");
        }
        v
    }

    /// `(name, value, source)` for every constant, for reports.
    pub fn describe(&self) -> Vec<(&'static str, String, &'static str)> {
        vec![
            ("cpus", self.cpus.to_string(), "two CPUs contend (workqueue max_active 2)"),
            ("shared_access_ns", self.shared_access_ns.to_string(), "one cached access"),
            ("preempt_chance", format!("{}", self.preempt_chance), "interrupt at a shared access"),
            ("preempt_chance_irq_cpu", format!("{}", self.preempt_chance_irq_cpu), "the same on CPU0 (irq, rx_work)"),
            ("preempt_ns", format!("{}..{}", self.preempt_min_ns, self.preempt_max_ns), "interrupt handler length"),
            ("lock_pair_ns", self.lock_pair_ns.to_string(), "calibrated on the seed's irqrestore 20% CPU (b, 4 MB/s)"),
            ("skb_alloc_ns", self.skb_alloc_ns.to_string(), "alloc + 1.5 KB copy on a Cortex-A55"),
            ("handle_rx_ns", self.handle_rx_ns.to_string(), "wsm_handle_rx to netif_rx"),
            ("work_dispatch_ns", self.work_dispatch_ns.to_string(), "queue_work to run, high-prio wq"),
            (
                "tx_work_dispatch_ns",
                self.tx_work_dispatch_ns.to_string(),
                "calibrated: ~276 tx_work/s (queued by the running BH, same CPU)",
            ),
            ("irq_thread_ns", self.irq_thread_ns.to_string(), "card irq to MMC irq thread"),
            ("wake_ns", self.wake_ns.to_string(), "wake_up to BH running"),
            ("cmd52_ns", self.cmd52_ns.to_string(), "control byte read"),
            ("cmd53_overhead_ns", self.cmd53_overhead_ns.to_string(), "fixed part of a data transfer"),
            ("sdio_ns_per_byte", self.sdio_ns_per_byte.to_string(), "calibrated: b at 4 MB/s -> 1.36 MiB/s"),
            ("chip_batch_prepare_ns", self.chip.batch_prepare_ns.to_string(), "calibrated: ~86 rx_work/s"),
            ("chip_rx_buffer_bytes", self.chip.rx_buffer_bytes.to_string(), "calibrated: ~11 frames per batch"),
            ("chip_num_inp_ch_bufs", self.chip.num_inp_ch_bufs.to_string(), "startup indication"),
            (
                "frame_bytes",
                format!("{} ({}% {})", self.frame_full_bytes, self.frame_small_share * 100.0, self.frame_small_bytes),
                "seed: 1491.5 B/packet",
            ),
            ("ack_every_frames", self.ack_every_frames.to_string(), "TCP delayed ACK"),
            ("cmd_period_ns", self.cmd_period_ns.to_string(), "signal poll"),
            ("link_dead_after_ns", self.link_dead_after_ns.to_string(), "no RX progress"),
        ]
    }
}
