//! The contract audit: every shared field each execution context reaches, at any call
//! depth and by any route, and what it does there (plain load, store, read-modify-write,
//! atomic with its ordering, which locks are held), against the contract the field
//! declares.
//!
//! # How the code is read
//! As the compiler reads it: rustc's MIR of the crate built with the variant's features
//! (`cargo rustc -- -Zunpretty=mir -Zmir-include-spans=yes`, with `RUSTC_BOOTSTRAP=1`, the
//! switch the kernel's own Rust build uses), in which macros are expanded, every call is
//! resolved to its definition, every place is typed, and every guard drop is explicit; and
//! rustdoc's JSON (`rustdoc-types`) for what MIR does not carry: field names in order,
//! doc lines after `cfg_attr`, impl blocks. See [`mir`], [`model`] and [`analyse`].
//!
//! # Conventions read from the crate (nothing of any one driver is built in)
//! - `contract: writers(a, b) | atomic | lock(L) | owner(c) | init` above a field or a
//!   static. `lock(L)` names the field that is the lock, or, when the struct has no field
//!   `L`, the field is its own lock (a `SpinLock<T>` holding its data).
//! - `context: NAME` in an entry point's docs. `probe` is the context that runs before any
//!   other starts and after all stop: it may write anything.
//! - `access: load | store | atomic-load | atomic-store | atomic-rmw | atomic-cas | lock |
//!   unlock` on the platform layer's primitives: what they do to the memory their pointer
//!   argument reaches. `core::sync::atomic`, `Cell`, `mem::replace` and `ptr::read/write`
//!   are known without annotation.
//! - `callback-context: NAME` on a registration function: callables handed to it run in
//!   that context.

pub mod analyse;
pub mod mir;
pub mod model;

use crate::error::ResultExt;
use crate::error::{BenchError, Kind, Result};
use analyse::{Engine, Op};
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// The context that runs alone: before every other starts, after all stop.
pub const INIT_CONTEXT: &str = "probe";

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", content = "value", rename_all = "snake_case")]
pub enum Contract {
    Writers(BTreeSet<String>),
    Atomic,
    Lock(String),
    Owner(String),
    Init,
}

impl std::fmt::Display for Contract {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Contract::Writers(w) => write!(f, "writers({})", w.iter().cloned().collect::<Vec<_>>().join(", ")),
            Contract::Atomic => write!(f, "atomic"),
            Contract::Lock(l) => write!(f, "lock({l})"),
            Contract::Owner(o) => write!(f, "owner({o})"),
            Contract::Init => write!(f, "init"),
        }
    }
}

/// What one access does.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AccessKind {
    PlainLoad,
    PlainStore,
    /// A plain load and a later plain store of the field in one function: a lost update
    /// when another context writes in between.
    PlainRmw,
    Atomic {
        op: String,
        ordering: String,
    },
    /// An atomic load and a later atomic store: every access atomic, the update still lost.
    AtomicLoadThenStore,
    /// A compare-exchange whose result nobody reads: on failure the update is lost.
    IgnoredCas,
}

impl AccessKind {
    pub fn writes(&self) -> bool {
        match self {
            AccessKind::PlainLoad => false,
            AccessKind::Atomic { op, .. } => op != "load",
            _ => true,
        }
    }
    fn plain(&self) -> bool {
        matches!(self, AccessKind::PlainLoad | AccessKind::PlainStore | AccessKind::PlainRmw)
    }
    fn rmw(&self) -> bool {
        matches!(self, AccessKind::PlainRmw | AccessKind::AtomicLoadThenStore | AccessKind::IgnoredCas)
    }
    pub fn label(&self) -> String {
        match self {
            AccessKind::PlainLoad => "plain load".into(),
            AccessKind::PlainStore => "plain store".into(),
            AccessKind::PlainRmw => "plain read-modify-write".into(),
            AccessKind::Atomic { op, ordering } => format!("atomic {op} ({ordering})"),
            AccessKind::AtomicLoadThenStore => "atomic load, then atomic store".into(),
            AccessKind::IgnoredCas => "compare-exchange, failure ignored".into(),
        }
    }
}

