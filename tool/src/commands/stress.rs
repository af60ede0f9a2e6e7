//! `bench stress`: runs the seed's Phase 7 stress ramp on a variant in the deterministic
//! simulator and prints the figures per stage in the seed's units.

use crate::error::{BenchError, Kind, Result};
use crate::sim;
use crate::sim::ramp::{self, DEFAULT_RAMP};
use crate::ui::Ui;
use crate::workspace::variant;
use clap::Args;
use serde_json::Value;
use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};

#[derive(Args, Debug)]
#[command(after_help = "Exit status: 0 clean, 1 a WARN, TX wedge, dead link or BUG was recorded (usable as a \
bisect oracle), 2 bad input, 3 the simulator could not be built or run.

A swarm (--seeds A..B) runs every seed from A to B, in parallel on all cores (--jobs), and reports
the failure probability with a 95% Wilson interval, the first failing seed and the command that
replays it; its summary is the same whatever the number of jobs.

Examples:
  bench stress --variant c --seed 1             Patch C: the hw_bufs_used underflow
  bench stress --variant c-v2 --seeds 1..100 --ramp 4:5m   a swarm: how often does it fail?
  bench stress --variant c-v2 --ramp 4:5m       the fix, one 5-minute stage at 4 MB/s
  bench stress --variant b --reps 3 --json      the seed's N=3 ramp, for scripts")]
pub struct StressArgs {
    /// Variant to run (a file variants/NAME.toml): baseline, b, c, c-prep, c-v2.
    #[arg(long)]
    pub variant: String,
    /// Stages as RATE:DURATION, rate in MB/s (10^6 B/s offered over the air), duration
    /// with s, m or h.
    #[arg(long, default_value = DEFAULT_RAMP)]
    pub ramp: String,
    /// Repeat the whole ramp N times in one run (the seed's N=3).
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u32).range(1..=100))]
    pub reps: u32,
    /// Seed of the simulation; the same seed gives the same report, byte for byte.
    #[arg(long, default_value_t = 1, conflicts_with = "seeds")]
    pub seed: u64,
    /// A swarm: every seed from A to B (inclusive), e.g. 1..100.
    #[arg(long, value_name = "A..B", value_parser = parse_seeds)]
    pub seeds: Option<(u64, u64)>,
    /// Simulations at once in a swarm (default: the number of CPUs).
    #[arg(long, value_parser = clap::value_parser!(u32).range(1..=256), requires = "seeds")]
    pub jobs: Option<u32>,
    /// Faults to switch on (comma-separated), each within what the driver must survive:
    /// slow-air (the firmware holds the air 5-40 ms on 2% of frames: confirms bunch, input
    /// buffers run out, TX throttles and restarts).
    #[arg(long, value_delimiter = ',', value_parser = ["slow-air"])]
    pub faults: Vec<String>,
    /// Print the report as JSON on stdout.
    #[arg(long)]
    pub json: bool,
    #[command(flatten)]
    pub ws: crate::workspace::WorkspaceArg,
}

pub fn run(args: &StressArgs, ui: &Ui) -> Result<()> {
    let stages = ramp::parse(&args.ramp)?;
    let root = args.ws.root()?;
    let variants = variant::Variants::load(&root)?;
    let variant = variants.get(&args.variant)?;

    let spinner = ui.spinner(format!("building the simulator for variant {}", variant.name));
    let exe = sim::build::build(&root, variant);
    spinner.finish_and_clear();
    let exe = exe?;

    if let Some(range) = args.seeds {
        return swarm(args, ui, &exe, &stages, &variant.name, range);
    }
    let faults = &args.faults;
    let total_s: u64 = stages.iter().map(|s| s.duration_s).sum::<u64>() * args.reps as u64;
    let bar = ui.bar(total_s, format!("stress {} seed {}", variant.name, args.seed));
    let mut report = simulate(&exe, &variant.name, args.seed, &stages, args.reps, faults, Some(&bar))?;
    bar.finish_and_clear();
    if let Value::Object(map) = &mut report {
        map.insert("variant".into(), Value::String(variant.name.clone()));
        map.insert("ramp".into(), Value::String(args.ramp.clone()));
        map.insert("reps".into(), Value::from(args.reps));
    }
    let clean = report["clean"].as_bool().unwrap_or(false);
    // Kept for `bench pr` (the last run per variant).
    let stress_dir = crate::workspace::ledger::state_dir(&root).join("stress");
    if std::fs::create_dir_all(&stress_dir).is_ok() {
        let _ = crate::fsutil::write_synced(
            &stress_dir.join(format!("{}.json", variant.name)),
            serde_json::to_string_pretty(&report).expect("a Value serialises").as_bytes(),
            false,
        );
    }
    if args.json {
        ui.out(serde_json::to_string_pretty(&report).expect("a Value serialises"));
    } else {
        render(ui, &report, args);
    }
    if clean {
        Ok(())
    } else {
        Err(BenchError::new(
            Kind::Failed,
            format!("variant `{}` failed the stress ramp (seed {})", variant.name, args.seed),
        )
        .hint(format!("replay with: {}", replay_command(args, &variant.name, args.seed))))
    }
}

