use super::*;

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap().to_path_buf()
}

fn audit(name: &str) -> Report {
    let root = root();
    let variants = crate::workspace::variant::Variants::load(&root).unwrap();
    let work = tempfile::tempdir().unwrap();
    let v = variants.get(name).unwrap();
    audit_crate(&CrateRef { dir: &root.join("driver"), features: &v.features, work: work.path() }).unwrap()
}

#[test]
fn the_driver_variants_pass_or_fail_as_the_seed_says() {
    for name in ["baseline", "b", "c-prep", "c-v2"] {
        let r = audit(name);
        assert!(r.clean(), "{name}: {:#?}", r.violations);
    }
    let c = audit("c");
    let fields: BTreeSet<&str> = c.violations.iter().map(|v| v.field.as_str()).collect();
    assert_eq!(
        fields,
        ["Bes2600.hw_bufs_used", "Bes2600.hw_bufs_used_vif", "Bes2600.wsm_tx_pending"].into(),
        "{:#?}",
        c.violations
    );
    for field in &fields {
        let v = c.violations.iter().find(|v| v.field == *field && v.rule == "shared-plain-rmw").unwrap();
        assert_eq!(v.contexts, ["bh", "rx_work"]);
    }
    let hw =
        c.violations.iter().find(|v| v.field == "Bes2600.hw_bufs_used" && v.rule == "contract-contradicted").unwrap();
    let e = hw.evidence.iter().find(|e| e.access == AccessKind::PlainRmw).unwrap();
    assert_eq!(e.context, "rx_work");
    assert!(e.call_path[0].starts_with("Bes2600::sdio_rx_work at driver/src/sdio.rs:"), "{:?}", e.call_path);
    assert!(
        e.call_path.iter().any(|p| p.starts_with("Bes2600::handle_rx_skb at driver/src/bh.rs:")),
        "{:?}",
        e.call_path
    );
    assert!(e.call_path.iter().any(|p| p.starts_with("Bes2600::wsm_release_tx_buffer at driver/src/bh.rs:")));
    assert!(e.call_path.last().unwrap().starts_with("SingleWriter::add at driver/src/shared.rs:"));
}

#[test]
fn c_v2_as_posted_fails_on_the_pending_count_from_bh_and_rx_work() {
    let r = audit("c-v2-posted");
    let fields: BTreeSet<&str> = r.violations.iter().map(|v| v.field.as_str()).collect();
    assert_eq!(fields, ["Bes2600.wsm_tx_pending"].into(), "{:#?}", r.violations);
    let v = r.violations.iter().find(|v| v.rule == "shared-plain-rmw").unwrap();
    assert_eq!(v.contexts, ["bh", "rx_work"]);
    let bh = v.evidence.iter().find(|e| e.context == "bh").unwrap();
    assert!(bh.call_path.iter().any(|p| p.starts_with("Bes2600::bh_inc_pending_count")), "{:?}", bh.call_path);
    let rx = v.evidence.iter().find(|e| e.context == "rx_work").unwrap();
    assert!(rx.call_path.iter().any(|p| p.starts_with("Bes2600::handle_rx_skb")), "{:?}", rx.call_path);
    assert!(rx.call_path.iter().any(|p| p.starts_with("Bes2600::bh_dec_pending_count")), "{:?}", rx.call_path);
    // The timer callback only reads: a reader in its own context, allowed.
    let f = r.fields.iter().find(|f| f.field == "Bes2600.wsm_tx_pending").unwrap();
    assert!(f.readers.contains("timer"), "{f:?}");
}

#[test]
fn the_moved_writer_of_c_v2_is_reported_as_moved_not_as_a_violation() {
    let prep = audit("c-prep");
    let v2 = audit("c-v2");
    let d = delta("c-prep", &prep, &v2);
    assert!(
        d.moved_writers
            .iter()
            .any(|(f, a, b, single)| f == "Bes2600.wsm_rx_seq" && a.contains("bh") && b.contains("rx_work") && *single),
        "{:?}",
        d.moved_writers
    );
    assert!(d
        .moved_functions
        .iter()
        .any(|(f, a, b)| f == "Bes2600::handle_rx_skb" && a.contains("bh") && b.contains("rx_work")));
    assert!(d.new_violations.is_empty());
}

