//! The contract audit: from a variant's materialised sources, every shared field each
//! execution context reaches at any call depth, how (plain load, store, read-modify-write,
//! atomic with its ordering, under which lock), and the verdicts the seed's "Phase 6
//! contract analysis miss" asks for.
//!
//! Conventions read from source (see the driver's crate docs): `/// contract: ...` above a
//! field, `/// context: NAME` in the docs of an entry point. A function handed to a call
//! whose name contains `queue_work` or `schedule_work` runs in the context of its own
//! `context:` line, or in a context named after it.

use crate::error::{BenchError, Result};
use serde::Serialize;
use std::collections::{BTreeMap, BTreeSet, VecDeque};
use syn::spanned::Spanned;
use syn::visit::Visit;
use syn::{Expr, Member};

/// A source file to audit.
pub struct Source {
    pub name: String,
    pub text: String,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
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

/// How a field's type shares it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum FieldKind {
    /// `SingleWriter`: get/set/add are plain load/store/read-modify-write.
    Plain,
    Atomic,
    /// `SpinLock<T>`: the data is reached through `lock()`.
    Locked,
    Owned,
    /// Any other type: reads, assignments and compound assignments.
    Raw,
}

#[derive(Clone, Debug)]
struct FieldInfo {
    contract: Option<Contract>,
    kind: FieldKind,
    site: String,
}

/// What one access does.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum AccessKind {
    PlainLoad,
    PlainStore,
    /// A load and a store of the field in one function: the lost-update shape.
    PlainRmw,
    Atomic {
        op: String,
        ordering: String,
    },
    /// Through the guard of the field's own spinlock.
    UnderOwnLock,
    OwnedUse,
}

impl AccessKind {
    fn writes(&self) -> bool {
        matches!(self, AccessKind::PlainStore | AccessKind::PlainRmw)
    }
    pub fn label(&self) -> String {
        match self {
            AccessKind::PlainLoad => "plain load".into(),
            AccessKind::PlainStore => "plain store".into(),
            AccessKind::PlainRmw => "plain read-modify-write".into(),
            AccessKind::Atomic { op, ordering } => format!("atomic {op} ({ordering})"),
            AccessKind::UnderOwnLock => "under its lock".into(),
            AccessKind::OwnedUse => "owned use".into(),
        }
    }
}

#[derive(Clone, Debug)]
struct FnInfo {
    name: String,
    self_ty: Option<String>,
    contexts: Vec<String>,
    file: String,
    body: syn::Block,
    events: Vec<Ev>,
}

#[derive(Clone, Debug)]
enum Ev {
    Access { field: String, kind: AccessKind, line: usize, held: Vec<String> },
    Call { target: Target, text: String, held: Vec<String> },
    Handoff { function: String },
}

#[derive(Clone, Debug)]
enum Target {
    Method(String),
    Path(Vec<String>),
}

/// One access as a context reaches it.
#[derive(Clone, Debug, Serialize, PartialEq, Eq, PartialOrd, Ord)]
pub struct Reach {
    pub context: String,
    pub field: String,
    pub access: AccessKind,
    pub function: String,
    pub site: String,
    pub locks_held: Vec<String>,
    /// Entry point first, the accessing function last.
    pub call_path: Vec<String>,
}

#[derive(Clone, Debug, Serialize, PartialEq, Eq, PartialOrd, Ord)]
pub struct Violation {
    pub field: String,
    pub rule: String,
    pub message: String,
    pub contexts: Vec<String>,
    /// Example accesses with their call paths.
    pub evidence: Vec<Reach>,
}

#[derive(Clone, Debug, Serialize)]
pub struct FieldSummary {
    pub field: String,
    pub contract: Option<Contract>,
    pub declared_at: String,
    pub writers: BTreeSet<String>,
    pub readers: BTreeSet<String>,
    pub rmw_contexts: BTreeSet<String>,
}

#[derive(Clone, Debug, Serialize)]
pub struct Unresolved {
    pub call: String,
    pub from: BTreeSet<String>,
}

#[derive(Clone, Debug, Serialize)]
pub struct Report {
    pub contexts: BTreeMap<String, Vec<String>>,
    pub fields: Vec<FieldSummary>,
    pub reaches: Vec<Reach>,
    pub violations: Vec<Violation>,
    /// Calls the audit did not follow (defined outside the audited sources).
    pub unresolved: Vec<Unresolved>,
    /// Which contexts reach each function.
    pub function_contexts: BTreeMap<String, BTreeSet<String>>,
    /// Resolved calls: caller -> callees.
    pub call_graph: BTreeMap<String, BTreeSet<String>>,
}