/// The command that runs one seed of this stress again, faults included.
fn replay_command(args: &StressArgs, variant: &str, seed: u64) -> String {
    let faults = if args.faults.is_empty() { String::new() } else { format!(" --faults {}", args.faults.join(",")) };
    format!("bench stress --variant {variant} --seed {seed} --ramp {} --reps {}{faults}", args.ramp, args.reps)
}

/// `A..B`: seeds A to B inclusive.
fn parse_seeds(text: &str) -> std::result::Result<(u64, u64), String> {
    let (a, b) = text.split_once("..").ok_or_else(|| format!("`{text}` is not A..B (e.g. 1..100)"))?;
    let b = b.trim_start_matches('=');
    let a: u64 = a.trim().parse().map_err(|_| format!("`{a}` is not a whole number (seeds are A..B, e.g. 1..100)"))?;
    let b: u64 = b.trim().parse().map_err(|_| format!("`{b}` is not a whole number (seeds are A..B, e.g. 1..100)"))?;
    if b < a {
        return Err(format!("`{text}`: the last seed is below the first"));
    }
    if b - a >= 10_000 {
        return Err(format!("`{text}`: at most 10000 seeds in one swarm"));
    }
    Ok((a, b))
}

/// Runs the simulator once; `bar` follows its progress.
fn simulate(
    exe: &std::path::Path,
    variant: &str,
    seed: u64,
    stages: &[ramp::Stage],
    reps: u32,
    faults: &[String],
    bar: Option<&indicatif::ProgressBar>,
) -> Result<Value> {
    let mut cmd = Command::new(exe);
    cmd.arg("--seed").arg(seed.to_string()).arg("--progress");
    for f in faults {
        cmd.arg("--fault").arg(f);
    }
    for _ in 0..reps {
        for s in stages {
            cmd.arg("--stage").arg(format!("{}:{}", s.offered_mb_per_s, s.duration_s));
        }
    }
    let mut child = cmd
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| BenchError::env(format!("cannot start {}", exe.display())).cause(e.to_string()))?;
    let mut sim_stderr = String::new();
    if let Some(err) = child.stderr.take() {
        for line in BufReader::new(err).lines().map_while(std::result::Result::ok) {
            match line.strip_prefix("progress ").and_then(|r| r.split_once(' ')) {
                Some((done_ms, _)) => {
                    if let Some(bar) = bar {
                        bar.set_position(done_ms.parse::<u64>().unwrap_or(0).saturating_sub(1000) / 1000)
                    }
                }
                None => {
                    sim_stderr.push_str(&line);
                    sim_stderr.push('\n');
                }
            }
        }
    }
    let output =
        child.wait_with_output().map_err(|e| BenchError::env("the simulator did not finish").cause(e.to_string()))?;
    let code = output.status.code();
    if !matches!(code, Some(0) | Some(1)) {
        return Err(BenchError::env(format!("the simulator for `{variant}` failed (status {code:?}, seed {seed})"))
            .cause(sim_stderr.trim().to_string()));
    }
    serde_json::from_slice(&output.stdout)
        .map_err(|e| BenchError::env("the simulator's report is not JSON").cause(e.to_string()))
}

/// The 95% Wilson score interval of `k` failures in `n` runs, as fractions.
pub fn wilson(k: u64, n: u64) -> (f64, f64) {
    if n == 0 {
        return (0.0, 1.0);
    }
    let (k, n, z) = (k as f64, n as f64, 1.96f64);
    let p = k / n;
    let den = 1.0 + z * z / n;
    let center = (p + z * z / (2.0 * n)) / den;
    let half = z * (p * (1.0 - p) / n + z * z / (4.0 * n * n)).sqrt() / den;
    ((center - half).max(0.0), (center + half).min(1.0))
}

