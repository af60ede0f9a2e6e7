//! Lab notes: `notes/*.md`, Markdown with a TOML front matter between `+++` lines. Raw
//! measurements carry units; rates, per-1000 ratios and percentages are derived here, never
//! typed in.

use crate::error::{BenchError, Result};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

pub const KINDS: &[&str] = &["baseline", "plan", "verdict", "finding"];
/// Units of raw counters.
pub const COUNT_UNITS: &[&str] = &["packets", "frames", "dispatches", "count", "events", "warns", "irqs", "bytes"];
/// Units of offered rates.
pub const RATE_UNITS: &[&str] = &["MB/s", "MiB/s", "kB/s", "KiB/s", "B/s", "Mbit/s"];
/// Largest raw counter a note may hold (far above any run's).
pub const MAX_MEASUREMENT: f64 = 1e15;

#[derive(Clone, Debug, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Quantity {
    pub value: f64,
    pub unit: String,
}

#[derive(Clone, Debug, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Prediction {
    pub metric: String,
    pub from: String,
    pub to: String,
    pub confidence: String,
}

#[derive(Clone, Debug, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct CheckItem {
    pub item: String,
    #[serde(default)]
    pub done: bool,
}

#[derive(Clone, Debug, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Front {
    pub date: String,
    pub variants: Vec<String>,
    pub kind: String,
    pub title: String,
    pub srcversion: Option<String>,
    pub board: Option<String>,
    pub kernel: Option<String>,
    pub verdict: Option<String>,
    pub rollback: Option<String>,
    pub forensics: Option<String>,
    pub offered: Option<Quantity>,
    #[serde(default)]
    pub measurements: BTreeMap<String, Quantity>,
    #[serde(default)]
    pub predictions: Vec<Prediction>,
    #[serde(default)]
    pub checklist: Vec<CheckItem>,
}

#[derive(Clone, Debug, Serialize)]
pub struct Note {
    pub file: String,
    #[serde(flatten)]
    pub front: Front,
    pub body: String,
}

impl Note {
    /// The body's `## ` sections in the order the note has them: (heading, text).
    pub fn sections_in_order(&self) -> Vec<(String, String)> {
        let mut out = Vec::new();
        let mut current: Option<(String, String)> = None;
        for line in self.body.lines() {
            if let Some(h) = line.strip_prefix("## ") {
                out.extend(current.take().map(|(k, v)| (k, v.trim().to_string())));
                current = Some((h.trim().to_string(), String::new()));
            } else if let Some((_, v)) = current.as_mut() {
                v.push_str(line);
                v.push('\n');
            }
        }
        out.extend(current.map(|(k, v)| (k, v.trim().to_string())));
        out
    }

    /// The body's `## ` sections by heading.
    pub fn sections(&self) -> BTreeMap<String, String> {
        let mut out = BTreeMap::new();
        let mut current: Option<(String, String)> = None;
        for line in self.body.lines() {
            if let Some(h) = line.strip_prefix("## ") {
                if let Some((k, v)) = current.take() {
                    out.insert(k, v.trim().to_string());
                }
                current = Some((h.trim().to_string(), String::new()));
            } else if let Some((_, v)) = current.as_mut() {
                v.push_str(line);
                v.push('\n');
            }
        }
        if let Some((k, v)) = current {
            out.insert(k, v.trim().to_string());
        }
        out
    }

    pub fn measure(&self, key: &str) -> Option<&Quantity> {
        self.front.measurements.get(key)
    }
}