impl Report {
    /// Every call path (no function twice) from `context`'s entry points to `function`.
    pub fn all_paths(&self, context: &str, function: &str) -> Vec<Vec<String>> {
        let mut out = Vec::new();
        let empty = BTreeSet::new();
        for entry in self.contexts.get(context).into_iter().flatten() {
            let mut stack = vec![(entry.clone(), vec![entry.clone()])];
            // Bound: simple paths only; a driver's call graph is small.
            while let Some((f, path)) = stack.pop() {
                if f == function {
                    out.push(path.clone());
                }
                for callee in self.call_graph.get(&f).unwrap_or(&empty).iter().rev() {
                    if !path.contains(callee) && out.len() < 10_000 {
                        let mut p = path.clone();
                        p.push(callee.clone());
                        stack.push((callee.clone(), p));
                    }
                }
            }
        }
        out.sort();
        out
    }
}

impl Report {
    pub fn clean(&self) -> bool {
        self.violations.is_empty()
    }
}

fn doc_lines(attrs: &[syn::Attribute]) -> Vec<String> {
    attrs
        .iter()
        .filter(|a| a.path().is_ident("doc"))
        .filter_map(|a| match &a.meta {
            syn::Meta::NameValue(nv) => match &nv.value {
                Expr::Lit(syn::ExprLit { lit: syn::Lit::Str(s), .. }) => Some(s.value().trim().to_string()),
                _ => None,
            },
            _ => None,
        })
        .collect()
}

fn parse_contract(line: &str, at: &str) -> Result<Contract> {
    let line = line.trim();
    let bad = || {
        BenchError::usage(format!("{at}: cannot read `contract: {line}`"))
            .hint("write one of: writers(ctx, ...), atomic, lock(name), owner(ctx), init")
    };
    let line = line.trim();
    let args = |s: &str| -> Option<Vec<String>> {
        let inner = s.split_once('(')?.1.strip_suffix(')')?;
        Some(inner.split(',').map(|x| x.trim().to_string()).filter(|x| !x.is_empty()).collect())
    };
    Ok(match line {
        "atomic" => Contract::Atomic,
        "init" => Contract::Init,
        l if l.starts_with("writers(") => Contract::Writers(args(l).ok_or_else(bad)?.into_iter().collect()),
        l if l.starts_with("lock(") => Contract::Lock(args(l).ok_or_else(bad)?.into_iter().next().ok_or_else(bad)?),
        l if l.starts_with("owner(") => Contract::Owner(args(l).ok_or_else(bad)?.into_iter().next().ok_or_else(bad)?),
        _ => return Err(bad()),
    })
}

fn type_kind(ty: &syn::Type) -> FieldKind {
    match ty {
        syn::Type::Array(a) => type_kind(&a.elem),
        syn::Type::Path(p) => match p.path.segments.last().map(|s| s.ident.to_string()).as_deref() {
            Some("SingleWriter") => FieldKind::Plain,
            Some("Atomic") | Some("AtomicI32") | Some("AtomicU32") | Some("AtomicUsize") | Some("AtomicBool") => {
                FieldKind::Atomic
            }
            Some("SpinLock") | Some("Mutex") => FieldKind::Locked,
            Some("Owned") => FieldKind::Owned,
            _ => FieldKind::Raw,
        },
        _ => FieldKind::Raw,
    }
}

struct Collector<'a> {
    file: &'a str,
    fields: BTreeMap<String, FieldInfo>,
    fns: Vec<FnInfo>,
    impl_ty: Option<String>,
    error: Option<BenchError>,
}

impl<'ast> Visit<'ast> for Collector<'_> {
    fn visit_item_struct(&mut self, s: &'ast syn::ItemStruct) {
        if let syn::Fields::Named(named) = &s.fields {
            let any_contract =
                named.named.iter().any(|f| doc_lines(&f.attrs).iter().any(|l| l.starts_with("contract:")));
            if !any_contract {
                return;
            }
            for f in &named.named {
                let name = f.ident.as_ref().map(|i| i.to_string()).unwrap_or_default();
                let site = format!("{}:{}", self.file, f.span().start().line);
                let mut contract = None;
                for l in doc_lines(&f.attrs) {
                    if let Some(rest) = l.strip_prefix("contract:") {
                        match parse_contract(rest, &site) {
                            Ok(c) => contract = Some(c),
                            Err(e) => {
                                self.error.get_or_insert(e);
                            }
                        }
                    }
                }
                self.fields.insert(name, FieldInfo { contract, kind: type_kind(&f.ty), site });
            }
        }
    }

    fn visit_item_impl(&mut self, i: &'ast syn::ItemImpl) {
        let ty = match &*i.self_ty {
            syn::Type::Path(p) => p.path.segments.last().map(|s| s.ident.to_string()),
            _ => None,
        };
        let saved = self.impl_ty.replace(ty.unwrap_or_default());
        syn::visit::visit_item_impl(self, i);
        self.impl_ty = saved;
    }

    fn visit_impl_item_fn(&mut self, f: &'ast syn::ImplItemFn) {
        self.add_fn(&f.sig, &f.attrs, &f.block, self.impl_ty.clone());
    }

    fn visit_item_fn(&mut self, f: &'ast syn::ItemFn) {
        self.add_fn(&f.sig, &f.attrs, &f.block, None);
    }

    fn visit_trait_item_fn(&mut self, f: &'ast syn::TraitItemFn) {
        if let Some(body) = &f.default {
            self.add_fn(&f.sig, &f.attrs, body, None);
        }
    }
}

