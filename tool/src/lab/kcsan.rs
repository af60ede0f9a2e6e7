//! KCSAN's reports on a lab console (`kernel/kcsan/report.c`), read back into the names the
//! static audit uses: the field, from the address the module printed for it
//! (`bes2600: kcsan: field Bes2600.hw_bufs_used at 0x...`), and each access's context, from
//! the outermost entry function of the driver in its stack (`sdio_rx_work_fn` is rx_work,
//! `bh_thread` is bh, ...). So a lab failure and an audit failure read the same.

use super::console::strip_time;
use serde::Serialize;
use std::collections::BTreeMap;

/// The driver's context entry functions (`driver/src/kmod.rs`) and the contexts they run.
const ENTRY_FUNCTIONS: [(&str, &str); 7] = [
    ("sdio_rx_work_fn", "rx_work"),
    ("sdio_tx_work_fn", "tx_work"),
    ("net_tx_thread", "net_tx"),
    ("irq_thread", "irq"),
    ("bh_thread", "bh"),
    ("cmd_context", "cmd"),
    ("flush_context", "flush"),
];

/// One access of a report: what it was, where, by whom, and its stack.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct Access {
    /// KCSAN's words: `write (marked)`, `assert no writes`, `read`, ...
    pub kind: String,
    pub address: u64,
    pub size: u32,
    /// `task 57` or `interrupt`.
    pub by: String,
    pub cpu: u32,
    /// The driver context whose entry function is in the stack, if any.
    pub context: Option<String>,
    pub frames: Vec<String>,
}

/// One `BUG: KCSAN: ...` report.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct Report {
    /// `assert: race` or `data-race`.
    pub bug: String,
    /// What follows `in`: the two functions (or one).
    pub functions: String,
    /// The driver field at the accessed address, when the module named it.
    pub field: Option<String>,
    /// This CPU's access first, then the other's (none for a race at unknown origin).
    pub accesses: Vec<Access>,
    pub unknown_origin: bool,
    /// `0x00000003 -> 0x00000002`, when KCSAN saw the value change.
    pub value_changed: Option<String>,
}

impl Report {
    /// Whether the report is about the driver: a field it named, or a frame of the module.
    pub fn in_driver(&self) -> bool {
        self.field.is_some() || self.accesses.iter().any(|a| a.frames.iter().any(|f| f.ends_with("[bes2600]")))
    }

    /// One line: the field, and each access with its context.
    pub fn summary(&self) -> String {
        let field = self.field.as_deref().unwrap_or("an unnamed address");
        let accesses: Vec<String> = self
            .accesses
            .iter()
            .map(|a| format!("{} from {}", a.kind, a.context.as_deref().unwrap_or(&a.by)))
            .collect();
        let origin = if self.unknown_origin { " (the other access at unknown origin)" } else { "" };
        format!("KCSAN {} on {field}: {}{origin}", self.bug, accesses.join(", "))
    }
}

/// Every KCSAN report of `console`, with fields and contexts named.
pub fn parse(console: &str) -> Vec<Report> {
    let mut fields: BTreeMap<u64, String> = BTreeMap::new();
    let mut reports = Vec::new();
    let mut current: Option<Report> = None;
    for line in console.lines() {
        let text = strip_time(line.trim_end_matches('\r'));
        if let Some(rest) = text.strip_prefix("bes2600: kcsan: field ") {
            if let Some((name, at)) = rest.rsplit_once(" at ") {
                if let Some(addr) = hex(at) {
                    fields.insert(addr, name.trim().to_string());
                }
            }
            continue;
        }
        if let Some(rest) = text.strip_prefix("BUG: KCSAN: ") {
            if let Some(r) = current.take() {
                reports.push(r);
            }
            let (bug, functions) = rest.split_once(" in ").unwrap_or((rest, ""));
            current = Some(Report { bug: bug.to_string(), functions: functions.to_string(), ..Report::default() });
            continue;
        }
        let Some(r) = current.as_mut() else { continue };
        if text.starts_with("Reported by Kernel Concurrency Sanitizer") || text.starts_with("=====") {
            reports.push(current.take().expect("checked"));
        } else if let Some(a) = access_header(text) {
            if text.starts_with("race at unknown origin") {
                r.unknown_origin = true;
            }
            r.accesses.push(a);
        } else if let Some(v) = text.strip_prefix("value changed: ") {
            r.value_changed = Some(v.trim().to_string());
        } else if let Some(frame) = text.strip_prefix(' ') {
            if let Some(a) = r.accesses.last_mut() {
                a.frames.push(frame.trim().to_string());
            }
        }
    }
    reports.extend(current);
    for r in &mut reports {
        r.field = r.accesses.iter().find_map(|a| {
            let (&start, name) = fields.range(..=a.address).next_back()?;
            (a.address < start + 4).then(|| name.clone())
        });
        for a in &mut r.accesses {
            a.context = context_of(&a.frames);
        }
    }
    reports
}