/// Parses one note; errors name the file and line.
pub fn parse(path: &Path, text: &str) -> Result<Note> {
    let name = path.display().to_string();
    // A note saved with CRLF line ends is the same note.
    let normalised;
    let text = if text.contains("\r\n") {
        normalised = text.replace("\r\n", "\n");
        normalised.as_str()
    } else {
        text
    };
    let rest = text.strip_prefix("+++\n").ok_or_else(|| {
        BenchError::usage(format!("{name}:1: a note starts with a `+++` line (TOML front matter)"))
            .hint("see notes/2026-05-07-b-baseline-4mb.md, or start one with `bench notes new`")
    })?;
    let end = rest
        .find("\n+++\n")
        .or_else(|| rest.strip_suffix("\n+++").map(|r| r.len()))
        .ok_or_else(|| BenchError::usage(format!("{name}: the front matter has no closing `+++` line")))?;
    let front_text = &rest[..end + 1];
    let body = rest.get(end + 5..).unwrap_or("").to_string();
    let front: Front = toml::from_str(front_text).map_err(|e| {
        let line = e.span().map_or(0, |s| crate::workspace::variant::line_col(front_text, s.start).0 + 1);
        BenchError::usage(format!("{name}:{line}: {}", e.message().trim()))
    })?;
    if !KINDS.contains(&front.kind.as_str()) {
        return Err(BenchError::usage(format!("{name}: unknown kind `{}`", front.kind))
            .hint(format!("one of {}", KINDS.join(", "))));
    }
    let line_of_value = |key: &str, value: &str| {
        front_text.lines().position(|l| l.trim_start().starts_with(key) && l.contains(value)).map_or(0, |i| i + 2)
    };
    let line_of = |key: &str| front_text.lines().position(|l| l.trim_start().starts_with(key)).map_or(0, |i| i + 2);
    // An empty value is never information: a template's blank (`bench notes new`) left
    // unfilled. Name the first one.
    let blank = |key: &str, v: &str| -> Result<()> {
        if v.trim().is_empty() {
            return Err(BenchError::usage(format!("{name}:{}: `{key}` is empty", line_of(key)))
                .hint("fill it in, or remove the line if the note has nothing to say there"));
        }
        Ok(())
    };
    blank("title", &front.title)?;
    for (key, v) in [
        ("srcversion", &front.srcversion),
        ("board", &front.board),
        ("kernel", &front.kernel),
        ("verdict", &front.verdict),
        ("rollback", &front.rollback),
        ("forensics", &front.forensics),
    ] {
        if let Some(v) = v {
            blank(key, v)?;
        }
    }
    for p in &front.predictions {
        blank("metric", &p.metric)?;
        blank("from", &p.from)?;
        blank("to", &p.to)?;
    }
    for c in &front.checklist {
        blank("item", &c.item)?;
    }
    if !valid_date(&front.date) {
        return Err(BenchError::usage(format!(
            "{name}:{}: date `{}` is not a calendar date",
            line_of("date"),
            front.date
        ))
        .hint("date = \"YYYY-MM-DD\", e.g. date = \"2026-05-07\""));
    }
    // A dated file name (what `bench notes new` writes) and its front matter agree.
    let file_name = path.file_name().and_then(|f| f.to_str()).unwrap_or("");
    if let Some(prefix) = file_name.get(..10).filter(|p| valid_date(p)) {
        if prefix != front.date {
            return Err(BenchError::usage(format!(
                "{name}:{}: date `{}` is not the date the file name starts with, {prefix}",
                line_of("date"),
                front.date
            ))
            .hint("make them agree: the file name sorts the notes, the date orders baselines and plans"));
        }
    }
    if front.variants.is_empty() {
        return Err(BenchError::usage(format!("{name}:{}: `variants` is empty", line_of("variants")))
            .hint("the variants the note is about, e.g. variants = [\"c\"]"));
    }
    if let Some(sv) = &front.srcversion {
        let ok = !sv.is_empty() && sv.len() <= 24 && sv.chars().all(|c| c.is_ascii_hexdigit());
        if !ok {
            return Err(BenchError::usage(format!("{name}:{}: srcversion `{sv}` is not hex", line_of("srcversion")))
                .hint("a srcversion (or its prefix) as modinfo prints it: up to 24 hex digits, e.g. 84239431"));
        }
    }
    for p in &front.predictions {
        use crate::workspace::variant::{prediction_range, CONFIDENCES, FIGURES};
        if !CONFIDENCES.contains(&p.confidence.as_str()) {
            return Err(BenchError::usage(format!(
                "{name}:{}: unknown confidence `{}`",
                line_of_value("confidence", &p.confidence),
                p.confidence
            ))
            .hint(format!("one of {}", CONFIDENCES.join(", "))));
        }
        // A prediction in the seed's own words is kept as text; one that names a simulator
        // figure is checked by `bench stress --against`, so its values must be figures.
        if FIGURES.contains(&p.metric.as_str()) {
            for (key, v) in [("from", &p.from), ("to", &p.to)] {
                if prediction_range(&toml::Value::String(v.clone())).is_none() {
                    return Err(BenchError::usage(format!(
                        "{name}:{}: prediction `{}`: {key} = \"{v}\" is not a figure",
                        line_of_value(key, v),
                        p.metric
                    ))
                    .hint("a number with a unit or % (\"20%\", \"1914/s\"), or a range low-high (\"12-15%\")"));
                }
            }
        }
    }
    let offered_key = "offered".to_string();
    for (key, q) in front.measurements.iter().chain(front.offered.iter().map(|q| (&offered_key, q))) {
        let at = format!("{name}:{}", line_of(key));
        if !q.value.is_finite() || q.value < 0.0 || q.value > MAX_MEASUREMENT {
            let shown = if q.value.is_finite() && q.value.fract() == 0.0 && q.value.abs() < 1e15 {
                format!("{}", q.value as i64)
            } else {
                format!("{:?}", q.value)
            };
            return Err(BenchError::usage(format!("{at}: `{key}` = {shown} is not a count or size a run can have"))
                .hint(format!("a raw counter is a finite number from 0 to {MAX_MEASUREMENT:e}")));
        }
        let known = bytes(q).is_some()
            || seconds(q).is_some()
            || COUNT_UNITS.contains(&q.unit.as_str())
            || RATE_UNITS.contains(&q.unit.as_str());
        if !known {
            return Err(BenchError::usage(format!("{at}: `{key}` has the unknown unit `{}`", q.unit)).hint(format!(
                "units: bytes (B, kB, KiB, MB, MiB, GB, GiB), time (s, ms, min, h), counts ({}), rates ({})",
                COUNT_UNITS.join(", "),
                RATE_UNITS.join(", ")
            )));
        }
        if seconds(q).is_some_and(|s| s == 0.0) && key == "duration" {
            return Err(BenchError::usage(format!("{at}: `duration` is zero: no rate can be derived from it"))
                .hint("the run's length, e.g. duration = { value = 404.8, unit = \"s\" }"));
        }
    }
    Ok(Note { file: name, front, body })
}