/// One access as a context reaches it.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq, PartialOrd, Ord)]
pub struct Reach {
    pub context: String,
    /// `Owner.field`, or `static NAME`.
    pub field: String,
    pub access: AccessKind,
    pub function: String,
    pub site: String,
    /// For a read-modify-write: where the load is (`site` is the store).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub load_site: Option<String>,
    pub locks_held: Vec<String>,
    /// Entry point first, the accessing function last.
    pub call_path: Vec<String>,
}

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq, PartialOrd, Ord)]
pub struct Violation {
    pub field: String,
    pub rule: String,
    pub message: String,
    pub contexts: Vec<String>,
    /// Example accesses with their call paths.
    pub evidence: Vec<Reach>,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct FieldSummary {
    pub field: String,
    pub contract: Option<Contract>,
    pub declared_at: String,
    pub writers: BTreeSet<String>,
    pub readers: BTreeSet<String>,
    pub rmw_contexts: BTreeSet<String>,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Unresolved {
    pub call: String,
    pub from: BTreeSet<String>,
    /// The contexts that make the call.
    #[serde(default)]
    pub contexts: BTreeSet<String>,
    pub sites: BTreeSet<String>,
    pub why: String,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Report {
    /// Context -> its entry points (`function at file:line`).
    pub contexts: BTreeMap<String, Vec<String>>,
    pub fields: Vec<FieldSummary>,
    pub reaches: Vec<Reach>,
    pub violations: Vec<Violation>,
    /// Calls the audit did not follow (defined outside the crate), handed shared state.
    pub unresolved: Vec<Unresolved>,
    /// Which contexts reach each function.
    pub function_contexts: BTreeMap<String, BTreeSet<String>>,
    /// Resolved calls: caller -> callees.
    pub call_graph: BTreeMap<String, BTreeSet<String>>,
}

impl Report {
    pub fn clean(&self) -> bool {
        self.violations.is_empty()
    }

    /// The field `name` names: `Owner.field`, or a bare `field` when one owner has it.
    pub fn find_field(&self, name: &str) -> Vec<&FieldSummary> {
        let exact: Vec<&FieldSummary> = self.fields.iter().filter(|f| f.field == name).collect();
        if !exact.is_empty() {
            return exact;
        }
        self.fields.iter().filter(|f| f.field.rsplit(['.', ' ']).next() == Some(name)).collect()
    }
}

/// A path element without its site and note: `Dev::f [dyn T: any impl] at x.rs:3` -> `Dev::f`.
fn strip_note(s: &str) -> &str {
    let s = s.split(" at ").next().unwrap_or(s);
    s.split(" [").next().unwrap_or(s)
}

/// Where the crate to audit is and how to build it.
pub struct CrateRef<'a> {
    /// The directory holding the crate's `Cargo.toml`.
    pub dir: &'a Path,
    pub features: &'a [String],
    /// Build directory and cache live under here.
    pub work: &'a Path,
}

fn rustc_version() -> String {
    std::process::Command::new(std::env::var_os("RUSTC").unwrap_or_else(|| "rustc".into()))
        .arg("-V")
        .output()
        .ok()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
        .unwrap_or_default()
}

/// A digest of everything the audit's answer depends on: the crate's sources and
/// manifest, the features, the toolchain, and bench's own version.
fn cache_key(c: &CrateRef) -> Result<String> {
    use sha2::{Digest, Sha256};
    let mut h = Sha256::new();
    h.update(env!("CARGO_PKG_VERSION"));
    h.update(AUDIT_FORMAT.to_le_bytes());
    // A rebuilt bench may judge differently: its binary's identity is part of the key.
    if let Some(m) = std::env::current_exe().ok().and_then(|e| std::fs::metadata(e).ok()) {
        h.update(m.len().to_le_bytes());
        if let Ok(t) = m.modified() {
            h.update(format!("{t:?}"));
        }
    }
    h.update(rustc_version());
    h.update(c.features.join(","));
    let mut files = Vec::new();
    let mut stack = vec![c.dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        let rd = std::fs::read_dir(&d).or_env(format!("cannot read {}", d.display()))?;
        for ent in rd.flatten() {
            let p = ent.path();
            let name = ent.file_name().to_string_lossy().to_string();
            if p.is_dir() {
                if name != "target" && !name.starts_with('.') {
                    stack.push(p);
                }
            } else if name.ends_with(".rs") || name == "Cargo.toml" {
                files.push(p);
            }
        }
    }
    files.sort();
    for f in files {
        h.update(f.strip_prefix(c.dir).unwrap_or(&f).to_string_lossy().as_bytes());
        h.update(std::fs::read(&f).or_env(format!("cannot read {}", f.display()))?);
    }
    Ok(h.finalize().iter().map(|b| format!("{b:02x}")).collect())
}

/// Bumped when the report's meaning changes, so old cached reports are not reused.
const AUDIT_FORMAT: u32 = 2;

fn lib_name(dir: &Path) -> Result<String> {
    let manifest = dir.join("Cargo.toml");
    let text = std::fs::read_to_string(&manifest).or_env(format!("cannot read {}", manifest.display()))?;
    let v: toml::Value =
        toml::from_str(&text).map_err(|e| BenchError::usage(format!("{}: {}", manifest.display(), e.message())))?;
    let name = v
        .get("lib")
        .and_then(|l| l.get("name"))
        .or_else(|| v.get("package").and_then(|p| p.get("name")))
        .and_then(|n| n.as_str())
        .ok_or_else(|| BenchError::usage(format!("{}: no package name", manifest.display())))?;
    Ok(name.replace('-', "_"))
}

fn cargo(dir: &Path, target: &Path, features: &[String], sub: &str, extra: &[&str]) -> Result<Vec<u8>> {
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let mut cmd = std::process::Command::new(cargo);
    cmd.arg(sub)
        .arg("--quiet")
        .arg("--manifest-path")
        .arg(dir.join("Cargo.toml"))
        .arg("--lib")
        .arg("--target-dir")
        .arg(target)
        .env("RUSTC_BOOTSTRAP", "1")
        .env_remove("RUSTFLAGS")
        .env_remove("CARGO_ENCODED_RUSTFLAGS")
        .env_remove("RUSTDOCFLAGS");
    if !features.is_empty() {
        cmd.arg("--features").arg(features.join(","));
    }
    cmd.arg("--").args(extra);
    let out = cmd.output().or_env("cannot run cargo for the contract audit")?;
    if !out.status.success() {
        let err = String::from_utf8_lossy(&out.stderr);
        let first: Vec<&str> = err.lines().filter(|l| !l.trim().is_empty()).take(12).collect();
        return Err(BenchError::new(
            Kind::Usage,
            format!("the crate at {} does not build with features [{}]", dir.display(), features.join(", ")),
        )
        .cause(first.join("\n"))
        .hint(
            "the audit reads the code as the compiler does: fix the build first (`cargo check -p ... --features ...`)",
        ));
    }
    Ok(out.stdout)
}

/// Audits a crate built with `features`; the answer is cached by its inputs' digest.
pub fn audit_crate(c: &CrateRef) -> Result<Report> {
    let key = cache_key(c)?;
    let cache = c.work.join("cache").join("audit").join(format!("{key}.json"));
    if let Ok(bytes) = std::fs::read(&cache) {
        if let Ok(r) = serde_json::from_slice::<Report>(&bytes) {
            return Ok(r);
        }
    }
    let report = audit_uncached(c)?;
    if let Some(dir) = cache.parent() {
        let _ = std::fs::create_dir_all(dir);
        let tmp = cache.with_extension(format!("tmp{}", std::process::id()));
        if std::fs::write(&tmp, serde_json::to_vec(&report).expect("serialises")).is_ok() {
            let _ = std::fs::rename(&tmp, &cache);
        }
    }
    Ok(report)
}

/// The audit without the cache: build MIR and rustdoc JSON, then analyse.
pub fn audit_uncached(c: &CrateRef) -> Result<Report> {
    use sha2::{Digest, Sha256};
    let fdigest: String =
        Sha256::digest(c.features.join(",").as_bytes()).iter().take(6).map(|b| format!("{b:02x}")).collect();
    let target: PathBuf = c.work.join("audit-target").join(fdigest);
    let mir_text = cargo(c.dir, &target, c.features, "rustc", &["-Zunpretty=mir", "-Zmir-include-spans=yes"])?;
    cargo(
        c.dir,
        &target,
        c.features,
        "rustdoc",
        &["-Zunstable-options", "--output-format", "json", "--document-private-items"],
    )?;
    let json_path = target.join("doc").join(format!("{}.json", lib_name(c.dir)?));
    let json = std::fs::read(&json_path).or_env(format!("rustdoc wrote no {}", json_path.display()))?;
    let model = model::from_json(&json, &c.dir.display().to_string())?;
    let mir = mir::parse(&String::from_utf8_lossy(&mir_text));
    Ok(analyse_crate(&mir, &model))
}

/// Materialises nothing: audits the workspace's driver crate with the variant's features.
pub fn audit_variant(
    root: &Path,
    _variants: &crate::workspace::variant::Variants,
    variant: &crate::workspace::variant::Variant,
) -> Result<Report> {
    let work = crate::workspace::ledger::state_dir(root);
    audit_crate(&CrateRef { dir: &root.join("driver"), features: &variant.features, work: &work })
}

fn reach_of(ctx: &str, a: &analyse::Acc) -> Reach {
    let access = match &a.op {
        Op::Load => AccessKind::PlainLoad,
        Op::Store => AccessKind::PlainStore,
        Op::AtomicLoad(o) => AccessKind::Atomic { op: "load".into(), ordering: o.clone() },
        Op::AtomicStore(o) => AccessKind::Atomic { op: "store".into(), ordering: o.clone() },
        Op::AtomicRmw(m, o) => AccessKind::Atomic { op: m.clone(), ordering: o.clone() },
        Op::AtomicCas(o) => AccessKind::Atomic { op: "compare_exchange".into(), ordering: o.clone() },
    };
    Reach {
        context: ctx.to_string(),
        field: a.loc.clone(),
        access,
        function: a.path.last().map(|s| strip_note(s).to_string()).unwrap_or_default(),
        site: a.site.to_string(),
        load_site: None,
        locks_held: a.locks.iter().cloned().collect(),
        call_path: a.path.clone(),
    }
}

fn rmw_reach(ctx: &str, r: &analyse::Rmw) -> Reach {
    Reach {
        context: ctx.to_string(),
        field: r.loc.clone(),
        access: if r.ignored_cas {
            AccessKind::IgnoredCas
        } else if r.plain {
            AccessKind::PlainRmw
        } else {
            AccessKind::AtomicLoadThenStore
        },
        function: r.path.last().map(|s| strip_note(s).to_string()).unwrap_or_default(),
        site: r.site.to_string(),
        load_site: (r.load_site != r.site).then(|| r.load_site.to_string()),
        locks_held: r.locks.iter().cloned().collect(),
        call_path: r.path.clone(),
    }
}

/// Runs every context over the crate and judges each field against its contract. Long
/// because it is the audit's pipeline in order: entry points per context, callbacks
/// registered in fields, the walk, reach collection, judgement, the unreached rule.
pub fn analyse_crate(mir: &mir::Mir, model: &model::Model) -> Report {
    let mut e = Engine::new(mir, model);
    let mut entries: BTreeSet<(String, usize)> = BTreeSet::new();
    for (i, b) in mir.bodies.iter().enumerate() {
        if b.closure_ty.is_some() {
            continue;
        }
        for c in &e.annots[i].contexts {
            entries.insert((c.clone(), i));
        }
    }
    // A first pass learns which functions are stored where (callbacks registered in
    // fields or statics); the real pass then resolves calls through those pointers.
    {
        let mut pending: Vec<(String, usize)> = entries.iter().cloned().collect();
        let mut seen: BTreeSet<(String, usize)> = BTreeSet::new();
        while let Some((ctx, id)) = pending.pop() {
            if !seen.insert((ctx.clone(), id)) {
                continue;
            }
            let s =
                e.analyse(id, &BTreeSet::new(), &vec![Default::default(); mir.bodies[id].arg_count], &BTreeMap::new());
            pending.extend(s.callbacks.iter().cloned());
        }
        if !e.field_callables.borrow().is_empty() {
            e.reset_memo();
        }
    }
    let mut done: BTreeSet<(String, usize)> = BTreeSet::new();
    let mut reaches: BTreeSet<Reach> = BTreeSet::new();
    let mut unresolved: BTreeMap<String, Unresolved> = BTreeMap::new();
    let mut function_contexts: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    let mut call_graph: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    let mut contexts: BTreeMap<String, Vec<String>> = BTreeMap::new();
    let mut visited: BTreeSet<usize> = BTreeSet::new();
    // Callbacks registered in a context become entries of their own; bound: each
    // (context, function) pair once.
    while let Some((ctx, id)) = entries.iter().find(|x| !done.contains(*x)).cloned() {
        done.insert((ctx.clone(), id));
        contexts.entry(ctx.clone()).or_default().push(format!("{} at {}", e.labels[id], mir.bodies[id].site));
        let s = e.analyse(id, &BTreeSet::new(), &vec![Default::default(); mir.bodies[id].arg_count], &BTreeMap::new());
        for a in &s.accesses {
            reaches.insert(reach_of(&ctx, a));
        }
        for r in &s.rmws {
            reaches.insert(rmw_reach(&ctx, r));
        }
        for u in &s.unfollowed {
            let ent = unresolved.entry(u.call.clone()).or_insert_with(|| Unresolved {
                call: u.call.clone(),
                from: BTreeSet::new(),
                contexts: BTreeSet::new(),
                sites: BTreeSet::new(),
                why: u.why.clone(),
            });
            ent.from.insert(u.function.clone());
            ent.contexts.insert(ctx.clone());
            ent.sites.insert(u.site.to_string());
        }
        for (a, b) in &s.calls {
            call_graph.entry(strip_note(a).to_string()).or_default().insert(b.clone());
        }
        for v in &s.visited {
            function_contexts.entry(e.labels[*v].clone()).or_default().insert(ctx.clone());
        }
        visited.extend(s.visited.iter().copied());
        for cb in &s.callbacks {
            entries.insert(cb.clone());
        }
    }
    // Functions no context reaches that touch shared state.
    let mut unreached: Vec<(usize, Vec<analyse::Acc>, BTreeSet<usize>)> = Vec::new();
    for (i, b) in mir.bodies.iter().enumerate() {
        if visited.contains(&i) || b.closure_ty.is_some() {
            continue;
        }
        let s = e.analyse(i, &BTreeSet::new(), &vec![Default::default(); b.arg_count], &BTreeMap::new());
        if !s.accesses.is_empty() {
            unreached.push((i, s.accesses.clone(), s.visited.clone()));
        }
    }
    let mut violations = Vec::new();
    let roots: Vec<&(usize, Vec<analyse::Acc>, BTreeSet<usize>)> =
        unreached.iter().filter(|(i, _, _)| !unreached.iter().any(|(j, _, v)| j != i && v.contains(i))).collect();
    for (i, accs, _) in roots {
        let fields: BTreeSet<String> = accs.iter().map(|a| a.loc.clone()).collect();
        let name = &e.labels[*i];
        violations.push(Violation {
            field: fields.iter().next().cloned().unwrap_or_default(),
            rule: "unreached".into(),
            message: format!(
                "`{name}` (at {}) touches {} but no declared context reaches it: declare its context",
                mir.bodies[*i].site,
                fields.iter().map(|f| format!("`{f}`")).collect::<Vec<_>>().join(", ")
            ),
            contexts: vec![],
            evidence: accs.iter().take(4).map(|a| reach_of("(none)", a)).collect(),
        });
    }
    let reaches: Vec<Reach> = reaches.into_iter().collect();
    let (fields, vs) = judge(model, &reaches);
    violations.extend(vs);
    violations.sort();
    Report {
        contexts,
        fields,
        reaches,
        violations,
        unresolved: unresolved.into_values().collect(),
        function_contexts,
        call_graph,
    }
}

fn contract_of<'m>(model: &'m model::Model, loc: &str) -> Option<&'m model::FieldDef> {
    if let Some(n) = loc.strip_prefix("static ") {
        return model.statics.get(n);
    }
    let (o, f) = loc.split_once('.')?;
    model.structs.get(o)?.fields.iter().find(|x| x.name == f)
}