/// The outermost driver entry function in a stack (frames innermost first).
fn context_of(frames: &[String]) -> Option<String> {
    frames.iter().rev().filter(|f| f.ends_with("[bes2600]")).find_map(|f| {
        let symbol = f.split('+').next().unwrap_or(f);
        // Rust's v0 mangling keeps the name with its length before it (`9bh_thread`).
        let names = |function: &str| symbol == function || symbol.contains(&format!("{}{function}", function.len()));
        ENTRY_FUNCTIONS.iter().find(|(function, _)| names(function)).map(|(_, ctx)| ctx.to_string())
    })
}

/// `KIND to 0xADDR of N bytes by WHO on cpu N:` (or the unknown-origin form of it).
fn access_header(text: &str) -> Option<Access> {
    let text = text.strip_prefix("race at unknown origin, with ").unwrap_or(text);
    let body = text.strip_suffix(':')?;
    let (kind, rest) = body.split_once(" to 0x")?;
    let (addr, rest) = rest.split_once(" of ")?;
    let (size, rest) = rest.split_once(" bytes by ")?;
    let (by, cpu) = rest.rsplit_once(" on cpu ")?;
    Some(Access {
        kind: kind.to_string(),
        address: u64::from_str_radix(addr, 16).ok()?,
        size: size.parse().ok()?,
        by: by.to_string(),
        cpu: cpu.parse().ok()?,
        context: None,
        frames: Vec::new(),
    })
}