/// `YYYY-MM-DD` naming a day that exists (leap years counted).
pub fn valid_date(s: &str) -> bool {
    let b = s.as_bytes();
    if b.len() != 10 || b[4] != b'-' || b[7] != b'-' {
        return false;
    }
    let num =
        |r: std::ops::Range<usize>| s.get(r).filter(|t| t.bytes().all(|c| c.is_ascii_digit()))?.parse::<u32>().ok();
    let (Some(y), Some(m), Some(d)) = (num(0..4), num(5..7), num(8..10)) else {
        return false;
    };
    let leap = y % 4 == 0 && (y % 100 != 0 || y % 400 == 0);
    let days = match m {
        1 | 3 | 5 | 7 | 8 | 10 | 12 => 31,
        4 | 6 | 9 | 11 => 30,
        2 if leap => 29,
        2 => 28,
        _ => return false,
    };
    (1..=days).contains(&d) && y >= 1970
}

/// Every note of the workspace, checked against the variants.
pub fn load_all(root: &Path, variants: &crate::workspace::variant::Variants) -> Result<Vec<Note>> {
    let dir = root.join("notes");
    let mut files: Vec<PathBuf> = match std::fs::read_dir(&dir) {
        Ok(rd) => {
            rd.filter_map(|e| e.ok().map(|e| e.path())).filter(|p| p.extension().is_some_and(|x| x == "md")).collect()
        }
        Err(_) => Vec::new(),
    };
    files.sort();
    let mut notes = Vec::new();
    for f in files {
        let text = crate::fsutil::read_text(&f)?;
        let rel = f.strip_prefix(root).unwrap_or(&f).to_path_buf();
        let note = parse(&rel, &text)?;
        for v in &note.front.variants {
            if variants.get(v).is_err() {
                let known: Vec<&str> = variants.list.iter().map(|v| v.name.as_str()).collect();
                return Err(BenchError::usage(format!("{}: unknown variant `{v}`", note.file))
                    .hint(format!("known variants: {}", known.join(", "))));
            }
        }
        notes.push(note);
    }
    // Two baselines of one variant on one date: which one a PR uses would be a coin toss.
    for (i, a) in notes.iter().enumerate() {
        for b in notes.iter().skip(i + 1) {
            if a.front.kind == "baseline" && b.front.kind == "baseline" && a.front.date == b.front.date {
                if let Some(v) = a.front.variants.iter().find(|v| b.front.variants.contains(v)) {
                    return Err(BenchError::usage(format!(
                        "{} and {}: two baselines of `{v}` dated {}",
                        a.file, b.file, a.front.date
                    ))
                    .hint("keep one, or date them apart: a PR uses the newest baseline of the parent"));
                }
            }
        }
    }
    Ok(notes)
}

/// Bytes of a quantity with a byte unit.
pub fn bytes(q: &Quantity) -> Option<f64> {
    let f = match q.unit.as_str() {
        "B" | "bytes" => 1.0,
        "kB" => 1e3,
        "KiB" => 1024.0,
        "MB" => 1e6,
        "MiB" => 1024.0 * 1024.0,
        "GB" => 1e9,
        "GiB" => 1024.0 * 1024.0 * 1024.0,
        _ => return None,
    };
    Some(q.value * f)
}