/// The lock a `lock(L)` contract on `loc` means: the field `L` of the same owner (or the
/// static `L`), else the field itself.
fn lock_id(model: &model::Model, loc: &str, l: &str) -> String {
    if let Some((o, _)) = loc.split_once('.') {
        if model.structs.get(o).is_some_and(|s| s.fields.iter().any(|f| f.name == l)) {
            return format!("{o}.{l}");
        }
    } else if model.statics.contains_key(l) {
        return format!("static {l}");
    }
    loc.to_string()
}

fn ctxs<'r>(rs: impl Iterator<Item = &'r Reach>) -> Vec<String> {
    rs.map(|r| r.context.clone()).collect::<BTreeSet<_>>().into_iter().collect()
}

/// One example per context, site and kind; a plain load or store is left out where a
/// read-modify-write at the same place already shows it.
fn evidence(rs: &[&Reach]) -> Vec<Reach> {
    let mut seen = BTreeSet::new();
    let rmw_at: BTreeSet<(String, String)> =
        rs.iter().filter(|r| r.access.rmw()).map(|r| (r.context.clone(), r.site.clone())).collect();
    rs.iter()
        .filter(|r| r.access.rmw() || !rmw_at.contains(&(r.context.clone(), r.site.clone())))
        .filter(|r| seen.insert((r.context.clone(), r.site.clone(), r.access.clone())))
        .map(|r| (*r).clone())
        .collect()
}

