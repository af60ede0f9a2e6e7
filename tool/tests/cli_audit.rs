//! `bench audit` as a user runs it on the repository's driver.

mod common;

fn bench(args: &[&str]) -> (i32, String, String) {
    let home = tempfile::tempdir().unwrap();
    let out = common::bench_command(&common::repo(), home.path()).args(args).output().unwrap();
    (out.status.code().unwrap(), String::from_utf8(out.stdout).unwrap(), String::from_utf8(out.stderr).unwrap())
}

/// `file.rs:123` -> `file.rs:N`: snapshots say which file and function, not which line, so
/// that editing the driver does not rewrite them.
fn no_lines(text: &str) -> String {
    let mut out = String::new();
    let mut rest = text;
    while let Some(i) = rest.find(".rs:") {
        out.push_str(&rest[..i + 4]);
        rest = &rest[i + 4..];
        let digits = rest.chars().take_while(|c| c.is_ascii_digit()).count();
        if digits > 0 {
            out.push('N');
        }
        rest = &rest[digits..];
    }
    out.push_str(rest);
    out
}

#[test]
fn audit_of_c_fails_naming_the_race_and_its_path() {
    let (code, out, err) = bench(&["audit", "--variant", "c"]);
    assert_eq!(code, 1, "{err}");
    insta::assert_snapshot!("audit_c", no_lines(&out));
    insta::assert_snapshot!("audit_c_stderr", err);
}

#[test]
fn audit_passes_for_the_other_variants() {
    for v in ["baseline", "b", "c-prep", "c-v2"] {
        let (code, out, err) = bench(&["audit", "--variant", v]);
        assert_eq!(code, 0, "{v}: {out}{err}");
        assert!(out.starts_with(&format!("audit {v}: PASS")), "{out}");
    }
    let (_, out, _) = bench(&["audit", "--variant", "c-v2"]);
    assert!(
        out.contains("writer moved Bes2600.wsm_rx_seq: bh -> rx_work (still single-writer: not a violation)"),
        "{out}"
    );
}

#[test]
fn c_v2_as_posted_fails_on_the_pending_count() {
    let (code, out, err) = bench(&["audit", "--variant", "c-v2-posted"]);
    assert_eq!(code, 1, "{err}");
    assert!(out.starts_with("audit c-v2-posted: FAIL (3 violations;"), "{out}");
    assert!(out.contains("VIOLATION Bes2600.wsm_tx_pending [shared-plain-rmw]"), "{out}");
    assert!(out.contains("-> Bes2600::bh_inc_pending_count at driver/src/pending.rs:"), "{out}");
    assert!(out.contains("-> Bes2600::bh_dec_pending_count at driver/src/pending.rs:"), "{out}");
    assert!(!out.contains("VIOLATION Bes2600.hw_bufs_used"), "C-prep fixed hw_bufs_used: {out}");
}

#[test]
fn explain_json_and_markdown() {
    let (code, out, _) = bench(&["audit", "--variant", "c", "--explain", "hw_bufs_used"]);
    assert_eq!(code, 1);
    insta::assert_snapshot!("audit_c_explain_hw_bufs_used", no_lines(&out));
    let (code, out, _) = bench(&["audit", "--all", "--json"]);
    assert_eq!(code, 1);
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    let clean: std::collections::BTreeMap<String, bool> = v
        .as_array()
        .unwrap()
        .iter()
        .map(|x| (x["variant"].as_str().unwrap().to_string(), x["clean"].as_bool().unwrap()))
        .collect();
    // The seed's variants (a workspace may have more: they are audited too).
    for (name, want) in
        [("b", true), ("baseline", true), ("c", false), ("c-prep", true), ("c-v2", true), ("c-v2-posted", false)]
    {
        assert_eq!(clean.get(name), Some(&want), "{name}: {clean:?}");
    }
    let (code, out, _) = bench(&["audit", "--variant", "c-v2", "--format", "markdown"]);
    assert_eq!(code, 0);
    assert!(out.starts_with("# Contract audit: variant `c-v2`\n\n**PASS**"), "{out}");
    let (code, _, err) = bench(&["audit", "--variant", "c", "--explain", "hw_buf_used"]);
    assert_eq!(code, 2);
    assert!(
        err.contains("did you mean `Bes2600.hw_bufs_used`?") || err.contains("did you mean `hw_bufs_used`?"),
        "{err}"
    );
}
