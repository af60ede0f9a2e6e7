//! What a lab boot's console says, typed: the init script's `bench-lab:` lines, the
//! module's WARNs, contract reports and its `bes2600: result ...` and `bes2600: verdict`
//! lines (written by `driver/src/kmod.rs`), and a panic; then the judgement of a run.

use serde::Serialize;
use std::collections::BTreeSet;

/// The module's own verdict line.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Verdict {
    Clean,
    Failed,
}

/// The counters of the module's `bes2600: result` line.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct ModuleResult {
    pub rx_packets: u64,
    pub rx_bytes: u64,
    pub warns: u64,
    pub underflows: u64,
    /// The last value of the counter (negative after an underflow).
    pub hw_bufs_used: i64,
    pub stalls: u64,
    pub pending_count_errors: u64,
    pub link_breaks: u64,
    pub contract_violations: u64,
    /// Every counter of the line by name, the ones above included.
    pub all: std::collections::BTreeMap<String, i64>,
}

impl ModuleResult {
    /// Reads `k=v k=v ...`; the error names the first token that is not `name=integer`, or
    /// a counter the module always writes and this line lacks.
    pub fn parse(text: &str) -> Result<ModuleResult, String> {
        let mut r = ModuleResult::default();
        for kv in text.split_whitespace() {
            let (k, v) = kv.split_once('=').ok_or_else(|| format!("`{kv}` is not NAME=VALUE"))?;
            let n: i64 = v.parse().map_err(|_| format!("`{kv}`: the value is not an integer"))?;
            r.all.insert(k.to_string(), n);
        }
        let count = |k: &str| -> Result<u64, String> {
            let n = *r.all.get(k).ok_or_else(|| format!("no `{k}=` counter"))?;
            u64::try_from(n).map_err(|_| format!("`{k}={n}`: a count cannot be negative"))
        };
        r.rx_packets = count("rx_packets")?;
        r.rx_bytes = count("rx_bytes")?;
        r.warns = count("warns")?;
        r.underflows = count("underflows")?;
        r.stalls = count("stalls")?;
        r.pending_count_errors = count("pending_count_errors")?;
        r.link_breaks = count("link_breaks")?;
        r.contract_violations = count("contract_violations")?;
        r.hw_bufs_used = *r.all.get("hw_bufs_used").ok_or("no `hw_bufs_used=` counter")?;
        Ok(r)
    }
}

/// What a stress boot showed.
#[derive(Clone, Debug, Default, Serialize)]
pub struct RunOutcome {
    pub cpus: u32,
    pub insmod_rc: Option<i32>,
    pub srcversion: Option<String>,
    pub tampered_refused: Option<bool>,
    pub warnings: Vec<String>,
    pub result: Option<ModuleResult>,
    /// Why the result line could not be read, when it could not.
    pub result_error: Option<String>,
    pub verdict: Option<Verdict>,
    pub panic: bool,
    /// KCSAN's reports (a kernel of the lab's KCSAN flavour), the kernel's own included.
    pub kcsan: Vec<super::kcsan::Report>,
    /// KCSAN's own counters at the end of the run (`/sys/kernel/debug/kcsan`):
    /// `setup_watchpoints`, `data_races`, `assert_failures`, ...
    pub kcsan_counters: std::collections::BTreeMap<String, i64>,
}

/// The lines the module and the kernel print when something went wrong.
const WARNING_PREFIXES: [&str; 8] = [
    "WARNING: ",
    "bes2600: wsm_release_tx_buffer: ",
    "bes2600: contract: ",
    "bes2600: tx pending count error",
    "bes2600: link break",
    "bes2600: wsm_cmd_send: ",
    "bes2600: wsm_flush_tx: ",
    "bes2600: missed interrupt?",
];

/// The line without printk's `[    1.234] ` time.
pub(super) fn strip_time(line: &str) -> &str {
    match line.find("] ") {
        Some(i) if line.starts_with('[') => &line[i + 2..],
        _ => line,
    }
}