impl Collector<'_> {
    fn add_fn(&mut self, sig: &syn::Signature, attrs: &[syn::Attribute], body: &syn::Block, self_ty: Option<String>) {
        let contexts = doc_lines(attrs)
            .iter()
            .filter_map(|l| l.strip_prefix("context:"))
            .flat_map(|c| c.split(',').map(|x| x.trim().to_string()).collect::<Vec<_>>())
            .filter(|c| !c.is_empty())
            .collect();
        self.fns.push(FnInfo {
            name: sig.ident.to_string(),
            self_ty,
            contexts,
            file: self.file.to_string(),
            body: body.clone(),
            events: Vec::new(),
        });
    }
}

/// The field named by an expression like `self.f`, `self.f[i]`, `(&self.f)`.
fn field_of(e: &Expr) -> Option<String> {
    match e {
        Expr::Field(f) => match &f.member {
            Member::Named(n) => Some(n.to_string()),
            Member::Unnamed(_) => None,
        },
        Expr::Index(i) => field_of(&i.expr),
        Expr::Paren(p) => field_of(&p.expr),
        Expr::Reference(r) => field_of(&r.expr),
        _ => None,
    }
}

fn ordering_of(args: &syn::punctuated::Punctuated<Expr, syn::Token![,]>) -> String {
    for a in args {
        if let Expr::Path(p) = a {
            let segs: Vec<String> = p.path.segments.iter().map(|s| s.ident.to_string()).collect();
            if segs.len() >= 2 && segs[segs.len() - 2] == "Ordering" {
                return segs.last().cloned().unwrap_or_default();
            }
        }
    }
    "unordered".into()
}

struct BodyWalker<'a> {
    /// Local closures (`let f = |..| ..`): their bodies are walked where they stand.
    closures: BTreeSet<String>,
    fields: &'a BTreeMap<String, FieldInfo>,
    lock_fields: &'a BTreeSet<String>,
    events: Vec<Ev>,
    held: Vec<String>,
    file: &'a str,
}

impl BodyWalker<'_> {
    fn line(&self, s: proc_macro2::Span) -> usize {
        s.start().line
    }
    fn access(&mut self, field: String, kind: AccessKind, line: usize) {
        self.events.push(Ev::Access { field, kind, line, held: self.held.clone() });
    }
}