/// Seconds of a quantity with a time unit.
pub fn seconds(q: &Quantity) -> Option<f64> {
    let f = match q.unit.as_str() {
        "s" => 1.0,
        "ms" => 1e-3,
        "min" => 60.0,
        "h" => 3600.0,
        _ => return None,
    };
    Some(q.value * f)
}

/// `387532` -> `387,532`.
pub fn thousands(n: f64) -> String {
    let s = format!("{}", n.round() as i64);
    let (sign, digits) = s.strip_prefix('-').map_or(("", s.as_str()), |d| ("-", d));
    let mut out = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i) % 3 == 0 {
            out.push(',');
        }
        out.push(c);
    }
    format!("{sign}{out}")
}

/// Figures derived from a baseline note's raw counters, formatted as the seed does.
/// Every prediction made for `v`: its variant file's `[[predictions]]`, then those of its
/// plan notes (oldest first), as one list.
pub fn predictions_of(
    root: &Path,
    variants: &crate::workspace::variant::Variants,
    v: &crate::workspace::variant::Variant,
) -> Result<Vec<crate::workspace::variant::Prediction>> {
    let mut out = v.predictions.clone();
    let mut plans: Vec<Note> = load_all(root, variants)?
        .into_iter()
        .filter(|n| n.front.kind == "plan" && n.front.variants.contains(&v.name))
        .collect();
    plans.sort_by(|a, b| (&a.front.date, &a.file).cmp(&(&b.front.date, &b.file)));
    for n in plans {
        out.extend(n.front.predictions.iter().map(|p| crate::workspace::variant::Prediction {
            metric: p.metric.clone(),
            from: toml::Value::String(p.from.clone()),
            to: toml::Value::String(p.to.clone()),
            unit: None,
            confidence: p.confidence.clone(),
        }));
    }
    Ok(out)
}