fn disjoint(a: &[String], b: &[String]) -> bool {
    !a.iter().any(|x| b.contains(x))
}

/// One field's reaches from every context, split the ways the rules look at them.
struct FieldReaches<'a> {
    name: &'a str,
    contract: Option<Contract>,
    /// Reaches from contexts other than probe.
    live: Vec<&'a Reach>,
    writes: Vec<&'a Reach>,
    rmws: Vec<&'a Reach>,
}

fn violation(f: &FieldReaches, rule: &str, message: String, ev: Vec<&Reach>) -> Violation {
    Violation {
        field: f.name.to_string(),
        rule: rule.into(),
        message,
        contexts: ctxs(ev.iter().copied()),
        evidence: evidence(&ev),
    }
}

fn judge(model: &model::Model, reaches: &[Reach]) -> (Vec<FieldSummary>, Vec<Violation>) {
    let mut names: BTreeSet<String> = BTreeSet::new();
    for s in model.structs.values().filter(|s| s.contract_bearing) {
        for f in &s.fields {
            names.insert(f.id());
        }
    }
    for f in model.statics.values() {
        names.insert(f.id());
    }
    names.extend(reaches.iter().map(|r| r.field.clone()));
    let mut out = Vec::new();
    let mut vs = Vec::new();
    for name in &names {
        let def = contract_of(model, name);
        let all: Vec<&Reach> = reaches.iter().filter(|r| &r.field == name).collect();
        let live: Vec<&Reach> = all.iter().copied().filter(|r| r.context != INIT_CONTEXT).collect();
        if def.is_none_or(|d| d.contract.is_none()) && live.is_empty() {
            // Declared without a contract but touched by no context (or only at probe).
            if let Some(d) = def {
                if all.is_empty() && !model.structs.get(&d.owner).is_some_and(|s| s.contract_bearing) {
                    continue;
                }
            }
        }
        let f = FieldReaches {
            name,
            contract: def.and_then(|d| d.contract.clone()),
            writes: live.iter().copied().filter(|r| r.access.writes()).collect(),
            rmws: live.iter().copied().filter(|r| r.access.rmw()).collect(),
            live,
        };
        vs.extend(racing_writes(&f));
        vs.extend(lost_update(&f));
        vs.extend(contract_kept(model, &f));
        out.push(summary(model, &f, def.map(|d| d.site.to_string()).unwrap_or_default()));
    }
    (out, vs)
}

