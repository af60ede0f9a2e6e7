//! Property tests of every parser a user's text reaches (the ramp, notes, the bisect
//! oracle spec, bench.toml): on any input they return a value or a usage error that
//! names where and what, never panic; well-formed inputs parse to what they say. Bounded
//! (proptest's default 256 cases each), so they run in CI on every change.

use crate::error::Kind;
use proptest::prelude::*;
use std::path::Path;

/// Text a user might type: printable ASCII, separators, digits, units, and some noise.
fn texty() -> impl Strategy<Value = String> {
    prop_oneof![
        "[ -~]{0,40}",
        "[0-9.:,smh+eE-]{0,24}",
        proptest::collection::vec(any::<char>(), 0..24).prop_map(|v| v.into_iter().collect()),
    ]
}

proptest! {
    #[test]
    fn the_ramp_parser_never_panics_and_its_stages_are_in_range(text in texty()) {
        match crate::sim::ramp::parse(&text) {
            Ok(stages) => {
                prop_assert!(!stages.is_empty());
                let mut total_ms = 0u64;
                for s in &stages {
                    prop_assert!(s.offered_mb_per_s >= crate::sim::ramp::MIN_RATE_MB_PER_S && s.offered_mb_per_s <= crate::sim::ramp::MAX_RATE_MB_PER_S);
                    prop_assert!(s.duration_ms > 0 && s.duration_ms <= crate::sim::ramp::MAX_STAGE_S * 1000);
                    total_ms += s.duration_ms;
                }
                prop_assert!(total_ms <= crate::sim::ramp::MAX_RAMP_S * 1000 + 999);
            }
            Err(e) => {
                prop_assert_eq!(e.kind, Kind::Usage);
                prop_assert!(e.message.starts_with("bad --ramp"), "{}", e.message);
                prop_assert!(e.hint.is_some());
            }
        }
    }

    #[test]
    fn well_formed_ramps_parse_to_what_they_say(
        stages in proptest::collection::vec((1u32..=100, 1u64..=86_399_999u64), 1..5)
    ) {
        let text: Vec<String> = stages
            .iter()
            .map(|(rate, ms)| format!("{rate}:{}.{:03}s", ms / 1000, ms % 1000))
            .collect();
        let total: u64 = stages.iter().map(|s| s.1).sum();
        let parsed = crate::sim::ramp::parse(&text.join(","));
        if total <= crate::sim::ramp::MAX_RAMP_S * 1000 {
            let parsed = parsed.unwrap();
            let got: Vec<(f64, u64)> = parsed.iter().map(|s| (s.offered_mb_per_s, s.duration_ms)).collect();
            let want: Vec<(f64, u64)> = stages.iter().map(|(r, ms)| (*r as f64, *ms)).collect();
            prop_assert_eq!(got, want);
        }
    }

    #[test]
    fn the_note_parser_never_panics_and_names_the_file(body in texty(), front in "[ -~\n]{0,80}") {
        let text = format!("+++\n{front}\n+++\n{body}");
        for t in [text.as_str(), body.as_str()] {
            if let Err(e) = crate::workspace::notes::parse(Path::new("notes/x.md"), t) {
                prop_assert_eq!(e.kind, Kind::Usage);
                prop_assert!(e.message.contains("notes/x.md"), "{}", e.message);
            }
        }
    }

    #[test]
    fn the_oracle_spec_parser_never_panics(text in texty()) {
        if let Err(e) = crate::bisect::oracle::Oracle::parse(&text) {
            prop_assert_eq!(e.kind, Kind::Usage);
        }
    }

    #[test]
    fn bench_toml_never_panics_and_errors_name_the_file(text in "[ -~\n\\[\\]=\"]{0,120}") {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("bench.toml"), &text).unwrap();
        if let Err(e) = crate::target::load_config(dir.path()) {
            prop_assert_eq!(e.kind, Kind::Usage);
            prop_assert!(e.message.contains("bench.toml"), "{}", e.message);
        }
    }
}