impl<'ast> Visit<'ast> for BodyWalker<'_> {
    fn visit_block(&mut self, b: &'ast syn::Block) {
        let depth = self.held.len();
        for stmt in &b.stmts {
            if let syn::Stmt::Local(local) = stmt {
                if let (syn::Pat::Ident(pi), Some(init)) = (&local.pat, &local.init) {
                    if matches!(&*init.expr, Expr::Closure(_)) {
                        self.closures.insert(pi.ident.to_string());
                    }
                }
                // `let g = self.L.lock(..)` holds L for the rest of the block.
                if let Some(init) = &local.init {
                    if let Expr::MethodCall(mc) = &*init.expr {
                        if mc.method == "lock" {
                            if let Some(f) = field_of(&mc.receiver) {
                                if self.lock_fields.contains(&f) {
                                    self.held.push(f);
                                }
                            }
                        }
                    }
                }
            }
            self.visit_stmt(stmt);
        }
        self.held.truncate(depth);
    }

    fn visit_expr_method_call(&mut self, mc: &'ast syn::ExprMethodCall) {
        let line = self.line(mc.method.span());
        if let Some(f) = field_of(&mc.receiver) {
            if let Some(info) = self.fields.get(&f) {
                let m = mc.method.to_string();
                let kind = match (info.kind, m.as_str()) {
                    (FieldKind::Plain, "get") => Some(AccessKind::PlainLoad),
                    (FieldKind::Plain, "set") => Some(AccessKind::PlainStore),
                    (FieldKind::Plain, "add") => Some(AccessKind::PlainRmw),
                    (FieldKind::Atomic, op) => {
                        Some(AccessKind::Atomic { op: op.to_string(), ordering: ordering_of(&mc.args) })
                    }
                    (FieldKind::Locked, "lock") => Some(AccessKind::UnderOwnLock),
                    (FieldKind::Owned, _) => Some(AccessKind::OwnedUse),
                    _ => None,
                };
                if let Some(kind) = kind {
                    self.access(f, kind, line);
                    for a in &mc.args {
                        self.visit_expr(a);
                    }
                    return;
                }
            }
        }
        // Handing a function to a work queue.
        let m = mc.method.to_string();
        if m.contains("queue_work") || m.contains("schedule_work") {
            for a in &mc.args {
                if let Expr::Path(p) = a {
                    if let Some(last) = p.path.segments.last() {
                        self.events.push(Ev::Handoff { function: last.ident.to_string() });
                    }
                }
            }
        }
        self.events.push(Ev::Call {
            target: Target::Method(m.clone()),
            text: format!(".{m}()"),
            held: self.held.clone(),
        });
        syn::visit::visit_expr_method_call(self, mc);
    }

    fn visit_expr_call(&mut self, c: &'ast syn::ExprCall) {
        if let Expr::Path(p) = &*c.func {
            let segs: Vec<String> = p.path.segments.iter().map(|s| s.ident.to_string()).collect();
            let name = segs.last().cloned().unwrap_or_default();
            if name.contains("queue_work") || name.contains("schedule_work") {
                for a in &c.args {
                    if let Expr::Path(ap) = a {
                        if let Some(last) = ap.path.segments.last() {
                            self.events.push(Ev::Handoff { function: last.ident.to_string() });
                        }
                    }
                }
            }
            let constructor = name.chars().next().is_some_and(|c| c.is_uppercase());
            if !constructor && !self.closures.contains(&name) {
                self.events.push(Ev::Call {
                    text: format!("{}()", segs.join("::")),
                    target: Target::Path(segs),
                    held: self.held.clone(),
                });
            }
        }
        syn::visit::visit_expr_call(self, c);
    }

    fn visit_expr_assign(&mut self, a: &'ast syn::ExprAssign) {
        if let Some(f) = field_of(&a.left) {
            if self.fields.contains_key(&f) {
                let line = self.line(a.left.span());
                self.access(f, AccessKind::PlainStore, line);
                self.visit_expr(&a.right);
                return;
            }
        }
        syn::visit::visit_expr_assign(self, a);
    }

    fn visit_expr_binary(&mut self, b: &'ast syn::ExprBinary) {
        use syn::BinOp::*;
        let compound = matches!(
            b.op,
            AddAssign(_)
                | SubAssign(_)
                | MulAssign(_)
                | DivAssign(_)
                | RemAssign(_)
                | BitXorAssign(_)
                | BitAndAssign(_)
                | BitOrAssign(_)
                | ShlAssign(_)
                | ShrAssign(_)
        );
        if compound {
            if let Some(f) = field_of(&b.left) {
                if self.fields.contains_key(&f) {
                    let line = self.line(b.left.span());
                    self.access(f, AccessKind::PlainRmw, line);
                    self.visit_expr(&b.right);
                    return;
                }
            }
        }
        syn::visit::visit_expr_binary(self, b);
    }

    fn visit_expr_field(&mut self, e: &'ast syn::ExprField) {
        if let Member::Named(n) = &e.member {
            let f = n.to_string();
            if let Some(info) = self.fields.get(&f) {
                if info.kind == FieldKind::Raw && info.contract != Some(Contract::Init) {
                    let line = self.line(e.span());
                    self.access(f, AccessKind::PlainLoad, line);
                }
            }
        }
        syn::visit::visit_expr_field(self, e);
    }
}

/// Audits the given sources.
pub fn run(sources: &[Source]) -> Result<Report> {
    let mut parsed = Vec::new();
    for s in sources {
        let ast = syn::parse_file(&s.text).map_err(|e| {
            let at = e.span().start();
            BenchError::usage(format!("{}:{}:{}: {e}", s.name, at.line, at.column + 1))
        })?;
        parsed.push((s, ast));
    }
    // Pass 1: fields, contracts, functions.
    let mut fields = BTreeMap::new();
    let mut fns: Vec<FnInfo> = Vec::new();
    for (s, ast) in &parsed {
        let mut c = Collector { file: &s.name, fields: BTreeMap::new(), fns: Vec::new(), impl_ty: None, error: None };
        c.visit_file(ast);
        if let Some(e) = c.error {
            return Err(e);
        }
        fields.extend(c.fields);
        fns.extend(c.fns);
    }
    let lock_fields: BTreeSet<String> = fields
        .values()
        .filter_map(|f| match &f.contract {
            Some(Contract::Lock(l)) => Some(l.clone()),
            _ => None,
        })
        .filter(|l| fields.contains_key(l))
        .collect();
    // Pass 2: events per function.
    for f in fns.iter_mut() {
        let mut w = BodyWalker {
            closures: BTreeSet::new(),
            fields: &fields,
            lock_fields: &lock_fields,
            events: Vec::new(),
            held: Vec::new(),
            file: &f.file,
        };
        w.visit_block(&f.body);
        let _ = w.file;
        // A plain load and a plain store of one field in one function: an RMW.
        let mut loads = BTreeMap::new();
        let mut stores = BTreeSet::new();
        for e in &w.events {
            if let Ev::Access { field, kind, line, .. } = e {
                match kind {
                    AccessKind::PlainLoad => {
                        loads.entry(field.clone()).or_insert(*line);
                    }
                    AccessKind::PlainStore => {
                        stores.insert(field.clone());
                    }
                    _ => {}
                }
            }
        }
        let rmw: Vec<(String, usize)> = loads.into_iter().filter(|(f, _)| stores.contains(f)).collect();
        for (field, line) in rmw {
            w.events.push(Ev::Access { field, kind: AccessKind::PlainRmw, line, held: Vec::new() });
        }
        f.events = w.events;
    }
    Ok(analyse(&fields, &fns))
}