/// Plain writes from two contexts that share no lock (a field behind a lock is the lock
/// rule's business).
fn racing_writes(f: &FieldReaches) -> Option<Violation> {
    let plain_w: Vec<&Reach> = f.writes.iter().copied().filter(|r| r.access.plain()).collect();
    let racing: Vec<&Reach> = plain_w
        .iter()
        .copied()
        .filter(|a| plain_w.iter().any(|b| b.context != a.context && disjoint(&a.locks_held, &b.locks_held)))
        .collect();
    if racing.is_empty() || matches!(f.contract, Some(Contract::Lock(_))) {
        return None;
    }
    let cs = ctxs(racing.iter().copied());
    let message = format!(
        "`{}` is written from {} contexts ({}) without a common lock or atomic",
        f.name,
        cs.len(),
        cs.join(", ")
    );
    Some(violation(f, "multi-context-write", message, racing))
}

/// A read-modify-write in one context while another writes: a lost update.
fn lost_update(f: &FieldReaches) -> Option<Violation> {
    let lost: Vec<&Reach> = f
        .rmws
        .iter()
        .copied()
        .filter(|r| f.writes.iter().any(|w| w.context != r.context && disjoint(&r.locks_held, &w.locks_held)))
        .collect();
    if lost.is_empty() {
        return None;
    }
    let mut others: Vec<&Reach> = lost.clone();
    for w in &f.writes {
        if lost.iter().any(|r| r.context != w.context) && !others.iter().any(|o| o.context == w.context) {
            others.push(w);
        }
    }
    let plain = lost.iter().any(|r| r.access == AccessKind::PlainRmw);
    let shape = if plain {
        "a plain read-modify-write"
    } else if lost.iter().any(|r| r.access == AccessKind::IgnoredCas) {
        "a compare-exchange whose failure is ignored"
    } else {
        "an atomic load followed by an atomic store"
    };
    let message = format!(
        "{shape} of `{}` in {} while {} also writes it: a lost update",
        f.name,
        ctxs(lost.iter().copied()).join(", "),
        ctxs(others.iter().copied()).join(" and ")
    );
    Some(violation(f, if plain { "shared-plain-rmw" } else { "lost-update" }, message, others))
}

