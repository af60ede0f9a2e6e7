//! Reads a callgrind profile (`callgrind.out`, the format valgrind's manual gives under
//! "Callgrind Format Specification") into self cost per source file and function.
//!
//! Cost is taken where it was spent, not where the function began: a line of an inlined
//! function counts for the file it came from (the format's `fi=`/`fe=` lines), and the
//! inclusive cost written after each `calls=` line is skipped, so nothing counts twice.

use std::collections::BTreeMap;

/// Self cost of the first event (callgrind's default: `Ir`, instructions executed) per
/// `(source file, function)`.
#[derive(Debug, Default)]
pub struct Profile {
    pub cost: BTreeMap<(String, String), u64>,
    /// The first event's name (`Ir` unless the run chose other events).
    pub event: String,
}

/// A problem in the profile, with its 1-based line number.
#[derive(Debug, PartialEq, Eq)]
pub struct ParseError {
    pub line: usize,
    pub what: String,
}

/// The format's name compression: `(7) name` defines id 7, a later `(7)` means it.
#[derive(Default)]
struct Names {
    by_id: BTreeMap<String, String>,
}

impl Names {
    fn read(&mut self, value: &str) -> Option<String> {
        let value = value.trim();
        if let Some(rest) = value.strip_prefix('(') {
            let (id, name) = rest.split_once(')')?;
            let name = name.trim();
            if name.is_empty() {
                return self.by_id.get(id).cloned();
            }
            self.by_id.insert(id.to_string(), name.to_string());
            return Some(name.to_string());
        }
        Some(value.to_string())
    }
}

pub fn parse(text: &str) -> Result<Profile, ParseError> {
    let mut profile = Profile { event: "Ir".into(), ..Profile::default() };
    // Files and functions have their own id spaces; `fl`, `fi`, `fe` and `cfi`/`cfl` share one.
    let (mut files, mut fns) = (Names::default(), Names::default());
    let mut function = String::new();
    // The file of the function's start (`fl=`), and the one cost lines belong to now.
    let mut fn_file = String::new();
    let mut cost_file = String::new();
    let mut skip_next_cost = false;
    let err = |line: usize, what: String| ParseError { line, what };
    for (i, raw) in text.lines().enumerate() {
        let n = i + 1;
        let line = raw.trim_end();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        if let Some((key, value)) = line.split_once('=') {
            if key.chars().all(|c| c.is_ascii_lowercase()) {
                let bad = || err(n, format!("`{line}` names an id that was never defined"));
                match key {
                    "fl" => {
                        fn_file = files.read(value).ok_or_else(bad)?;
                        cost_file = fn_file.clone();
                    }
                    "fi" | "fe" => cost_file = files.read(value).ok_or_else(bad)?,
                    "fn" => {
                        function = fns.read(value).ok_or_else(bad)?;
                        cost_file = fn_file.clone();
                    }
                    "cfi" | "cfl" => {
                        files.read(value).ok_or_else(bad)?;
                    }
                    "cfn" => {
                        fns.read(value).ok_or_else(bad)?;
                    }
                    "calls" => skip_next_cost = true,
                    _ => {}
                }
                continue;
            }
        }
        if let Some(events) = line.strip_prefix("events:") {
            profile.event = events.split_whitespace().next().unwrap_or("Ir").to_string();
            continue;
        }
        let first = line.as_bytes()[0];
        if !(first.is_ascii_digit() || matches!(first, b'+' | b'-' | b'*')) {
            // Header lines (`version:`, `cmd:`, `positions:`, `summary:`, `totals:`, ...).
            continue;
        }
        // A cost line: position(s), then the events' counts; only the first event is read.
        // With one position column (the default, `line`), the count is the second field.
        let mut fields = line.split_whitespace();
        fields.next();
        let count = match fields.next() {
            None => 0,
            Some(c) => c.parse::<u64>().map_err(|_| err(n, format!("`{c}` in `{line}` is not a count")))?,
        };
        if skip_next_cost {
            skip_next_cost = false;
            continue;
        }
        *profile.cost.entry((cost_file.clone(), function.clone())).or_insert(0) += count;
    }
    Ok(profile)
}

#[cfg(test)]
mod tests {
    use super::*;

    const SAMPLE: &str = "\
# callgrind format
version: 1
creator: callgrind-3.19.0
positions: line
events: Ir
summary: 1000

ob=(1) /bin/sim
fl=(1) /w/driver/src/bh.rs
fn=(1) bes2600::bh::bh_loop
10 100
+2 5
fi=(2) /w/driver/src/sim/platform.rs
40 30
fe=(1)
-28 7
cfi=(2)
cfn=(2) bes2600::sim::platform::access
calls=3 40
* 900
12 1

fl=(2)
fn=(2)
40 60
fn=(3) bes2600::wsm::put_msg
fi=(3) /rustc/abc/library/core/src/ptr/mod.rs
5 8
";

    #[test]
    fn self_cost_goes_to_the_file_it_was_spent_in_and_calls_are_not_counted_twice() {
        let p = parse(SAMPLE).unwrap();
        let get = |f: &str, func: &str| p.cost.get(&(f.to_string(), func.to_string())).copied();
        assert_eq!(get("/w/driver/src/bh.rs", "bes2600::bh::bh_loop"), Some(100 + 5 + 7 + 1));
        // Inlined platform code inside bh_loop counts for the platform's file.
        assert_eq!(get("/w/driver/src/sim/platform.rs", "bes2600::bh::bh_loop"), Some(30));
        // The callee's own cost, by the name compressed earlier (the 900 after `calls=` is not).
        assert_eq!(get("/w/driver/src/sim/platform.rs", "bes2600::sim::platform::access"), Some(60));
        assert_eq!(get("/rustc/abc/library/core/src/ptr/mod.rs", "bes2600::wsm::put_msg"), Some(8));
        assert_eq!(p.cost.values().sum::<u64>(), 211);
        assert_eq!(p.event, "Ir");
    }

    #[test]
    fn a_bad_count_or_an_undefined_id_names_its_line() {
        let e = parse("events: Ir\nfn=(1) f\n3 lots\n").unwrap_err();
        assert_eq!(e.line, 3);
        assert!(e.what.contains("`lots`"), "{}", e.what);
        let e = parse("fl=(9)\n").unwrap_err();
        assert_eq!(e.line, 1);
        assert!(e.what.contains("never defined"), "{}", e.what);
    }
}