fn fn_label(f: &FnInfo) -> String {
    match &f.self_ty {
        Some(t) if !t.is_empty() => format!("{t}::{}", f.name),
        _ => f.name.clone(),
    }
}

fn resolve(fns: &[FnInfo], caller: &FnInfo, target: &Target) -> Vec<usize> {
    match target {
        Target::Method(m) => {
            let all: Vec<usize> = (0..fns.len()).filter(|&i| &fns[i].name == m && fns[i].self_ty.is_some()).collect();
            let same: Vec<usize> = all.iter().copied().filter(|&i| fns[i].self_ty == caller.self_ty).collect();
            if same.len() == 1 {
                same
            } else {
                all
            }
        }
        Target::Path(segs) => {
            let name = segs.last().cloned().unwrap_or_default();
            // `module::f` names a free function; `Type::f` or `Self::f` an associated one.
            let qualifier_is_type =
                segs.len() >= 2 && segs[segs.len() - 2].chars().next().is_some_and(|c| c.is_uppercase());
            let ty = if qualifier_is_type {
                let t = &segs[segs.len() - 2];
                if t == "Self" {
                    caller.self_ty.clone()
                } else {
                    Some(t.clone())
                }
            } else {
                None
            };
            (0..fns.len())
                .filter(|&i| fns[i].name == name)
                .filter(|&i| match &ty {
                    Some(t) => fns[i].self_ty.as_deref() == Some(t.as_str()),
                    None => fns[i].self_ty.is_none(),
                })
                .collect()
        }
    }
}