/// What the declared contract promises, against what the contexts do.
fn contract_kept(model: &model::Model, f: &FieldReaches) -> Option<Violation> {
    let name = f.name;
    match &f.contract {
        Some(Contract::Writers(declared)) => {
            let extra: Vec<&Reach> = f.writes.iter().copied().filter(|r| !declared.contains(&r.context)).collect();
            (!extra.is_empty()).then(|| {
                let message = format!(
                    "contract says writers({}) but {} also writes `{name}`",
                    declared.iter().cloned().collect::<Vec<_>>().join(", "),
                    ctxs(extra.iter().copied()).join(", ")
                );
                violation(f, "contract-contradicted", message, extra)
            })
        }
        Some(Contract::Atomic) => {
            let plain: Vec<&Reach> = f.live.iter().copied().filter(|r| r.access.plain()).collect();
            (!plain.is_empty()).then(|| {
                let message = format!("contract says atomic but `{name}` has plain accesses");
                violation(f, "contract-contradicted", message, plain)
            })
        }
        Some(Contract::Owner(owner)) => {
            let others: Vec<&Reach> = f.live.iter().copied().filter(|r| &r.context != owner).collect();
            (!others.is_empty()).then(|| {
                let message = format!("contract says owner({owner}) but other contexts use `{name}`");
                violation(f, "contract-contradicted", message, others)
            })
        }
        Some(Contract::Init) => (!f.writes.is_empty()).then(|| {
            let message = format!("contract says init but `{name}` is written after {INIT_CONTEXT}");
            violation(f, "contract-contradicted", message, f.writes.clone())
        }),
        Some(Contract::Lock(l)) => {
            let id = lock_id(model, name, l);
            let bypass: Vec<&Reach> = f.live.iter().copied().filter(|r| !r.locks_held.contains(&id)).collect();
            (!bypass.is_empty()).then(|| {
                let message = format!("`{name}` is protected by `{id}` but accessed without it");
                violation(f, "lock-bypass", message, bypass)
            })
        }
        None => (!f.live.is_empty()).then(|| {
            let message = format!(
                "`{name}` is shared state (reached from {}) but states no contract: add a `contract:` line",
                ctxs(f.live.iter().copied()).join(", ")
            );
            violation(f, "missing-contract", message, f.live.clone())
        }),
    }
}

/// The field's line in the summary. Its writers are the contexts that write without the
/// field's lock or an atomic operation (what "single-writer" is about).
fn summary(model: &model::Model, f: &FieldReaches, declared_at: String) -> FieldSummary {
    let guard = match &f.contract {
        Some(Contract::Lock(l)) => Some(lock_id(model, f.name, l)),
        _ => None,
    };
    let plain_writers: BTreeSet<String> = f
        .writes
        .iter()
        .filter(|r| r.access.plain() && guard.as_ref().is_none_or(|g| !r.locks_held.contains(g)))
        .map(|r| r.context.clone())
        .collect();
    FieldSummary {
        field: f.name.to_string(),
        contract: f.contract.clone(),
        declared_at,
        writers: plain_writers,
        readers: f.live.iter().filter(|r| !r.access.writes()).map(|r| r.context.clone()).collect(),
        rmw_contexts: f.rmws.iter().map(|r| r.context.clone()).collect(),
    }
}

