//! Runs the simulator for the features this binary was built with and prints the report
//! as JSON. `bench stress` builds one of these per variant and drives it; it is not meant
//! to be called by hand, but can be:
//!
//! `bes2600-sim --seed 1 --stage 4:300 [--stage MB_PER_S:SECONDS ...] [--fault NAME ...] [--progress]`
//! `bes2600-sim --seed 1 --probe NAME`: an error path's probe (its own short stage).
//!
//! Exit status: 0 clean, 1 a WARN, wedge, dead link or BUG was recorded, 2 usage error.

use bes2600::chip::FW_FAILURES;
use bes2600::sim::{run, Config, CostModel, Stage};
use std::io::Write;
use std::process::ExitCode;

const PROGRESS_EVERY_NS: u64 = 10_000_000_000;

fn usage(msg: &str) -> ExitCode {
    eprintln!("bes2600-sim: {msg}");
    eprintln!("usage: bes2600-sim --seed N --stage MB_PER_S:SECONDS [--stage ...] [--progress]");
    ExitCode::from(2)
}

fn main() -> ExitCode {
    let mut args = std::env::args().skip(1);
    let mut seed = None;
    let mut stages = Vec::new();
    let mut progress = false;
    let mut cost = CostModel::default();
    let mut probe = None;
    while let Some(a) = args.next() {
        match a.as_str() {
            "--seed" => match args.next().and_then(|s| s.parse::<u64>().ok()) {
                Some(s) => seed = Some(s),
                None => return usage("--seed takes an unsigned integer"),
            },
            "--stage" => {
                let Some(spec) = args.next() else { return usage("--stage takes MB_PER_S:SECONDS") };
                let parsed = spec.split_once(':').and_then(|(r, d)| Some((r.parse::<f64>().ok()?, millis(d)?)));
                match parsed {
                    Some((rate, ms)) if rate > 0.0 && rate.is_finite() && ms > 0 => {
                        stages.push(Stage { offered_mb_per_s: rate, duration_ms: ms })
                    }
                    _ => {
                        return usage(&format!(
                            "bad --stage {spec:?}: want a positive rate and seconds (at most 3 decimals)"
                        ))
                    }
                }
            }
            "--progress" => progress = true,
            "--probe" => {
                let Some(name) = args.next() else { return usage("--probe takes a firmware failure's name") };
                match FW_FAILURES.iter().find(|f| f.1 == name) {
                    Some(f) => probe = Some(f.0),
                    None => {
                        let names: Vec<&str> = FW_FAILURES.iter().map(|f| f.1).collect();
                        return usage(&format!("unknown --probe {name:?}: one of {}", names.join(", ")));
                    }
                }
            }
            "--fault" => {
                let Some(name) = args.next() else { return usage("--fault takes a fault's name") };
                if let Err(e) = cost.enable_fault(&name) {
                    return usage(&e);
                }
            }
            other => return usage(&format!("unknown argument {other:?}")),
        }
    }
    let Some(seed) = seed else { return usage("--seed is required") };
    if let Some(f) = probe {
        if !stages.is_empty() {
            return usage("--probe runs its own stage: give no --stage with it");
        }
        stages = bes2600::sim::probe_stages(f);
    }
    if stages.is_empty() {
        stages = bes2600::sim::default_ramp();
    }
    let config = Config { seed, stages, cost, probe };
    // Every 10 virtual seconds: a line per second was a write here and a read in `bench`
    // for each, about 5% of a swarm's time in system calls.
    let mut printed_ns = 0;
    let report = run(&config, |done, total| {
        if progress && (done >= printed_ns + PROGRESS_EVERY_NS || done >= total) {
            printed_ns = done;
            eprintln!("progress {} {}", done / 1_000_000, total / 1_000_000);
        }
    });
    let mut out = std::io::stdout().lock();
    let _ = out.write_all(report.to_json().as_bytes());
    if report.clean() {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    }
}

/// Seconds with at most three decimals ("404.8") as milliseconds, exactly.
fn millis(text: &str) -> Option<u64> {
    let (whole, frac) = text.split_once('.').unwrap_or((text, ""));
    if whole.is_empty() || frac.len() > 3 || !whole.bytes().chain(frac.bytes()).all(|b| b.is_ascii_digit()) {
        return None;
    }
    let frac_ms: u64 = format!("{frac:0<3}").parse().ok()?;
    whole.parse::<u64>().ok()?.checked_mul(1000)?.checked_add(frac_ms)
}