fn analyse(fields: &BTreeMap<String, FieldInfo>, fns: &[FnInfo]) -> Report {
    // Entry points per context.
    let mut contexts: BTreeMap<String, Vec<usize>> = BTreeMap::new();
    for (i, f) in fns.iter().enumerate() {
        for c in &f.contexts {
            contexts.entry(c.clone()).or_default().push(i);
        }
    }
    for f in fns {
        for e in &f.events {
            if let Ev::Handoff { function, .. } = e {
                for (i, g) in fns.iter().enumerate() {
                    if &g.name == function && g.contexts.is_empty() {
                        contexts.entry(format!("work:{function}")).or_default().push(i);
                    }
                }
            }
        }
    }
    let mut reaches: BTreeSet<Reach> = BTreeSet::new();
    let mut unresolved: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    let mut function_contexts: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    let mut call_graph: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for (ctx, entries) in &contexts {
        // Breadth first: the first path found to a function is a shortest one.
        let mut seen: BTreeSet<(usize, Vec<String>)> = BTreeSet::new();
        let mut queue: VecDeque<(usize, Vec<String>, Vec<usize>)> =
            entries.iter().map(|&i| (i, Vec::new(), vec![i])).collect();
        while let Some((i, held_in, path)) = queue.pop_front() {
            if !seen.insert((i, held_in.clone())) {
                continue;
            }
            let f = &fns[i];
            function_contexts.entry(fn_label(f)).or_default().insert(ctx.clone());
            for e in &f.events {
                match e {
                    Ev::Access { field, kind, line, held } => {
                        let mut locks: BTreeSet<String> = held_in.iter().cloned().collect();
                        locks.extend(held.iter().cloned());
                        reaches.insert(Reach {
                            context: ctx.clone(),
                            field: field.clone(),
                            access: kind.clone(),
                            function: fn_label(f),
                            site: format!("{}:{line}", f.file),
                            locks_held: locks.into_iter().collect(),
                            call_path: path.iter().map(|&j| fn_label(&fns[j])).collect(),
                        });
                    }
                    Ev::Call { target, text, held, .. } => {
                        let targets = resolve(fns, f, target);
                        if targets.is_empty() {
                            unresolved.entry(text.clone()).or_default().insert(fn_label(f));
                        }
                        let mut h: BTreeSet<String> = held_in.iter().cloned().collect();
                        h.extend(held.iter().cloned());
                        for t in targets {
                            call_graph.entry(fn_label(f)).or_default().insert(fn_label(&fns[t]));
                            if !path.contains(&t) {
                                let mut p = path.clone();
                                p.push(t);
                                queue.push_back((t, h.iter().cloned().collect(), p));
                            }
                        }
                    }
                    Ev::Handoff { .. } => {}
                }
            }
        }
    }
    let reaches: Vec<Reach> = reaches.into_iter().collect();
    let mut summaries = Vec::new();
    let mut violations = Vec::new();
    for (name, info) in fields {
        let of = |pred: &dyn Fn(&Reach) -> bool| -> Vec<&Reach> {
            reaches.iter().filter(|r| &r.field == name && pred(r)).collect()
        };
        let unprotected_writes = of(&|r| r.access.writes() && !lock_protects(info, r));
        let writers: BTreeSet<String> = unprotected_writes.iter().map(|r| r.context.clone()).collect();
        let readers: BTreeSet<String> = of(&|r| !r.access.writes()).iter().map(|r| r.context.clone()).collect();
        let rmw = of(&|r| r.access == AccessKind::PlainRmw && !lock_protects(info, r));
        let rmw_contexts: BTreeSet<String> = rmw.iter().map(|r| r.context.clone()).collect();
        let evidence = |rs: &[&Reach]| -> Vec<Reach> {
            // One example per context and site.
            let mut seen = BTreeSet::new();
            rs.iter().filter(|r| seen.insert((r.context.clone(), r.site.clone()))).map(|r| (*r).clone()).collect()
        };
        if writers.len() > 1 {
            violations.push(Violation {
                field: name.clone(),
                rule: "multi-context-write".into(),
                message: format!(
                    "`{name}` is written from {} contexts ({}) without a lock or atomic",
                    writers.len(),
                    writers.iter().cloned().collect::<Vec<_>>().join(", ")
                ),
                contexts: writers.iter().cloned().collect(),
                evidence: evidence(&unprotected_writes),
            });
        }
        if rmw_contexts.len() > 1 {
            violations.push(Violation {
                field: name.clone(),
                rule: "shared-plain-rmw".into(),
                message: format!(
                    "a plain read-modify-write of `{name}` is reachable from {}: a lost update",
                    rmw_contexts.iter().cloned().collect::<Vec<_>>().join(" and ")
                ),
                contexts: rmw_contexts.iter().cloned().collect(),
                evidence: evidence(&rmw),
            });
        }
        match &info.contract {
            Some(Contract::Writers(declared)) => {
                let extra: Vec<String> = writers.difference(declared).cloned().collect();
                if !extra.is_empty() {
                    let ev =
                        unprotected_writes.iter().copied().filter(|r| extra.contains(&r.context)).collect::<Vec<_>>();
                    violations.push(Violation {
                        field: name.clone(),
                        rule: "contract-contradicted".into(),
                        message: format!(
                            "contract says writers({}) but {} also writes `{name}`",
                            declared.iter().cloned().collect::<Vec<_>>().join(", "),
                            extra.join(", ")
                        ),
                        contexts: extra,
                        evidence: evidence(&ev),
                    });
                }
            }
            Some(Contract::Atomic) => {
                let plain =
                    of(&|r| matches!(r.access, AccessKind::PlainLoad | AccessKind::PlainStore | AccessKind::PlainRmw));
                if !plain.is_empty() {
                    violations.push(Violation {
                        field: name.clone(),
                        rule: "contract-contradicted".into(),
                        message: format!("contract says atomic but `{name}` has plain accesses"),
                        contexts: plain
                            .iter()
                            .map(|r| r.context.clone())
                            .collect::<BTreeSet<_>>()
                            .into_iter()
                            .collect(),
                        evidence: evidence(&plain),
                    });
                }
            }
            Some(Contract::Owner(owner)) => {
                let others = of(&|r| &r.context != owner);
                if !others.is_empty() {
                    violations.push(Violation {
                        field: name.clone(),
                        rule: "contract-contradicted".into(),
                        message: format!("contract says owner({owner}) but other contexts use `{name}`"),
                        contexts: others
                            .iter()
                            .map(|r| r.context.clone())
                            .collect::<BTreeSet<_>>()
                            .into_iter()
                            .collect(),
                        evidence: evidence(&others),
                    });
                }
            }
            Some(Contract::Init) => {
                let w = of(&|r| r.access.writes() && r.context != "probe");
                if !w.is_empty() {
                    violations.push(Violation {
                        field: name.clone(),
                        rule: "contract-contradicted".into(),
                        message: format!("contract says init but `{name}` is written after probe"),
                        contexts: w.iter().map(|r| r.context.clone()).collect::<BTreeSet<_>>().into_iter().collect(),
                        evidence: evidence(&w),
                    });
                }
            }
            Some(Contract::Lock(lock)) => {
                let bypass = of(&|r| !lock_protects(info, r));
                if !bypass.is_empty() {
                    violations.push(Violation {
                        field: name.clone(),
                        rule: "lock-bypass".into(),
                        message: format!("`{name}` is protected by `{lock}` but accessed without it"),
                        contexts: bypass
                            .iter()
                            .map(|r| r.context.clone())
                            .collect::<BTreeSet<_>>()
                            .into_iter()
                            .collect(),
                        evidence: evidence(&bypass),
                    });
                }
            }
            None => {
                if !writers.is_empty() || !readers.is_empty() {
                    violations.push(Violation {
                        field: name.clone(),
                        rule: "missing-contract".into(),
                        message: format!("`{name}` is shared but states no contract"),
                        contexts: writers.union(&readers).cloned().collect(),
                        evidence: Vec::new(),
                    });
                }
            }
        }
        summaries.push(FieldSummary {
            field: name.clone(),
            contract: info.contract.clone(),
            declared_at: info.site.clone(),
            writers,
            readers,
            rmw_contexts,
        });
    }
    violations.sort();
    Report {
        contexts: contexts.into_iter().map(|(c, es)| (c, es.iter().map(|&i| fn_label(&fns[i])).collect())).collect(),
        fields: summaries,
        reaches,
        violations,
        unresolved: unresolved.into_iter().map(|(call, from)| Unresolved { call, from }).collect(),
        function_contexts,
        call_graph,
    }
}