/// What a feature changes against the parent variant.
#[derive(Clone, Debug, Serialize, Default)]
pub struct Delta {
    pub parent: String,
    /// Functions whose reaching contexts changed: (function, before, after).
    pub moved_functions: Vec<(String, BTreeSet<String>, BTreeSet<String>)>,
    /// Writers that moved: (field, before, after, still single-writer).
    pub moved_writers: Vec<(String, BTreeSet<String>, BTreeSet<String>, bool)>,
    /// (context, field) pairs reached now and not before.
    pub newly_reached: Vec<(String, String)>,
    pub new_violations: Vec<String>,
    pub fixed_violations: Vec<String>,
    /// Shared fields declared now and not before, and the other way.
    pub added_fields: Vec<String>,
    pub removed_fields: Vec<String>,
    /// Functions some context reaches now and none did before (with those contexts), and
    /// the other way.
    pub added_functions: Vec<(String, BTreeSet<String>)>,
    pub removed_functions: Vec<(String, BTreeSet<String>)>,
    /// A field two contexts now both reach and did not before: (field, context, context).
    pub newly_shared: Vec<(String, String, String)>,
    /// Platform operations (SDIO transfers, wake-ups, work queueing, waits) whose contexts
    /// changed, appeared or went: (operation, before, after).
    pub platform_ops: Vec<(String, BTreeSet<String>, BTreeSet<String>)>,
}

/// A call into the platform layer (`<P as Platform>::sdio_read_ctrl`).
fn is_platform_op(name: &str) -> bool {
    name.contains(" as Platform>::") || name.contains(" as Memory>::")
}

/// Pairs of distinct contexts (probe aside: it runs alone) that reach each field.
fn shared_pairs(r: &Report) -> BTreeSet<(String, String, String)> {
    let mut by_field: BTreeMap<&str, BTreeSet<&str>> = BTreeMap::new();
    for x in r.reaches.iter().filter(|x| x.context != INIT_CONTEXT) {
        by_field.entry(&x.field).or_default().insert(&x.context);
    }
    let mut out = BTreeSet::new();
    for (field, cs) in by_field {
        for a in &cs {
            for b in cs.iter().filter(|b| a < *b) {
                out.insert((field.to_string(), a.to_string(), b.to_string()));
            }
        }
    }
    out
}

fn violation_key(v: &Violation) -> String {
    format!("{} {}: {}", v.field, v.rule, v.message)
}

pub fn delta(parent_name: &str, parent: &Report, child: &Report) -> Delta {
    let mut d = Delta { parent: parent_name.to_string(), ..Default::default() };
    let empty = BTreeSet::new();
    let names: BTreeSet<&String> = parent.function_contexts.keys().chain(child.function_contexts.keys()).collect();
    for f in names {
        let before = parent.function_contexts.get(f).unwrap_or(&empty);
        let after = child.function_contexts.get(f).unwrap_or(&empty);
        if before == after {
            continue;
        }
        if is_platform_op(f) {
            d.platform_ops.push((f.clone(), before.clone(), after.clone()));
        } else if before.is_empty() {
            d.added_functions.push((f.clone(), after.clone()));
        } else if after.is_empty() {
            d.removed_functions.push((f.clone(), before.clone()));
        } else {
            d.moved_functions.push((f.clone(), before.clone(), after.clone()));
        }
    }
    // Platform operations are calls out of the crate: their contexts are the callers'.
    let ops = |r: &Report| -> BTreeMap<String, BTreeSet<String>> {
        r.unresolved.iter().filter(|u| is_platform_op(&u.call)).map(|u| (u.call.clone(), u.contexts.clone())).collect()
    };
    let (po, co) = (ops(parent), ops(child));
    for op in po.keys().chain(co.keys()).collect::<BTreeSet<_>>() {
        let (before, after) = (po.get(op).unwrap_or(&empty), co.get(op).unwrap_or(&empty));
        if before != after {
            d.platform_ops.push((op.clone(), before.clone(), after.clone()));
        }
    }
    let fields = |r: &Report| -> BTreeSet<String> { r.fields.iter().map(|f| f.field.clone()).collect() };
    let (pf, cf) = (fields(parent), fields(child));
    d.added_fields = cf.difference(&pf).cloned().collect();
    d.removed_fields = pf.difference(&cf).cloned().collect();
    d.newly_shared = shared_pairs(child).difference(&shared_pairs(parent)).cloned().collect();
    for cf in &child.fields {
        if let Some(pf) = parent.fields.iter().find(|p| p.field == cf.field) {
            if pf.writers != cf.writers && !pf.writers.is_empty() && !cf.writers.is_empty() {
                d.moved_writers.push((cf.field.clone(), pf.writers.clone(), cf.writers.clone(), cf.writers.len() == 1));
            }
        }
    }
    let before: BTreeSet<(String, String)> =
        parent.reaches.iter().map(|r| (r.context.clone(), r.field.clone())).collect();
    let after: BTreeSet<(String, String)> =
        child.reaches.iter().map(|r| (r.context.clone(), r.field.clone())).collect();
    d.newly_reached = after.difference(&before).cloned().collect();
    let pv: BTreeSet<String> = parent.violations.iter().map(violation_key).collect();
    let cv: BTreeSet<String> = child.violations.iter().map(violation_key).collect();
    d.new_violations = cv.difference(&pv).cloned().collect();
    d.fixed_violations = pv.difference(&cv).cloned().collect();
    d
}