pub fn parse_console(console: &str) -> RunOutcome {
    let mut o = RunOutcome { kcsan: super::kcsan::parse(console), ..RunOutcome::default() };
    for line in console.lines() {
        let text = strip_time(line.trim_end_matches('\r'));
        if let Some(rest) = text.strip_prefix("bench-lab: booted ") {
            o.cpus = rest.rsplit(' ').next().and_then(|n| n.parse().ok()).unwrap_or(0);
        } else if let Some(rc) = text.strip_prefix("bench-lab: insmod rc=") {
            o.insmod_rc = rc.trim().parse().ok();
        } else if let Some(s) = text.strip_prefix("bench-lab: srcversion ") {
            o.srcversion = Some(s.trim().to_string());
        } else if let Some(kv) = text.strip_prefix("bench-lab: kcsan ") {
            if let Some((k, v)) = kv.split_once('=') {
                if let Ok(n) = v.trim().parse() {
                    o.kcsan_counters.insert(k.to_string(), n);
                }
            }
        } else if text == "bench-lab: tampered refused" {
            o.tampered_refused = Some(true);
        } else if text == "bench-lab: tampered loaded" {
            o.tampered_refused = Some(false);
        } else if WARNING_PREFIXES.iter().any(|p| text.starts_with(p)) {
            o.warnings.push(text.to_string());
        } else if text.starts_with("Kernel panic") {
            o.panic = true;
        } else if let Some(rest) = text.strip_prefix("bes2600: result ") {
            match ModuleResult::parse(rest) {
                Ok(r) => o.result = Some(r),
                Err(why) => o.result_error = Some(format!("result line `{}`: {why}", rest.trim())),
            }
        } else if let Some(v) = text.strip_prefix("bes2600: verdict ") {
            o.verdict = match v.trim() {
                "clean" => Some(Verdict::Clean),
                "failed" => Some(Verdict::Failed),
                other => {
                    o.result_error = Some(format!("verdict line: `{other}` is neither clean nor failed"));
                    None
                }
            };
        }
    }
    o
}

/// A field a run found broken, by the module's contract check or by KCSAN, with the
/// contexts involved, and whether the static audit names it too.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct FieldFinding {
    pub field: String,
    /// Every context seen writing it against its contract (sorted, distinct).
    pub contexts: Vec<String>,
    /// `contract check`, `KCSAN` or both.
    pub seen_by: Vec<String>,
    /// The package's audit (MANIFEST.json) lists a violation on this field.
    pub audit: bool,
}

/// `bes2600: contract: FIELD: plain store from A to a single-writer field last written by B`.
fn contract_report(line: &str) -> Option<(&str, &str, &str)> {
    let rest = line.strip_prefix("bes2600: contract: ")?;
    let (field, rest) = rest.split_once(": plain store from ")?;
    let (from, rest) = rest.split_once(" to a single-writer field last written by ")?;
    Some((field, from, rest.trim()))
}

/// The fields the run found broken, each checked against the audit's violations (`FIELD
/// rule: message`): a field the lab saw and the audit did not is an audit gap.
pub fn field_findings(o: &RunOutcome, audit_violations: &[String]) -> Vec<FieldFinding> {
    let mut by_field: std::collections::BTreeMap<String, (BTreeSet<String>, BTreeSet<String>)> = Default::default();
    for w in &o.warnings {
        if let Some((field, from, last)) = contract_report(w) {
            let e = by_field.entry(field.to_string()).or_default();
            e.0.extend([from.to_string(), last.to_string()]);
            e.1.insert("contract check".into());
        }
    }
    for r in o.kcsan.iter().filter(|r| r.in_driver()) {
        let Some(field) = &r.field else { continue };
        let e = by_field.entry(field.clone()).or_default();
        e.0.extend(r.accesses.iter().filter_map(|a| a.context.clone()));
        e.1.insert("KCSAN".into());
    }
    by_field
        .into_iter()
        .map(|(field, (contexts, seen_by))| {
            let audit = audit_violations.iter().any(|v| v.split_whitespace().next() == Some(field.as_str()));
            FieldFinding {
                field,
                contexts: contexts.into_iter().collect(),
                seen_by: seen_by.into_iter().collect(),
                audit,
            }
        })
        .collect()
}

/// A lab run's outcome, as its exit code says it: 0, 1, 125.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Outcome {
    Clean,
    Failed,
    CouldNotTest,
}