fn swarm(
    args: &StressArgs,
    ui: &Ui,
    exe: &std::path::Path,
    stages: &[ramp::Stage],
    variant: &str,
    (first, last): (u64, u64),
) -> Result<()> {
    let seeds: Vec<u64> = (first..=last).collect();
    let jobs = args
        .jobs
        .map(|j| j as usize)
        .unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get()))
        .min(seeds.len());
    let bar = ui.bar(seeds.len() as u64, format!("swarm {variant} seeds {first}..{last} ({jobs} at once)"));
    let next = std::sync::atomic::AtomicUsize::new(0);
    let results: std::sync::Mutex<Vec<(u64, Result<Value>)>> = std::sync::Mutex::new(Vec::new());
    std::thread::scope(|s| {
        for _ in 0..jobs {
            s.spawn(|| loop {
                let i = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                let Some(&seed) = seeds.get(i) else { break };
                let r = simulate(exe, variant, seed, stages, args.reps, &args.faults, None);
                results.lock().expect("no worker panics holding it").push((seed, r));
                bar.inc(1);
            });
        }
    });
    bar.finish_and_clear();
    let mut results = results.into_inner().expect("workers joined");
    // The summary does not depend on the order the workers finished in.
    results.sort_by_key(|r| r.0);
    let mut runs = Vec::new();
    for (seed, r) in results {
        runs.push((seed, r?));
    }
    let failed: Vec<&(u64, Value)> = runs.iter().filter(|(_, r)| r["clean"].as_bool() != Some(true)).collect();
    let n = runs.len() as u64;
    let k = failed.len() as u64;
    let (lo, hi) = wilson(k, n);
    let first_failure = |r: &Value| -> String {
        r["failures"]
            .as_array()
            .and_then(|a| a.first())
            .map(|x| format!("{}: {}", x["kind"].as_str().unwrap_or(""), x["detail"].as_str().unwrap_or("")))
            .or_else(|| {
                r["warns"].as_array().and_then(|a| a.first()).map(|w| w["message"].as_str().unwrap_or("").to_string())
            })
            .unwrap_or_default()
    };
    let replay = |seed: u64| replay_command(args, variant, seed);
    let mut kinds: std::collections::BTreeMap<String, u64> = std::collections::BTreeMap::new();
    for (_, r) in &failed {
        for x in r["failures"].as_array().into_iter().flatten() {
            *kinds.entry(x["kind"].as_str().unwrap_or("").to_string()).or_default() += 1;
        }
        if r["failures"].as_array().is_none_or(|a| a.is_empty()) {
            *kinds.entry("warn".into()).or_default() += 1;
        }
    }
    if args.json {
        let j = serde_json::json!({
            "variant": variant,
            "ramp": args.ramp,
            "reps": args.reps,
            "faults": args.faults,
            "seeds": [first, last],
            "runs": n,
            "failed": k,
            "failure_probability": k as f64 / n as f64,
            "ci95": [lo, hi],
            "failure_kinds": kinds,
            "first_failing_seed": failed.first().map(|f| f.0),
            "replay": failed.first().map(|f| replay(f.0)),
            "per_seed": runs.iter().map(|(seed, r)| serde_json::json!({
                "seed": seed, "clean": r["clean"], "first_failure": first_failure(r),
                "contract_violations": r["contract_violations"],
            })).collect::<Vec<_>>(),
        });
        ui.out(serde_json::to_string_pretty(&j).expect("serialises"));
    } else {
        ui.out(format!(
            "swarm variant {variant}  seeds {first}..{last}  ramp {} x{}{}",
            args.ramp,
            args.reps,
            if args.faults.is_empty() { String::new() } else { format!("  faults {}", args.faults.join(",")) }
        ));
        ui.out(format!(
            "  failed {k} of {n} seeds: failure probability {:.1}% (95% Wilson interval {:.1}%-{:.1}%)",
            100.0 * k as f64 / n as f64,
            100.0 * lo,
            100.0 * hi
        ));
        if !kinds.is_empty() {
            ui.out(format!(
                "  failure kinds: {}",
                kinds.iter().map(|(k, v)| format!("{k} {v}")).collect::<Vec<_>>().join(", ")
            ));
        }
        if let Some((seed, r)) = failed.first() {
            ui.out(format!("  first failing seed {seed}: {}", first_failure(r)));
            ui.out(format!("  replay: {}", replay(*seed)));
        }
    }
    if k == 0 {
        Ok(())
    } else {
        Err(BenchError::new(Kind::Failed, format!("variant `{variant}` failed on {k} of {n} seeds")))
    }
}