impl Delta {
    /// Nothing changed against the parent.
    pub fn is_empty(&self) -> bool {
        self.moved_functions.is_empty()
            && self.moved_writers.is_empty()
            && self.new_violations.is_empty()
            && self.fixed_violations.is_empty()
            && self.added_fields.is_empty()
            && self.removed_fields.is_empty()
            && self.added_functions.is_empty()
            && self.removed_functions.is_empty()
            && self.newly_shared.is_empty()
            && self.platform_ops.is_empty()
    }
}

fn set(s: &BTreeSet<String>) -> String {
    s.iter().cloned().collect::<Vec<_>>().join(", ")
}

/// The audit as Markdown, for packages and PRs. Long because it writes every section of
/// AUDIT.md in order.
pub fn markdown(variant: &str, r: &Report, d: Option<&Delta>) -> String {
    let mut s = format!("# Contract audit: variant `{variant}`\n\n");
    s += &format!(
        "**{}**: {} violation(s), {} shared fields, {} contexts ({}).\n\n",
        if r.clean() { "PASS" } else { "FAIL" },
        r.violations.len(),
        r.fields.len(),
        r.contexts.len(),
        r.contexts.keys().cloned().collect::<Vec<_>>().join(", ")
    );
    if !r.violations.is_empty() {
        s += "## Violations\n\n";
        for v in &r.violations {
            s += &format!("- `{}` ({}): {}\n", v.field, v.rule, v.message);
            for e in v.evidence.iter().take(4) {
                s += &format!(
                    "  - {} in `{}` at {}: `{}`\n",
                    e.access.label(),
                    e.context,
                    e.site,
                    e.call_path.join(" -> ")
                );
            }
        }
        s += "\n";
    }
    s += "## Shared fields\n\n| field | contract | writers | readers | plain RMW in |\n| --- | --- | --- | --- | --- |\n";
    for f in &r.fields {
        s += &format!(
            "| `{}` | {} | {} | {} | {} |\n",
            f.field,
            f.contract.as_ref().map_or("(none)".to_string(), |c| c.to_string()),
            set(&f.writers),
            set(&f.readers),
            set(&f.rmw_contexts)
        );
    }
    if let Some(d) = d {
        s += &format!("\n## Against `{}`\n\n", d.parent);
        if d.is_empty() {
            s += "No context changes.\n";
        }
        for f in &d.added_fields {
            s += &format!("- field added: `{f}`\n");
        }
        for f in &d.removed_fields {
            s += &format!("- field removed: `{f}`\n");
        }
        for (f, c) in &d.added_functions {
            s += &format!("- function added: `{f}` in {{{}}}\n", set(c));
        }
        for (f, c) in &d.removed_functions {
            s += &format!("- function removed: `{f}` was in {{{}}}\n", set(c));
        }
        for (f, a, b) in &d.platform_ops {
            s += &format!("- platform operation: `{f}` ran in {{{}}}, now in {{{}}}\n", set(a), set(b));
        }
        for (f, a, b) in &d.newly_shared {
            s += &format!("- newly shared: `{f}` between {a} and {b}\n");
        }
        for (f, a, b) in &d.moved_functions {
            s += &format!("- call moved: `{f}` ran in {{{}}}, now in {{{}}}\n", set(a), set(b));
        }
        for (f, a, b, single) in &d.moved_writers {
            s += &format!(
                "- writer moved: `{f}` written by {{{}}}, now by {{{}}}{}\n",
                set(a),
                set(b),
                if *single { " (still single-writer)" } else { "" }
            );
        }
        for v in &d.new_violations {
            s += &format!("- new violation: {v}\n");
        }
        for v in &d.fixed_violations {
            s += &format!("- fixed: {v}\n");
        }
    }
    if !r.unresolved.is_empty() {
        s += "\n## Calls not followed\n\nDefined outside the crate and handed shared state (the platform layer, the core library):\n\n";
        for u in &r.unresolved {
            let sites: Vec<&String> = u.sites.iter().take(3).collect();
            let more = if u.sites.len() > 3 { format!(" and {} more", u.sites.len() - 3) } else { String::new() };
            s += &format!(
                "- `{}` at {}{more}: {}\n",
                u.call,
                sites.iter().map(|x| x.as_str()).collect::<Vec<_>>().join(", "),
                u.why
            );
        }
    }
    s
}

#[cfg(test)]
#[cfg(test)]
mod tests;