fn hex(text: &str) -> Option<u64> {
    u64::from_str_radix(text.trim().trim_start_matches("0x"), 16).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The shape `kernel/kcsan/report.c` prints, with Rust v0 symbols as kallsyms keeps them.
    const CONSOLE: &str = "[    2.100] bes2600: kcsan: field Bes2600.hw_bufs_used at 0xffff888002a1c010\r
[    2.100] bes2600: kcsan: field Bes2600.wsm_rx_seq at 0xffff888002a1c020\r
[    3.000] ==================================================================\r
[    3.000] BUG: KCSAN: assert: race in _RNvXs_NtCs1_7bes26004kmodNtB4_5KPlatNtNtB6_8platform6Memory11plain_store+0x5a/0x1a0 [bes2600] / _RNvXs_NtCs1_7bes26004kmodNtB4_5KPlatNtNtB6_8platform6Memory11plain_store+0x9e/0x1a0 [bes2600]\r
[    3.000] \r
[    3.000] write (marked) to 0xffff888002a1c010 of 4 bytes by task 41 on cpu 1:\r
[    3.000]  _RNvXs_NtCs1_7bes26004kmodNtB4_5KPlatNtNtB6_8platform6Memory11plain_store+0x9e/0x1a0 [bes2600]\r
[    3.000]  _RNvMs_NtCs1_7bes26002bhINtB4_7Bes2600pE2bh+0x211/0x900 [bes2600]\r
[    3.000]  _RNvNtCs1_7bes26004kmod9bh_thread+0x30/0x80 [bes2600]\r
[    3.000]  kthread+0x1a1/0x1c0\r
[    3.000] \r
[    3.000] assert no writes to 0xffff888002a1c010 of 4 bytes by task 39 on cpu 0:\r
[    3.000]  _RNvXs_NtCs1_7bes26004kmodNtB4_5KPlatNtNtB6_8platform6Memory11plain_store+0x5a/0x1a0 [bes2600]\r
[    3.000]  _RNvNtCs1_7bes26004kmod15sdio_rx_work_fn+0x44/0x90 [bes2600]\r
[    3.000]  process_one_work+0x2e1/0x500\r
[    3.000]  worker_thread+0x31a/0x4a0\r
[    3.000] \r
[    3.000] value changed: 0x00000003 -> 0x00000002\r
[    3.000] \r
[    3.000] Reported by Kernel Concurrency Sanitizer on:\r
[    3.000] CPU: 0 UID: 0 PID: 39 Comm: kworker/0:1H Not tainted 7.2.13 #1\r
[    3.000] ==================================================================\r
[    4.000] BUG: KCSAN: data-race in tick_sched_do_timer / tick_nohz_idle_stop_tick\r
[    4.000] \r
[    4.000] write to 0xffffffff82a0c8d8 of 4 bytes by interrupt on cpu 1:\r
[    4.000]  tick_sched_do_timer+0x2c/0x110\r
[    4.000] \r
[    4.000] race at unknown origin, with read to 0xffffffff82a0c8d8 of 4 bytes by task 0 on cpu 0:\r
[    4.000]  tick_nohz_idle_stop_tick+0x1b/0x2c0\r
";

    #[test]
    fn a_report_on_a_driver_field_names_the_field_and_both_contexts() {
        let reports = parse(CONSOLE);
        assert_eq!(reports.len(), 2);
        let r = &reports[0];
        assert_eq!(r.bug, "assert: race");
        assert_eq!(r.field.as_deref(), Some("Bes2600.hw_bufs_used"));
        assert!(r.in_driver());
        let ctx: Vec<_> = r.accesses.iter().map(|a| a.context.as_deref()).collect();
        assert_eq!(ctx, [Some("bh"), Some("rx_work")]);
        assert_eq!((r.accesses[0].kind.as_str(), r.accesses[0].cpu, r.accesses[0].size), ("write (marked)", 1, 4));
        assert_eq!(r.accesses[1].by, "task 39");
        assert_eq!(r.value_changed.as_deref(), Some("0x00000003 -> 0x00000002"));
        assert_eq!(
            r.summary(),
            "KCSAN assert: race on Bes2600.hw_bufs_used: write (marked) from bh, assert no writes from rx_work"
        );
    }

    #[test]
    fn a_race_of_the_kernel_itself_is_read_but_not_the_drivers() {
        let r = &parse(CONSOLE)[1];
        assert_eq!(r.bug, "data-race");
        assert!(r.unknown_origin);
        assert_eq!(r.field, None);
        assert!(!r.in_driver());
        assert_eq!(r.accesses[0].context, None);
        assert_eq!(r.accesses[1].by, "task 0");
    }

    #[test]
    fn an_address_inside_a_named_word_maps_and_one_past_it_does_not() {
        let console = "bes2600: kcsan: field F at 0x1000\nBUG: KCSAN: data-race in a / b\n\nread to 0x1002 of 2 bytes by task 1 on cpu 0:\n\nwrite to 0x1004 of 4 bytes by task 2 on cpu 1:\n";
        let r = &parse(console)[0];
        assert_eq!(r.field.as_deref(), Some("F"));
        let console = console.replace("0x1002", "0x1004");
        assert_eq!(parse(&console)[0].field, None);
    }

    #[test]
    fn a_kernel_function_named_like_an_entry_is_not_a_driver_context() {
        let frames = vec!["irq_thread+0x10/0x20".to_string(), "kthread+0x1/0x2".to_string()];
        assert_eq!(context_of(&frames), None);
        let frames = vec!["_RNvNtCs1_7bes26004kmod13flush_context+0x1/0x2 [bes2600]".to_string()];
        assert_eq!(context_of(&frames).as_deref(), Some("flush"));
    }
}