/// Judges a boot: the problems found (each one line) and the outcome. `loaded_expected` is
/// the srcversion the module must have; `cpus` the CPUs the VM was given, which the
/// console must show up (fewer: the run did not test what it was asked to, exit 125);
/// `tamper` whether a tampered copy was offered.
pub fn judge(
    o: &RunOutcome,
    loaded_expected: &str,
    cpus: u32,
    tamper: bool,
    timed_out: bool,
) -> (Outcome, Vec<String>) {
    if o.cpus != 0 && o.cpus != cpus {
        let why = format!("the VM brought up {} CPU(s), not the {cpus} it was given", o.cpus);
        return (Outcome::CouldNotTest, vec![why]);
    }
    let mut problems = Vec::new();
    if o.srcversion.as_deref() != Some(loaded_expected) {
        problems.push(format!(
            "loaded srcversion {} is not the built module's {loaded_expected}",
            o.srcversion.as_deref().unwrap_or("(none)")
        ));
    }
    if tamper && o.tampered_refused != Some(true) {
        problems.push("the lab kernel did not refuse the module with one byte changed".to_string());
    }
    if o.panic {
        problems.push("kernel panic".into());
    }
    if let Some(rc) = o.insmod_rc.filter(|rc| *rc != 0) {
        problems.push(format!("insmod exited {rc}"));
    }
    if let Some(first) = o.warnings.first() {
        problems.push(format!("{} WARN line(s) in dmesg, first: {first}", o.warnings.len()));
    }
    let driver_races: Vec<&super::kcsan::Report> = o.kcsan.iter().filter(|r| r.in_driver()).collect();
    if let Some(first) = driver_races.first() {
        problems.push(format!("{} KCSAN report(s) on the driver, first: {}", driver_races.len(), first.summary()));
    }
    if o.verdict == Some(Verdict::Failed) && o.warnings.is_empty() {
        problems.push("the module's verdict is failed (see the result counters)".into());
    }
    let unreadable = o.result_error.is_some() && problems.is_empty();
    let outcome = if timed_out || unreadable || o.verdict.is_none() && !o.panic && problems.is_empty() {
        Outcome::CouldNotTest
    } else if problems.is_empty() {
        Outcome::Clean
    } else {
        Outcome::Failed
    };
    if let Some(why) = &o.result_error {
        problems.push(why.clone());
    }
    (outcome, problems)
}

#[cfg(test)]
mod tests {
    use super::*;

    const RESULT: &str = "rx_packets=7137 rx_bytes=10805418 acks_sent=3568 irqs=1 rx_work_runs=2 tx_work_runs=3 \
        warns=3 underflows=1 seq_mismatches=0 release_failed=2 missed_irqs=0 bh_stopped=0 stalls=0 hw_bufs_used=-4 \
        chip_frames_arrived=7200 chip_frames_dropped=63 chip_tx_frames=3570 chip_batches=700 pending_count_errors=0 \
        link_breaks=0 contract_violations=1";

    #[test]
    fn console_of_a_failed_run_is_read_with_its_warn_and_counters() {
        let console = format!(
            "[    0.5] Run /init as init process\r\nbench-lab: booted 7.2.13 cpus 2\n\
            [    1.2] bes2600: wsm_release_tx_buffer: hw_bufs_used underflow (-2)\n\
            [    1.2] WARNING: kmod.rs:316 at 0xffffffffa0002c5b, CPU#0: kworker/0:1H/36\n\
            [   11.0] bes2600: result {RESULT}\n\
            [   11.0] bes2600: verdict failed\nbench-lab: insmod rc=0\nbench-lab: srcversion ABC\nbench-lab: done\n"
        );
        let o = parse_console(&console);
        assert_eq!(o.cpus, 2);
        assert_eq!(o.insmod_rc, Some(0));
        assert_eq!(o.srcversion.as_deref(), Some("ABC"));
        assert_eq!(o.warnings.len(), 2);
        let r = o.result.as_ref().expect("the result line reads");
        assert_eq!((r.rx_packets, r.hw_bufs_used, r.contract_violations), (7137, -4, 1));
        assert_eq!(r.all["chip_frames_dropped"], 63);
        assert_eq!(o.verdict, Some(Verdict::Failed));
        assert!(!o.panic);
        let (outcome, problems) = judge(&o, "ABC", 2, false, false);
        assert_eq!(outcome, Outcome::Failed);
        assert!(problems[0].starts_with("2 WARN line(s)"), "{problems:?}");
    }

    #[test]
    fn a_clean_run_is_clean_and_a_wrong_srcversion_is_a_failure() {
        let o = parse_console(&format!(
            "bes2600: result {}\nbes2600: verdict clean\nbench-lab: insmod rc=0\nbench-lab: srcversion ABC\n",
            RESULT.replace("warns=3", "warns=0")
        ));
        assert_eq!(judge(&o, "ABC", 2, false, false), (Outcome::Clean, vec![]));
        let (outcome, problems) = judge(&o, "DEF", 2, false, false);
        assert_eq!(outcome, Outcome::Failed);
        assert!(problems[0].contains("not the built module's DEF"));
        assert_eq!(judge(&o, "ABC", 2, false, true).0, Outcome::CouldNotTest, "a timed-out boot proves nothing");
        let one_cpu = RunOutcome { cpus: 1, ..o.clone() };
        let (outcome, problems) = judge(&one_cpu, "ABC", 2, false, false);
        assert_eq!(outcome, Outcome::CouldNotTest, "a VM short of CPUs did not test what was asked");
        assert!(problems[0].contains("brought up 1 CPU(s), not the 2"), "{problems:?}");
    }