#[test]
fn explain_never_says_a_lock_is_held_where_it_is_not() {
    // pipe_read takes rx_queue's lock only around the pop: its later read of fw_started
    // holds no lock, the ring's accesses hold it.
    let b = audit("b");
    let ring: Vec<&Reach> = b.reaches.iter().filter(|r| r.field == "Bes2600.rx_queue" && r.context == "bh").collect();
    assert!(!ring.is_empty());
    assert!(ring.iter().all(|r| r.locks_held == ["Bes2600.rx_queue"]), "{ring:#?}");
    let fw: Vec<&Reach> = b
        .reaches
        .iter()
        .filter(|r| r.field == "Bes2600.fw_started" && r.call_path.iter().any(|p| p.starts_with("Bes2600::pipe_read")))
        .collect();
    assert!(!fw.is_empty());
    assert!(fw.iter().all(|r| r.locks_held.is_empty()), "{fw:#?}");
}

#[test]
fn bad_contract_lines_name_the_place() {
    let at = mir::Site { file: "x.rs".into(), line: 2 };
    let e = model::parse_contract("sometimes", &at).unwrap_err();
    assert_eq!(e.message, "x.rs:2: cannot read `contract: sometimes`");
    assert!(model::parse_contract("writers()", &at).is_err());
    assert_eq!(model::parse_contract("lock(q_lock)", &at).unwrap(), Contract::Lock("q_lock".into()));
}

#[test]
fn a_crate_that_does_not_build_is_a_clear_error() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(dir.path().join("src")).unwrap();
    std::fs::write(
        dir.path().join("Cargo.toml"),
        "[package]\nname = \"broken\"\nversion = \"0.1.0\"\nedition = \"2021\"\n[workspace]\n",
    )
    .unwrap();
    std::fs::write(dir.path().join("src/lib.rs"), "pub fn f() -> u32 { \"no\" }\n").unwrap();
    let e = audit_crate(&CrateRef { dir: dir.path(), features: &[], work: &dir.path().join("w") }).unwrap_err();
    assert!(e.message.contains("does not build"), "{}", e.message);
    assert!(e.causes.iter().any(|c| c.contains("mismatched types")), "{:?}", e.causes);
}

#[test]
fn the_delta_names_moved_platform_operations_new_sharing_and_nothing_for_no_change() {
    let (parent, child) = (audit("c-prep"), audit("c-v2"));
    let d = delta("c-prep", &parent, &child);
    let op = d.platform_ops.iter().find(|(f, ..)| f.ends_with("::netif_rx")).expect("netif_rx moved");
    assert_eq!((set(&op.1), set(&op.2)), ("bh".to_string(), "rx_work".to_string()), "{op:?}");
    assert!(
        d.newly_shared.contains(&("Bes2600.hw_bufs_used".into(), "bh".into(), "rx_work".into())),
        "{:?}",
        d.newly_shared
    );
    assert!(d.moved_functions.iter().any(|(f, ..)| f == "Bes2600::handle_rx_skb"), "{:?}", d.moved_functions);
    assert!(!d.is_empty());
    let same = delta("c-prep", &parent, &parent);
    assert!(same.is_empty(), "{same:?}");
    // A field the child drops (the baseline's view of Patch B's world is the same struct):
    // removing a field from the report shows as removed, adding as added.
    let mut fewer = child.clone();
    fewer.fields.retain(|f| f.field != "Bes2600.tx_lock");
    let d = delta("c-v2", &child, &fewer);
    assert_eq!(d.removed_fields, ["Bes2600.tx_lock"]);
    let d = delta("fewer", &fewer, &child);
    assert_eq!(d.added_fields, ["Bes2600.tx_lock"]);
}

#[test]
fn the_same_sources_give_the_same_report() {
    // rustdoc's index is a hash map with a random order per process and per map: the model
    // must not depend on it (derived impls share a start and were told apart by chance).
    let first = serde_json::to_string(&audit("c")).unwrap();
    for _ in 0..3 {
        assert_eq!(serde_json::to_string(&audit("c")).unwrap(), first, "the audit of c changed between runs");
    }
}
