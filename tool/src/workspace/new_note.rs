//! New notes: `bench notes new` (a template of its kind that fails validation until it is
//! filled in) and `bench notes baseline --from-stress RUN` (a baseline note written from a
//! recorded simulator run, so a variant's PR has its parent's own baseline).

use crate::error::ResultExt;
use crate::error::{BenchError, Result};
use crate::workspace::notes::KINDS;
use std::path::{Path, PathBuf};

/// Today (UTC) as YYYY-MM-DD.
pub fn today() -> String {
    let secs =
        std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_secs() as i64).unwrap_or(0);
    crate::workspace::git::rfc3339(secs)[..10].to_string()
}

/// A YYYY-MM-DD date, checked.
fn checked_date(date: &str) -> Result<()> {
    let ok = date.len() == 10
        && date.chars().enumerate().all(|(i, c)| if i == 4 || i == 7 { c == '-' } else { c.is_ascii_digit() })
        && (1..=12).contains(&date[5..7].parse::<u32>().unwrap_or(0))
        && (1..=31).contains(&date[8..10].parse::<u32>().unwrap_or(0));
    if ok {
        Ok(())
    } else {
        Err(BenchError::usage(format!("`{date}` is not a date")).hint("YYYY-MM-DD, e.g. 2026-05-07"))
    }
}

fn checked_variant_name(variant: &str) -> Result<()> {
    if variant.is_empty() || !variant.chars().all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_') {
        return Err(BenchError::usage(format!("`{variant}` is not a variant name"))
            .hint("letters, digits, - and _ (the name of its variants/NAME.toml)"));
    }
    Ok(())
}

/// Writes `text` to notes/NAME without overwriting anything.
fn write_new(root: &Path, name: &str, text: &str) -> Result<PathBuf> {
    let path = root.join("notes").join(name);
    if path.exists() {
        return Err(BenchError::usage(format!("{} exists", path.display()))
            .hint("pass --date to start another, or edit that one"));
    }
    std::fs::create_dir_all(root.join("notes")).or_env("cannot create notes/")?;
    let tmp = root.join("notes").join(format!(".{name}.tmp"));
    crate::fsutil::write_synced(&tmp, text.as_bytes(), false)?;
    // hard_link fails when the name was taken meanwhile: never overwrite a note.
    let linked = std::fs::hard_link(&tmp, &path);
    let _ = std::fs::remove_file(&tmp);
    linked.map_err(|e| BenchError::usage(format!("cannot create {}", path.display())).cause(e.to_string()))?;
    Ok(path)
}

/// `bench notes new`: a note of `kind` for `variant` (which may not exist yet) with every
/// value the kind needs left empty, so `bench notes` refuses it until it is filled in.
pub fn from_template(
    root: &Path,
    variant: &str,
    kind: &str,
    title: Option<&str>,
    date: Option<&str>,
) -> Result<PathBuf> {
    checked_variant_name(variant)?;
    if !KINDS.contains(&kind) {
        return Err(BenchError::usage(format!("unknown kind `{kind}`")).hint(format!("one of {}", KINDS.join(", "))));
    }
    let date = date.map(str::to_string).unwrap_or_else(today);
    checked_date(&date)?;
    let title = title.map(str::to_string).unwrap_or_else(|| format!("{variant} {kind}"));
    let extra = match kind {
        "baseline" => "srcversion = \"\"\noffered = { value = 4, unit = \"MB/s\" }\n\n[measurements]\nduration = { value = 0, unit = \"s\" }\nrx_packets = { value = 0, unit = \"packets\" }\nrx_bytes = { value = 0, unit = \"MB\" }\nsdio_rx_work_dispatches = { value = 0, unit = \"dispatches\" }\nsdio_tx_work_dispatches = { value = 0, unit = \"dispatches\" }\n",
        "plan" => "rollback = \"\"\n\n[[predictions]]\nmetric = \"\"\nfrom = \"\"\nto = \"\"\nconfidence = \"medium\"\n\n[[checklist]]\nitem = \"\"\n",
        "verdict" => "verdict = \"\"\nsrcversion = \"\"\nkernel = \"\"\n",
        _ => "",
    };
    let text = format!(
        "+++\ndate = \"{date}\"\nvariants = [\"{variant}\"]\nkind = \"{kind}\"\ntitle = {}\n{extra}+++\n\n",
        toml_string(&title)
    );
    write_new(root, &format!("{date}-{variant}-{kind}.md"), &text)
}