    #[test]
    fn a_garbled_result_line_is_named_and_cannot_test() {
        for (line, why) in [
            ("rx_packets=x warns=0", "`rx_packets=x`: the value is not an integer"),
            ("rx_packets=1 junk", "`junk` is not NAME=VALUE"),
            ("rx_packets=1", "no `rx_bytes=` counter"),
            (&RESULT.replace("warns=3", "warns=-1") as &str, "`warns=-1`: a count cannot be negative"),
        ] {
            let o = parse_console(&format!(
                "bes2600: result {line}\nbes2600: verdict clean\nbench-lab: insmod rc=0\nbench-lab: srcversion A\n"
            ));
            assert!(o.result.is_none());
            let (outcome, problems) = judge(&o, "A", 2, false, false);
            assert_eq!(outcome, Outcome::CouldNotTest, "{line}");
            assert!(problems.iter().any(|p| p.contains(why)), "{line}: {problems:?}");
        }
        let o = parse_console("bes2600: verdict maybe\n");
        assert!(o.result_error.unwrap().contains("`maybe` is neither clean nor failed"));
    }

    #[test]
    fn a_kcsan_report_on_the_driver_fails_a_clean_verdict_and_the_kernels_own_does_not() {
        let clean = format!(
            "bes2600: result {}\nbes2600: verdict clean\nbench-lab: insmod rc=0\nbench-lab: srcversion ABC\n",
            RESULT.replace("warns=3", "warns=0")
        );
        let kernel_race = "BUG: KCSAN: data-race in a / b\n\nread to 0x10 of 4 bytes by task 1 on cpu 0:\n a+0x1/0x2\n\n\
            write to 0x10 of 4 bytes by interrupt on cpu 1:\n b+0x1/0x2\n\nReported by Kernel Concurrency Sanitizer on:\n";
        let o = parse_console(&format!("{kernel_race}{clean}"));
        assert_eq!(o.kcsan.len(), 1);
        assert_eq!(judge(&o, "ABC", 2, false, false).0, Outcome::Clean, "the kernel's own race is not the driver's");
        let driver_race = "bes2600: kcsan: field Bes2600.hw_bufs_used at 0x20\nBUG: KCSAN: assert: race in x / y\n\n\
            write (marked) to 0x20 of 4 bytes by task 7 on cpu 1:\n _RNvNtCs1_7bes26004kmod9bh_thread+0x1/0x2 [bes2600]\n\n\
            assert no writes to 0x20 of 4 bytes by task 8 on cpu 0:\n _RNvNtCs1_7bes26004kmod15sdio_rx_work_fn+0x1/0x2 [bes2600]\n";
        let o = parse_console(&format!("{driver_race}{clean}"));
        let (outcome, problems) = judge(&o, "ABC", 2, false, false);
        assert_eq!(outcome, Outcome::Failed);
        assert_eq!(
            problems,
            ["1 KCSAN report(s) on the driver, first: KCSAN assert: race on Bes2600.hw_bufs_used: \
              write (marked) from bh, assert no writes from rx_work"]
        );
    }

    #[test]
    fn fields_found_broken_are_checked_against_the_audit() {
        let console = "bes2600: contract: Bes2600.hw_bufs_used: plain store from rx_work to a single-writer field last written by bh\n\
            bes2600: contract: Bes2600.hw_bufs_used: plain store from bh to a single-writer field last written by rx_work\n\
            bes2600: contract: Bes2600.rx_count: plain store from irq to a single-writer field last written by bh\n\
            bes2600: kcsan: field Bes2600.hw_bufs_used at 0x20\nBUG: KCSAN: assert: race in x / y\n\n\
            write (marked) to 0x20 of 4 bytes by task 7 on cpu 1:\n _RNvNtCs1_7bes26004kmod9bh_thread+0x1/0x2 [bes2600]\n";
        let o = parse_console(console);
        let audit = vec!["Bes2600.hw_bufs_used multi-context-write: written from 2 contexts".to_string()];
        let found = field_findings(&o, &audit);
        assert_eq!(found.len(), 2);
        assert_eq!(found[0].field, "Bes2600.hw_bufs_used");
        assert_eq!(found[0].contexts, ["bh", "rx_work"]);
        assert_eq!(found[0].seen_by, ["KCSAN", "contract check"]);
        assert!(found[0].audit);
        assert_eq!((found[1].field.as_str(), found[1].audit), ("Bes2600.rx_count", false), "an audit gap");
        assert_eq!(found[1].contexts, ["bh", "irq"]);
    }

    #[test]
    fn a_refused_tampered_module_and_a_panic_are_seen() {
        let o = parse_console("bench-lab: tampered: insmod: can't insert 'x': Key was rejected by service\nbench-lab: tampered refused\nKernel panic - not syncing: x\n");
        assert_eq!(o.tampered_refused, Some(true));
        assert!(o.panic);
        assert_eq!(o.verdict, None);
        assert_eq!(judge(&o, "A", 2, true, false).0, Outcome::Failed);
    }
}