pub fn baseline_figures(n: &Note) -> Result<BTreeMap<String, String>> {
    let need = |k: &str| {
        n.measure(k).ok_or_else(|| BenchError::usage(format!("{}: baseline has no measurement `{k}`", n.file)))
    };
    let secs = seconds(need("duration")?)
        .ok_or_else(|| BenchError::usage(format!("{}: duration needs a time unit (s, min, ms, h)", n.file)))?;
    let pkts = need("rx_packets")?.value;
    let rx_bytes_q = need("rx_bytes")?;
    let rx_bytes = bytes(rx_bytes_q)
        .ok_or_else(|| BenchError::usage(format!("{}: rx_bytes needs a byte unit (B, kB, MB, MiB, ...)", n.file)))?;
    let rxw = need("sdio_rx_work_dispatches")?.value;
    let mut f = BTreeMap::new();
    f.insert("duration_s".into(), format!("{secs:.1}"));
    f.insert("minutes".into(), format!("{:.0}", secs / 60.0));
    f.insert("rx_packets".into(), thousands(pkts));
    f.insert("rx_mb".into(), format!("{:.0}", rx_bytes / 1e6));
    f.insert("observed_mib_per_s".into(), format!("{:.2}", rx_bytes / (1024.0 * 1024.0) / secs));
    f.insert("rx_work_dispatches".into(), thousands(rxw));
    f.insert("rx_work_per_s".into(), format!("{:.1}", rxw / secs));
    f.insert("rx_work_per_1000_rx_packets".into(), format!("{:.1}", rxw / pkts * 1000.0));
    if let Some(t) = n.measure("sdio_tx_work_dispatches") {
        f.insert("tx_work_dispatches".into(), thousands(t.value));
        f.insert("tx_work_per_s".into(), format!("{:.1}", t.value / secs));
    }
    if let Some(b) = n.measure("bh_work_redispatches") {
        f.insert("bh_redispatches".into(), thousands(b.value));
    }
    if let Some(o) = &n.front.offered {
        f.insert("offered".into(), format!("{} {}", o.value, o.unit));
    }
    Ok(f)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn malformed_counters_are_refused_naming_the_line_and_crlf_is_accepted() {
        let note = |m: &str| {
            format!("+++\ndate = \"2026-05-07\"\nvariants = [\"b\"]\nkind = \"baseline\"\ntitle = \"t\"\n[measurements]\n{m}\n+++\nbody\n")
        };
        for (m, needle) in [
            ("rx_packets = { value = -5, unit = \"packets\" }", "x.md:7: `rx_packets` = -5 is not a count"),
            ("rx_packets = { value = nan, unit = \"packets\" }", "`rx_packets` = NaN"),
            ("rx_bytes = { value = 1e300, unit = \"MB\" }", "`rx_bytes` = 1e300"),
            ("rx_bytes = { value = 5, unit = \"furlongs\" }", "unknown unit `furlongs`"),
            ("duration = { value = 0, unit = \"s\" }", "`duration` is zero"),
        ] {
            let e = parse(Path::new("x.md"), &note(m)).unwrap_err();
            assert!(e.message.contains(needle), "{m}: {}", e.message);
            assert!(e.hint.is_some());
        }
        let ok = note("rx_packets = { value = 5, unit = \"packets\" }").replace('\n', "\r\n");
        let n = parse(Path::new("x.md"), &ok).unwrap();
        assert_eq!(n.measure("rx_packets").unwrap().value, 5.0);
        assert_eq!(n.body.trim(), "body");
    }

    #[test]
    fn derived_figures_of_the_seed_baseline() {
        let root = Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap();
        let text = std::fs::read_to_string(root.join("notes/2026-05-07-b-baseline-4mb.md")).unwrap();
        let n = parse(Path::new("b.md"), &text).unwrap();
        let f = baseline_figures(&n).unwrap();
        let get = |k: &str| f[k].as_str();
        assert_eq!(get("rx_packets"), "387,532");
        assert_eq!(get("rx_mb"), "578");
        assert_eq!(get("observed_mib_per_s"), "1.36");
        assert_eq!(get("rx_work_dispatches"), "34,994");
        assert_eq!(get("rx_work_per_s"), "86.4");
        assert_eq!(get("rx_work_per_1000_rx_packets"), "90.3");
        assert_eq!(get("tx_work_dispatches"), "111,770");
        assert_eq!(get("tx_work_per_s"), "276.1");
        assert_eq!(get("bh_redispatches"), "0");
    }

    #[test]
    fn bad_notes_name_file_and_line() {
        let e = parse(Path::new("n.md"), "no front matter").unwrap_err();
        assert!(e.message.starts_with("n.md:1:"), "{}", e.message);
        let e = parse(Path::new("n.md"), "+++\ndate = \"d\"\nvariants = [\"b\"]\nkind = \"plan\"\ntitle = \"t\"\n[[predictions]]\nfrom = \"1\"\nto = \"2\"\nconfidence = \"high\"\n+++\n").unwrap_err();
        assert!(e.message.starts_with("n.md:6:") && e.message.contains("metric"), "{}", e.message);
        let e = parse(Path::new("n.md"), "+++\ndate = \"d\"\nvariants = [\"b\"]\nkind = \"plan\ntitle = \"t\"\n+++\n")
            .unwrap_err();
        assert!(e.message.starts_with("n.md:4:"), "{}", e.message);
        let e = parse(Path::new("n.md"), "+++\ndate = \"d\"\nvariants = []\nkind = \"musing\"\ntitle = \"t\"\n+++\n")
            .unwrap_err();
        assert!(e.message.contains("unknown kind `musing`"));
        assert_eq!(thousands(1234567.0), "1,234,567");
    }

    #[test]
    fn a_blank_left_in_a_template_is_refused_naming_it() {
        let head = "+++\ndate = \"2026-11-26\"\nvariants = [\"d\"]\nkind = \"plan\"\ntitle = \"t\"\n";
        for (extra, key) in [
            ("rollback = \"\"\n", "`rollback` is empty"),
            ("[[predictions]]\nmetric = \"\"\nfrom = \"1\"\nto = \"2\"\nconfidence = \"high\"\n", "`metric` is empty"),
            ("[[checklist]]\nitem = \" \"\n", "`item` is empty"),
            ("verdict = \"\"\n", "`verdict` is empty"),
        ] {
            let e = parse(Path::new("n.md"), &format!("{head}{extra}+++\n")).unwrap_err();
            assert!(e.message.contains(key), "{extra}: {}", e.message);
            assert!(e.hint.as_deref().unwrap_or("").contains("fill it in"));
        }
        let e = parse(
            Path::new("n.md"),
            "+++\ndate = \"2026-11-26\"\nvariants = [\"d\"]\nkind = \"plan\"\ntitle = \"\"\n+++\n",
        )
        .unwrap_err();
        assert!(e.message.contains("`title` is empty"), "{}", e.message);
        assert!(parse(Path::new("n.md"), &format!("{head}rollback = \"b\"\n+++\n")).is_ok());
    }
}