fn toml_string(s: &str) -> String {
    toml::Value::String(s.to_string()).to_string()
}

/// `bench notes baseline --from-stress RUN [--stage N]`: the raw counters of one stage of a
/// recorded one-seed run (default: its last stage) as a baseline note of the run's variant.
pub fn baseline_from_run(root: &Path, run: u64, stage: Option<usize>, date: Option<&str>) -> Result<PathBuf> {
    let r = crate::sim::runs::load(root, run)?;
    let Some(report) = &r.report else {
        return Err(BenchError::usage(format!("stress run #{run} is a {:?} run, not one seed", r.kind).to_lowercase())
            .hint("a baseline note takes the counters of one seed: `bench stress --variant V --seed S --ramp 4:5m`"));
    };
    let stages = report["stages"].as_array().cloned().unwrap_or_default();
    let n = stage.unwrap_or(stages.len());
    let Some(s) = n.checked_sub(1).and_then(|i| stages.get(i)) else {
        return Err(BenchError::usage(format!("stress run #{run} has no stage {n}"))
            .hint(format!("its stages are 1..{}", stages.len())));
    };
    let num = |k: &str| -> Result<f64> {
        s[k].as_f64().ok_or_else(|| {
            BenchError::usage(format!("stress run #{run}, stage {n}: no `{k}`"))
                .hint("the run was recorded by an older simulator; run it again")
        })
    };
    let ran_s = s["cut_short_at_s"].as_f64().map_or_else(|| num("duration_s"), Ok)?;
    if ran_s <= 0.0 {
        return Err(BenchError::usage(format!("stress run #{run}, stage {n} ran for 0 s"))
            .hint("pick a stage that ran (--stage)"));
    }
    let date = date.map(str::to_string).unwrap_or_else(today);
    checked_date(&date)?;
    let offered = num("offered_mb_per_s")?;
    let seed = r.seeds.0;
    let title = format!(
        "{} baseline at {offered} MB/s in the simulator (stress run #{run}, seed {seed}, stage {n})",
        r.variant
    );
    let text = format!(
        "+++\ndate = \"{date}\"\nvariants = [\"{v}\"]\nkind = \"baseline\"\ntitle = {title}\nboard = \"simulator\"\noffered = {{ value = {offered}, unit = \"MB/s\" }}\n\n\
# Raw counters of stage {n} of stress run #{run} (bench notes baseline --from-stress {run}).\n\
[measurements]\n\
duration = {{ value = {ran_s}, unit = \"s\" }}\n\
rx_packets = {{ value = {}, unit = \"packets\" }}\n\
rx_bytes = {{ value = {}, unit = \"bytes\" }}\n\
sdio_rx_work_dispatches = {{ value = {}, unit = \"dispatches\" }}\n\
sdio_tx_work_dispatches = {{ value = {}, unit = \"dispatches\" }}\n\
bh_work_redispatches = {{ value = {}, unit = \"dispatches\" }}\n+++\n\n\
Simulated, not measured on a board: `bench stress --variant {v} --seed {seed} --ramp {ramp} --reps {reps}{faults}`\n\
(stress run #{run}), stage {n}. Replaying that command gives the same counters.\n",
        num("rx_packets")?,
        num("rx_bytes")?,
        num("rx_work_dispatches")?,
        num("tx_work_dispatches")?,
        num("bh_redispatches")?,
        v = r.variant,
        title = toml_string(&title),
        ramp = r.ramp,
        reps = r.reps,
        faults = if r.faults.is_empty() { String::new() } else { format!(" --faults {}", r.faults.join(",")) },
    );
    let name = format!("{date}-{}-baseline-run{run}.md", r.variant);
    crate::workspace::notes::parse(Path::new(&name), &text)?;
    let path = write_new(root, &name, &text)?;
    // The workspace's rules across notes (one baseline per variant and date): a note that
    // breaks one is taken back, not left behind.
    let checked = crate::workspace::variant::Variants::load(root)
        .and_then(|v| crate::workspace::notes::load_all(root, &v).map(|_| ()));
    if let Err(e) = checked {
        let _ = std::fs::remove_file(&path);
        return Err(e);
    }
    Ok(path)
}