/// Whether the access is protected by the field's lock: its own guard (a `SpinLock`
/// field), or the named lock held at the access.
fn lock_protects(info: &FieldInfo, r: &Reach) -> bool {
    match (&info.contract, &r.access) {
        (_, AccessKind::UnderOwnLock) => true,
        (Some(Contract::Lock(l)), _) => r.locks_held.contains(l),
        _ => false,
    }
}

/// Materialises `variant` and audits it.
pub fn audit_variant(
    root: &std::path::Path,
    variants: &crate::variant::Variants,
    variant: &crate::variant::Variant,
) -> Result<Report> {
    let known = variants.driver_features.iter().cloned().chain(["sim".to_string()]).collect();
    let cfg = crate::materialise::CfgSet { enabled: variant.features.iter().cloned().collect(), known };
    let tree = crate::materialise::crate_tree(&root.join("driver").join("src"), &cfg)?;
    // The kernel entry is glue to kernel primitives, not the data path under contract.
    let sources: Vec<Source> = tree
        .into_iter()
        .filter(|o| !o.kernel_only)
        .map(|o| Source { name: o.rel_path.display().to_string(), text: o.text })
        .collect();
    run(&sources)
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
        if before != after && !before.is_empty() && !after.is_empty() {
            d.moved_functions.push((f.clone(), before.clone(), after.clone()));
        }
    }
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

fn set(s: &BTreeSet<String>) -> String {
    s.iter().cloned().collect::<Vec<_>>().join(", ")
}