fn f(v: &Value, key: &str) -> f64 {
    v[key].as_f64().unwrap_or(f64::NAN)
}

fn u(v: &Value, key: &str) -> u64 {
    v[key].as_u64().unwrap_or(0)
}

fn render(ui: &Ui, r: &Value, args: &StressArgs) {
    let features: Vec<&str> =
        r["features"].as_array().map(|a| a.iter().filter_map(|x| x.as_str()).collect()).unwrap_or_default();
    ui.out(format!(
        "variant {}  features [{}]  seed {}  ramp {} x{}{}",
        args.variant,
        features.join(", "),
        args.seed,
        args.ramp,
        args.reps,
        if args.faults.is_empty() { String::new() } else { format!("  faults {}", args.faults.join(",")) }
    ));
    ui.out("units: offered MB/s = 10^6 B/s over the air; observed MiB/s = 2^20 B/s delivered to the stack");
    ui.out(format!(
        "{:>5} {:>7} {:>6} {:>10} {:>8} {:>9} {:>9} {:>9} {:>8} {:>10} {:>10} {:>8} {:>6} {:>5}",
        "stage",
        "offered",
        "secs",
        "rx_pkts",
        "rx_MB",
        "obs_MiB/s",
        "rxwork/s",
        "per1000",
        "txwork/s",
        "rxq_lock/s",
        "rxq/pkt",
        "wake/bat",
        "bh_cpu",
        "warns"
    ));
    for s in r["stages"].as_array().into_iter().flatten() {
        let secs = s["cut_short_at_s"].as_f64().unwrap_or(f(s, "duration_s"));
        ui.out(format!(
            "{:>5} {:>7.1} {:>6.0} {:>10} {:>8.1} {:>9.3} {:>9.1} {:>9.1} {:>8.1} {:>10.1} {:>10.3} {:>8.3} {:>5.1}% {:>5}",
            u(s, "stage"),
            f(s, "offered_mb_per_s"),
            secs,
            u(s, "rx_packets"),
            f(s, "rx_mb"),
            f(s, "observed_mib_per_s"),
            f(s, "rx_work_per_s"),
            f(s, "rx_work_per_1000_rx_packets"),
            f(s, "tx_work_per_s"),
            f(s, "rx_queue_lock_per_s"),
            f(s, "rx_queue_lock_per_rx_packet"),
            f(s, "bh_rx_wakeups_per_rx_batch"),
            f(&s["cpu_pct_of_one_cpu"], "bh"),
            u(s, "warns"),
        ));
    }
    let warn_count = u(r, "warn_count");
    if warn_count > 0 {
        ui.out(format!("WARNs: {warn_count} (first {} shown)", r["warns"].as_array().map_or(0, |a| a.len().min(3))));
        for w in r["warns"].as_array().into_iter().flatten().take(3) {
            let path: Vec<&str> = w["call_path"].as_array().into_iter().flatten().filter_map(|x| x.as_str()).collect();
            ui.out(format!(
                "  [{:>10.6}] {} (context {})\n               call path: {}",
                f(w, "time_s"),
                w["message"].as_str().unwrap_or(""),
                w["context"].as_str().unwrap_or(""),
                path.join(" -> ")
            ));
        }
    }
    for x in r["failures"].as_array().into_iter().flatten() {
        ui.out(format!(
            "FAILURE [{:>10.3}] {}: {}",
            f(x, "time_s"),
            x["kind"].as_str().unwrap_or(""),
            x["detail"].as_str().unwrap_or("")
        ));
    }
    if let Some(cov) = r["coverage"].as_object() {
        let ran: Vec<String> =
            cov.iter().filter(|(_, v)| v.as_u64() > Some(0)).map(|(k, v)| format!("{k} {v}")).collect();
        let never: Vec<&str> = cov.iter().filter(|(_, v)| v.as_u64() == Some(0)).map(|(k, _)| k.as_str()).collect();
        ui.out(format!("coverage: {}", if ran.is_empty() { "(none)".into() } else { ran.join(", ") }));
        if !never.is_empty() {
            ui.out(format!("never reached: {}", never.join(", ")));
        }
    }
    ui.out(format!(
        "verdict: {} ({} virtual s simulated)",
        if r["clean"].as_bool() == Some(true) { "clean" } else { "FAILED" },
        f(r, "virtual_s")
    ));
}