/// The audit as Markdown, for packages and PRs.
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
        if d.moved_functions.is_empty()
            && d.moved_writers.is_empty()
            && d.new_violations.is_empty()
            && d.fixed_violations.is_empty()
        {
            s += "No context changes.\n";
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
        s += &format!(
            "\n## Calls not followed\n\nDefined outside the audited sources (platform and core library): {}.\n",
            r.unresolved.iter().map(|u| format!("`{}`", u.call)).collect::<Vec<_>>().join(", ")
        );
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    fn audit_fixture(name: &str, text: &str) -> Report {
        run(&[Source { name: name.into(), text: text.into() }]).unwrap()
    }

    fn rules(r: &Report, field: &str) -> Vec<String> {
        r.violations.iter().filter(|v| v.field == field).map(|v| v.rule.clone()).collect()
    }

    #[test]
    fn two_context_write() {
        let r = audit_fixture("two_context_write.rs", include_str!("../tests/fixtures/audit/two_context_write.rs"));
        assert_eq!(rules(&r, "mode"), ["multi-context-write"]);
        assert!(rules(&r, "seen").is_empty(), "one writer, one reader");
        let v = &r.violations[0];
        assert_eq!(v.contexts, ["a", "b"]);
        assert!(v.evidence.iter().any(|e| e.call_path == ["Dev::b_entry", "Dev::set_mode"]));
    }

    #[test]
    fn read_modify_write() {
        let r = audit_fixture("rmw.rs", include_str!("../tests/fixtures/audit/rmw.rs"));
        assert!(rules(&r, "plain").contains(&"shared-plain-rmw".to_string()), "{:?}", r.violations);
        let b = r
            .reaches
            .iter()
            .find(|x| x.field == "plain" && x.context == "b" && x.access == AccessKind::PlainRmw)
            .unwrap();
        assert_eq!(b.function, "Dev::release", "a load and a store in one function");
        assert!(rules(&r, "atomic").is_empty());
        assert!(r.reaches.iter().any(|x| x.field == "atomic"
            && x.access == AccessKind::Atomic { op: "fetch_sub".into(), ordering: "Release".into() }));
    }

    #[test]
    fn contract_contradiction() {
        let r = audit_fixture("contract.rs", include_str!("../tests/fixtures/audit/contract.rs"));
        assert_eq!(rules(&r, "wrong"), ["contract-contradicted"]);
        assert!(r.violations[0].message.contains("contract says writers(a) but b also writes"));
        assert!(rules(&r, "right").is_empty());
    }

    #[test]
    fn lock_bypass() {
        let r = audit_fixture("lock_bypass.rs", include_str!("../tests/fixtures/audit/lock_bypass.rs"));
        assert_eq!(rules(&r, "guarded"), ["lock-bypass"]);
        assert_eq!(r.violations.iter().find(|v| v.field == "guarded").unwrap().contexts, ["c"]);
        assert!(rules(&r, "other").is_empty(), "held in the caller covers the callee; a nested block too");
    }

    #[test]
    fn call_through_a_trait_method() {
        let r = audit_fixture("trait_call.rs", include_str!("../tests/fixtures/audit/trait_call.rs"));
        let v = r.violations.iter().find(|v| v.field == "count" && v.rule == "contract-contradicted").unwrap();
        assert_eq!(v.contexts, ["a"]);
        assert_eq!(v.evidence[0].call_path, ["a_entry", "Counting::handle"]);
        assert!(rules(&r, "count").contains(&"shared-plain-rmw".to_string()));
    }

    #[test]
    fn function_handed_to_a_work_queue_and_unresolved_calls() {
        let r = audit_fixture("work_queue.rs", include_str!("../tests/fixtures/audit/work_queue.rs"));
        assert!(r.contexts.contains_key("work:refill"), "{:?}", r.contexts);
        let v = r.violations.iter().find(|v| v.field == "budget" && v.rule == "shared-plain-rmw").unwrap();
        assert_eq!(v.contexts, ["a", "work:refill"]);
        assert!(rules(&r, "log").iter().all(|x| x != "shared-plain-rmw"));
        assert!(
            r.unresolved.iter().any(|u| u.call == "mystery_helper()" && u.from.contains("a_entry")),
            "{:?}",
            r.unresolved
        );
    }

    #[test]
    fn a_feature_that_moves_a_call_is_caught_without_new_audit_code() {
        use crate::materialise::{file, CfgSet};
        let text = include_str!("../tests/fixtures/audit/moved_call.rs");
        let known: BTreeSet<String> = ["move-stats".to_string()].into();
        let resolve = |on: bool| {
            let enabled = if on { known.clone() } else { BTreeSet::new() };
            let (t, _) =
                file(std::path::Path::new("moved_call.rs"), text, &CfgSet { enabled, known: known.clone() }).unwrap();
            audit_fixture("moved_call.rs", &t)
        };
        let before = resolve(false);
        let after = resolve(true);
        assert!(before.clean(), "{:?}", before.violations);
        assert!(!after.clean());
        assert!(after
            .violations
            .iter()
            .any(|v| v.field == "rx_stats" && v.rule == "contract-contradicted" && v.contexts == ["rx"]));
        let d = delta("parent", &before, &after);
        assert!(
            d.moved_functions.iter().any(|(f, a, b)| f == "Dev::account" && a.contains("timer") && b.contains("rx")),
            "{:?}",
            d.moved_functions
        );
        assert!(!d.new_violations.is_empty());
        let back = delta("parent", &after, &before);
        assert!(!back.fixed_violations.is_empty());
    }

    #[test]
    fn bad_contract_lines_name_the_place() {
        let e = run(&[Source {
            name: "x.rs".into(),
            text: "pub struct D {\n    /// contract: sometimes\n    pub f: u32,\n}\n".into(),
        }])
        .unwrap_err();
        assert_eq!(e.message, "x.rs:2: cannot read `contract: sometimes`");
    }

    #[test]
    fn the_driver_variants_pass_or_fail_as_the_seed_says() {
        let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap().to_path_buf();
        let variants = crate::variant::Variants::load(&root).unwrap();
        for name in ["baseline", "b", "c-prep", "c-v2"] {
            let r = audit_variant(&root, &variants, variants.get(name).unwrap()).unwrap();
            assert!(r.clean(), "{name}: {:?}", r.violations);
        }
        let c = audit_variant(&root, &variants, variants.get("c").unwrap()).unwrap();
        for field in ["hw_bufs_used", "hw_bufs_used_vif", "wsm_tx_pending"] {
            let v = c
                .violations
                .iter()
                .find(|v| v.field == field && v.rule == "shared-plain-rmw")
                .unwrap_or_else(|| panic!("{field}"));
            assert_eq!(v.contexts, ["bh", "rx_work"]);
        }
        let hw = c.violations.iter().find(|v| v.field == "hw_bufs_used" && v.rule == "contract-contradicted").unwrap();
        let e = &hw.evidence[0];
        assert_eq!(e.access, AccessKind::PlainRmw);
        assert_eq!(e.function, "Bes2600::wsm_release_tx_buffer");
        assert_eq!(e.call_path.first().map(String::as_str), Some("Bes2600::sdio_rx_work"));
        assert!(e.call_path.contains(&"Bes2600::handle_rx_skb".to_string()));
        let prep = audit_variant(&root, &variants, variants.get("c-prep").unwrap()).unwrap();
        let v2 = audit_variant(&root, &variants, variants.get("c-v2").unwrap()).unwrap();
        let d = delta("c-prep", &prep, &v2);
        assert!(d
            .moved_writers
            .iter()
            .any(|(f, a, b, single)| f == "wsm_rx_seq" && a.contains("bh") && b.contains("rx_work") && *single));
        assert!(d.new_violations.is_empty());
    }
}
