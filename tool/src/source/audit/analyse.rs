//! The interprocedural walk: from every entry point of every context, through every call
//! MIR resolves (inherent and trait methods by the receiver's type, generic parameters by
//! the types the caller passes, closures and function pointers by the values that reach
//! the call, `dyn` and unknown pointers over-approximated and marked so), with the set of
//! locks held at each program point (acquired and released by the platform's `access:
//! lock`/`unlock` primitives, so guard drops, early `drop(g)` and `let _ = x.lock()` are
//! exact), and what each access does to which field.
//!
//! # Values
//! Each local holds an abstract value: the shared locations it points into (fields by
//! owning type, statics), the values of its fields (closure captures, guards), what it
//! points to on the stack, the functions it may call, and an atomic ordering constant.
//! Memory behind a pointer of unknown origin is attributed by type: a field of a struct
//! that declares contracts is that field. Values are joined per function instance (flow
//! insensitive); held locks are tracked per block (flow sensitive, intersected at joins).

use super::mir::{split_path, Body, Mir, Operand, Place, Rvalue, Site, StmtKind, TermKind};
use super::model::{base_name, Annot, Model, Prim};
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::rc::Rc;

#[derive(Clone, Debug, Default, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Val {
    locs: BTreeSet<String>,
    fields: BTreeMap<usize, Val>,
    pointee: Option<Box<Val>>,
    callables: BTreeSet<usize>,
    ordering: Option<String>,
}

impl Val {
    fn join(&mut self, other: &Val, depth: usize) -> bool {
        let before = self.clone();
        self.locs.extend(other.locs.iter().cloned());
        self.callables.extend(other.callables.iter().copied());
        if self.ordering.is_none() {
            self.ordering = other.ordering.clone();
        }
        if depth < 4 {
            for (k, v) in &other.fields {
                self.fields.entry(*k).or_default().join(v, depth + 1);
            }
            if let Some(p) = &other.pointee {
                self.pointee.get_or_insert_with(Default::default).join(p, depth + 1);
            }
        }
        *self != before
    }
    fn loc(l: &str) -> Val {
        Val { locs: [l.to_string()].into(), ..Default::default() }
    }
    /// Every callable in the value or what it points to.
    fn all_callables(&self, out: &mut BTreeSet<usize>, depth: usize) {
        out.extend(self.callables.iter().copied());
        if depth < 4 {
            if let Some(p) = &self.pointee {
                p.all_callables(out, depth + 1);
            }
            for v in self.fields.values() {
                v.all_callables(out, depth + 1);
            }
        }
    }
    /// Every shared location the value or what it points to reaches.
    fn all_locs(&self, out: &mut BTreeSet<String>, depth: usize) {
        out.extend(self.locs.iter().cloned());
        if depth < 4 {
            if let Some(p) = &self.pointee {
                p.all_locs(out, depth + 1);
            }
            for v in self.fields.values() {
                v.all_locs(out, depth + 1);
            }
        }
    }
}

/// What one access did.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Op {
    Load,
    Store,
    AtomicLoad(String),
    AtomicStore(String),
    AtomicRmw(String, String),
    AtomicCas(String),
}

impl Op {
    pub fn is_plain(&self) -> bool {
        matches!(self, Op::Load | Op::Store)
    }
}

#[derive(Clone, Debug)]
pub struct Acc {
    pub loc: String,
    pub op: Op,
    pub site: Site,
    pub locks: BTreeSet<String>,
    /// Functions from the one that was analysed down to the one that accessed.
    pub path: Vec<String>,
    /// Position in the analysed function: (block, statement index).
    pos: (usize, usize),
}

/// A load followed by a store of one location in one context (or a compare-exchange whose
/// result nobody reads): the shape of a lost update.
#[derive(Clone, Debug)]
pub struct Rmw {
    pub loc: String,
    pub plain: bool,
    pub ignored_cas: bool,
    pub load_site: Site,
    pub site: Site,
    /// Locks held at both the load and the store.
    pub locks: BTreeSet<String>,
    pub path: Vec<String>,
}

#[derive(Clone, Debug)]
pub struct Unfollowed {
    pub call: String,
    pub site: Site,
    pub function: String,
    pub why: String,
}

#[derive(Default, Debug)]
pub struct Summary {
    pub exit_locks: Option<BTreeSet<String>>,
    ret: Val,
    pub accesses: Vec<Acc>,
    pub rmws: Vec<Rmw>,
    pub unfollowed: Vec<Unfollowed>,
    /// caller label -> callee label.
    pub calls: BTreeSet<(String, String)>,
    pub visited: BTreeSet<usize>,
    /// Compare-exchanges whose result is what this function returns.
    returned_cas: Vec<Acc>,
    /// Callables handed to a `callback-context:` registration: (context, body).
    pub callbacks: BTreeSet<(String, usize)>,
}

#[derive(Clone)]
enum Target {
    Body(usize, Option<String>),
    /// A primitive; `true` when its first argument is the receiver (the platform), not
    /// the memory.
    Prim(Prim, bool),
    /// Core library operations with a known effect on their first argument's memory.
    Core(Vec<Prim>),
    /// Returns (a pointer into) what its arguments reach: `UnsafeCell::get`, `Deref`.
    PassThrough,
    /// `mem::drop(x)`: runs x's destructor.
    DropArg,
    External(String),
}

type Key = (usize, Vec<String>, Vec<Val>, Vec<(String, String)>);

pub struct Engine<'a> {
    pub mir: &'a Mir,
    pub model: &'a Model,
    by_closure: HashMap<String, usize>,
    by_method: HashMap<(String, Option<String>, String), Vec<usize>>,
    trait_impls: HashMap<(String, String), Vec<usize>>,
    free_fns: HashMap<String, Vec<usize>>,
    drop_impl: HashMap<String, usize>,
    /// Provided (default) trait methods: (trait, method) -> body.
    trait_defaults: HashMap<(String, String), usize>,
    pub annots: Vec<Annot>,
    pub labels: Vec<String>,
    memo: HashMap<Key, Rc<Summary>>,
    /// Functions ever stored into each shared location (a callback registered in a field
    /// or a static): a call through a pointer loaded from there calls one of them.
    pub field_callables: std::cell::RefCell<BTreeMap<String, BTreeSet<usize>>>,
    stack: Vec<usize>,
    /// Functions whose address is taken (cast to a pointer or passed as a value).
    address_taken: BTreeSet<usize>,
}

const ATOMICS: &[&str] = &[
    "AtomicBool",
    "AtomicI8",
    "AtomicI16",
    "AtomicI32",
    "AtomicI64",
    "AtomicIsize",
    "AtomicU8",
    "AtomicU16",
    "AtomicU32",
    "AtomicU64",
    "AtomicUsize",
    "AtomicPtr",
];

/// The named segments of a path, generic arguments left out:
/// `SingleWriter::<<P as Memory>::Word>::add::<P>` -> [SingleWriter, add].
fn path_segs(path: &str) -> Vec<String> {
    split_path(path)
        .iter()
        .filter(|s| !s.starts_with('<') || s.starts_with("<impl"))
        .map(|s| if s.starts_with("<impl") { s.clone() } else { strip_generics(s) })
        .filter(|s| !s.is_empty())
        .collect()
}

fn strip_generics(seg: &str) -> String {
    seg.split("::<").next().unwrap_or(seg).split('<').next().unwrap_or(seg).to_string()
}

fn is_primitive(ty: &str) -> bool {
    matches!(
        ty.trim(),
        "i8" | "i16"
            | "i32"
            | "i64"
            | "i128"
            | "isize"
            | "u8"
            | "u16"
            | "u32"
            | "u64"
            | "u128"
            | "usize"
            | "bool"
            | "char"
            | "f32"
            | "f64"
            | "()"
            | "!"
    ) || ty.starts_with("(i32, bool)")
        || ty.starts_with("(usize, bool)")
}

/// Whether a value of this type can hold a pointer (a reference, a raw pointer, a borrow
/// through a lifetime, a closure's captures, a generic). A value that cannot is data: what
/// it was read from does not travel with it.
fn may_hold_pointer(ty: &str) -> bool {
    let t = ty.trim();
    t.is_empty()
        || t.contains('&')
        || t.contains('*')
        || t.contains('\'')
        || t.contains("{closure")
        || t.contains("dyn ")
        || t.contains("impl ")
        || t.contains("fn(")
        || t.split(|c: char| !c.is_alphanumeric() && c != '_')
            .any(|w| w.len() == 1 && w.chars().all(|c| c.is_ascii_uppercase()))
}

fn deref_ty(ty: &str) -> String {
    let t = ty.trim();
    for p in ["&mut ", "&", "*mut ", "*const "] {
        if let Some(r) = t.strip_prefix(p) {
            let r = if r.starts_with('\'') { r.split_once(' ').map_or(r, |x| x.1) } else { r };
            return r.trim_start_matches("mut ").to_string();
        }
    }
    // Box<T>, and guards and other Deref types: unknown target.
    t.to_string()
}

fn elem_ty(ty: &str) -> String {
    let t = ty.trim();
    if let Some(inner) = t.strip_prefix('[') {
        let inner = inner.strip_suffix(']').unwrap_or(inner);
        return super::mir::split_top(inner, ';').first().cloned().unwrap_or_default();
    }
    t.to_string()
}

impl<'a> Engine<'a> {
    /// The engine over one crate: indexes of bodies by closure, label, impl and trait
    /// method, the address-taken functions, the platform's primitives. Long because it
    /// builds every index in one pass over the bodies.
    pub fn new(mir: &'a Mir, model: &'a Model) -> Engine<'a> {
        let mut e = Engine {
            mir,
            model,
            by_closure: HashMap::new(),
            by_method: HashMap::new(),
            trait_impls: HashMap::new(),
            free_fns: HashMap::new(),
            drop_impl: HashMap::new(),
            trait_defaults: HashMap::new(),
            annots: Vec::new(),
            labels: Vec::new(),
            memo: HashMap::new(),
            field_callables: Default::default(),
            stack: Vec::new(),
            address_taken: BTreeSet::new(),
        };
        let mut seen_paths = BTreeSet::new();
        for (i, b) in mir.bodies.iter().enumerate() {
            e.annots.push(model.fn_annot(&b.name, &b.site).cloned().unwrap_or_default());
            let imp = b.impl_at.as_ref().and_then(|k| model.impl_for(k, &b.name));
            e.labels.push(label(b, imp.and_then(|d| d.for_name.as_deref())));
            if let Some(c) = &b.closure_ty {
                e.by_closure.insert(c.clone(), i);
                continue;
            }
            if !seen_paths.insert(b.path.clone()) {
                continue; // a const fn's second body
            }
            match imp {
                Some(d) => {
                    let ty = d.for_name.clone().unwrap_or_default();
                    e.by_method.entry((ty.clone(), d.trait_name.clone(), b.name.clone())).or_default().push(i);
                    if let Some(t) = &d.trait_name {
                        e.trait_impls.entry((t.clone(), b.name.clone())).or_default().push(i);
                        if t == "Drop" && b.name == "drop" {
                            e.drop_impl.insert(ty, i);
                        }
                    }
                }
                None if b.impl_at.is_none() => {
                    // `Trait::method` with a `&Self` receiver: a provided method's body.
                    let segs = path_segs(&b.path);
                    if segs.len() >= 2 && model.traits.contains_key(&segs[segs.len() - 2]) {
                        e.trait_defaults.insert((segs[segs.len() - 2].clone(), b.name.clone()), i);
                    } else {
                        e.free_fns.entry(b.name.clone()).or_default().push(i);
                    }
                }
                None => {}
            }
        }
        // Address-taken functions: every fn item turned into a pointer or passed by value.
        let mut taken = BTreeSet::new();
        for b in &mir.bodies {
            for blk in &b.blocks {
                for s in &blk.stmts {
                    if let StmtKind::Assign(_, Rvalue::FnItem(p)) = &s.kind {
                        taken.extend(e.resolve_path(p));
                    }
                }
                if let TermKind::Call { args, .. } = &blk.term.kind {
                    for a in args {
                        if let Operand::Const(c) = a {
                            taken.extend(e.resolve_path(c));
                        }
                    }
                }
            }
        }
        e.address_taken = taken;
        e
    }

    /// Function bodies a path names: `helper`, `Type::<P>::m`, `m::<impl T>::f`.
    fn resolve_path(&self, path: &str) -> Vec<usize> {
        let p = path.trim();
        if p.starts_with('{')
            || p.starts_with('"')
            || p.starts_with("copy ")
            || p.starts_with("move ")
            || p.starts_with('[')
        {
            return vec![];
        }
        let segs: Vec<String> = path_segs(p);
        let Some(name) = segs.last() else { return vec![] };
        if let Some(imp) = p.find("<impl ") {
            let ty = base_name(&p[imp + 6..].split('>').next().unwrap_or(""));
            return self.by_method.get(&(ty, None, name.clone())).cloned().unwrap_or_default();
        }
        if segs.len() >= 2 {
            let ty = &segs[segs.len() - 2];
            if let Some(v) = self.by_method.get(&(ty.clone(), None, name.clone())) {
                return v.clone();
            }
        }
        let found = self.free_fns.get(name).cloned().unwrap_or_default();
        if found.len() > 1 && segs.len() >= 2 {
            // Two free functions of one name in different modules (`wsm::msg_id`, the
            // chip's `fw::msg_id`): the path's modules pick the one called.
            let named: Vec<usize> =
                found.iter().copied().filter(|&i| path_segs(&self.mir.bodies[i].path).ends_with(&segs)).collect();
            if !named.is_empty() {
                return named;
            }
        }
        found
    }

    fn const_val(&self, c: &str) -> Val {
        let c = c.trim();
        if let Some(rest) = c.strip_prefix("{alloc") {
            let id = format!("alloc{}", rest.split(':').next().unwrap_or(""));
            if let Some(name) = self.mir.statics.get(&id) {
                if self.model.statics.contains_key(name) {
                    return Val::loc(&format!("static {name}"));
                }
            }
            return Val::default();
        }
        if let Some(i) = c.find("Ordering::") {
            let o: String = c[i + 10..].chars().take_while(|x| x.is_alphanumeric()).collect();
            return Val { ordering: Some(o), ..Default::default() };
        }
        let callables: BTreeSet<usize> = self.resolve_path(c).into_iter().collect();
        Val { callables, ..Default::default() }
    }

    fn is_generic(&self, ty: &str) -> bool {
        let t = ty.trim();
        t.starts_with("impl ")
            || (t.len() <= 3
                && t.chars().next().is_some_and(|c| c.is_ascii_uppercase())
                && !self.model.structs.contains_key(t))
    }

    /// The bodies (or primitives) a call names. Long because it is one match over the
    /// shapes of a MIR callee (trait method by receiver type, inherent method, generic
    /// parameter, closure, core atomic or cell method, drop glue), each a few lines.
    fn resolve(&self, callee: &str, args: &[Val], bindings: &BTreeMap<String, String>) -> Vec<Target> {
        let c = callee.trim();
        // A call through a function pointer held in a local: the caller resolves it from
        // the local's value.
        if c.starts_with("move ") || c.starts_with("copy ") {
            return vec![];
        }
        if let Some(rest) = c.strip_prefix('<') {
            // `<T as Trait>::m`
            let close = {
                let b = rest.as_bytes();
                let mut depth = 1i32;
                let mut i = 0;
                while i < b.len() {
                    match b[i] {
                        b'<' | b'(' | b'[' | b'{' => depth += 1,
                        b'>' if i == 0 || b[i - 1] != b'-' => depth -= 1,
                        b')' | b']' | b'}' => depth -= 1,
                        _ => {}
                    }
                    if depth == 0 {
                        break;
                    }
                    i += 1;
                }
                i
            };
            let inner = &rest[..close.min(rest.len())];
            let m = strip_generics(rest[close.min(rest.len())..].trim_start_matches('>').trim_start_matches("::"));
            let Some(as_at) = find_as(inner) else { return vec![Target::External(c.to_string())] };
            let mut ty = inner[..as_at].trim().to_string();
            let trait_text = inner[as_at + 4..].trim();
            let tr = strip_generics(split_path(trait_text).last().map(String::as_str).unwrap_or(trait_text));
            if let Some(b) = bindings.get(&ty) {
                ty = b.clone();
            }
            if let Some(a) = self.model.trait_methods.get(&(tr.clone(), m.clone())) {
                if let Some(p) = a.access {
                    return vec![Target::Prim(p, true)];
                }
            }
            if matches!(tr.as_str(), "Fn" | "FnMut" | "FnOnce") {
                if let Some(&b) = self.by_closure.get(ty.trim_start_matches("&mut ").trim_start_matches('&')) {
                    return vec![Target::Body(b, None)];
                }
                let mut cs = BTreeSet::new();
                if let Some(a) = args.first() {
                    a.all_callables(&mut cs, 0);
                }
                if cs.is_empty() {
                    return vec![Target::External(c.to_string())];
                }
                return cs.into_iter().map(|b| Target::Body(b, None)).collect();
            }
            if matches!(tr.as_str(), "Deref" | "DerefMut" | "AsRef" | "AsMut" | "Borrow" | "BorrowMut")
                && self.by_method.get(&(base_name(&ty), Some(tr.clone()), m.clone())).is_none()
            {
                return vec![Target::PassThrough];
            }
            let default = self.trait_defaults.get(&(tr.clone(), m.clone())).copied();
            let dynamic = ty.starts_with("dyn ") || self.is_generic(&ty);
            if dynamic {
                let mut all = self.trait_impls.get(&(tr.clone(), m.clone())).cloned().unwrap_or_default();
                // Impls that do not override it run the provided body.
                all.extend(default);
                if all.is_empty() {
                    return vec![Target::External(c.to_string())];
                }
                let why = if ty.starts_with("dyn ") {
                    format!("[{ty}: any impl of {tr}]")
                } else {
                    format!("[{ty} unknown here: any impl of {tr}]")
                };
                return all.into_iter().map(|b| Target::Body(b, Some(why.clone()))).collect();
            }
            let key = (base_name(&ty), Some(tr.clone()), m.clone());
            if let Some(v) = self.by_method.get(&key) {
                return v.iter().map(|&b| Target::Body(b, None)).collect();
            }
            if let Some(d) = default {
                // The impl for this type does not override it: the trait's provided body.
                return vec![Target::Body(d, None)];
            }
            return vec![Target::External(c.to_string())];
        }
        let segs: Vec<String> = path_segs(c);
        let name = segs.last().cloned().unwrap_or_default();
        let ty = if segs.len() >= 2 { segs[segs.len() - 2].clone() } else { String::new() };
        if let Some(a) =
            self.by_method.get(&(base_name(&ty), None, name.clone())).and_then(|v| v.first()).map(|&b| &self.annots[b])
        {
            if let Some(p) = a.access {
                return vec![Target::Prim(p, false)];
            }
        }
        if ATOMICS.contains(&ty.as_str()) {
            return match name.as_str() {
                "load" => vec![Target::Core(vec![Prim::AtomicLoad])],
                "store" => vec![Target::Core(vec![Prim::AtomicStore])],
                "compare_exchange" | "compare_exchange_weak" | "compare_and_swap" => {
                    vec![Target::Core(vec![Prim::AtomicCas])]
                }
                n if n.starts_with("fetch_") || n == "swap" => vec![Target::Core(vec![Prim::AtomicRmw])],
                _ => vec![Target::PassThrough],
            };
        }
        if ty == "Cell" {
            return match name.as_str() {
                "get" => vec![Target::Core(vec![Prim::Load])],
                "set" => vec![Target::Core(vec![Prim::Store])],
                "replace" | "take" | "update" | "swap" => vec![Target::Core(vec![Prim::Load, Prim::Store])],
                _ => vec![Target::PassThrough],
            };
        }
        if ty == "UnsafeCell" || ty == "MaybeUninit" || ty == "NonNull" || ty == "ManuallyDrop" {
            return vec![Target::PassThrough];
        }
        if (ty == "mem" || segs.len() == 1) && name == "drop" && body_is_external_drop(c) {
            return vec![Target::DropArg];
        }
        if ty == "mem" && matches!(name.as_str(), "replace" | "swap" | "take") {
            return vec![Target::Core(vec![Prim::Load, Prim::Store])];
        }
        if (ty == "ptr" || c.contains("<impl *mut") || c.contains("<impl *const"))
            && matches!(name.as_str(), "write" | "write_volatile" | "write_unaligned")
        {
            return vec![Target::Core(vec![Prim::Store])];
        }
        if (ty == "ptr" || c.contains("<impl *mut") || c.contains("<impl *const"))
            && matches!(name.as_str(), "read" | "read_volatile" | "read_unaligned")
        {
            return vec![Target::Core(vec![Prim::Load])];
        }
        let bodies = self.resolve_path(c);
        if !bodies.is_empty() {
            return bodies.into_iter().map(|b| Target::Body(b, None)).collect();
        }
        vec![Target::External(c.to_string())]
    }

    /// Analyses one function instance.
    pub fn analyse(
        &mut self,
        body_id: usize,
        locks_in: &BTreeSet<String>,
        args: &[Val],
        bindings: &BTreeMap<String, String>,
    ) -> Rc<Summary> {
        let key: Key = (
            body_id,
            locks_in.iter().cloned().collect(),
            args.to_vec(),
            bindings.iter().map(|(a, b)| (a.clone(), b.clone())).collect(),
        );
        if let Some(s) = self.memo.get(&key) {
            return s.clone();
        }
        if self.stack.contains(&body_id) || self.stack.len() > 48 {
            // Recursion: assume the function changes no lock and touches nothing new.
            let mut ret = Val::default();
            for a in args {
                ret.join(a, 0);
            }
            return Rc::new(Summary { exit_locks: Some(locks_in.clone()), ret, ..Default::default() });
        }
        self.stack.push(body_id);
        let s = Rc::new(self.analyse_body(body_id, locks_in, args, bindings));
        self.stack.pop();
        self.memo.insert(key, s.clone());
        s
    }

    /// One function instance to a fixpoint over its basic blocks (values and held locks
    /// joined at block entries), then a last pass that records. Long because the fixpoint
    /// loop, the recording pass and the exit summary share the per-block state.
    fn analyse_body(
        &mut self,
        id: usize,
        locks_in: &BTreeSet<String>,
        args: &[Val],
        bindings: &BTreeMap<String, String>,
    ) -> Summary {
        let mir = self.mir;
        let body = &mir.bodies[id];
        let mut vals: Vec<Val> = vec![Val::default(); body.locals.len()];
        for (i, a) in args.iter().enumerate() {
            if i + 1 < vals.len() {
                vals[i + 1] = a.clone();
            }
        }
        let n = body.blocks.len();
        let mut entry: Vec<Option<BTreeSet<String>>> = vec![None; n];
        let mut summary = Summary::default();
        summary.visited.insert(id);
        if n == 0 {
            summary.exit_locks = Some(locks_in.clone());
            return summary;
        }
        entry[0] = Some(locks_in.clone());
        // Converge values and lock sets, then walk once more recording.
        for round in 0..24 {
            let mut changed = false;
            let mut work = vec![0usize];
            let mut done = vec![false; n];
            while let Some(b) = work.pop() {
                if done[b] {
                    continue;
                }
                done[b] = true;
                let Some(locks) = entry[b].clone() else { continue };
                let outs = self.step_block(id, b, locks, &mut vals, bindings, &mut changed, None);
                for (succ, l) in outs {
                    if succ >= n || body.blocks[succ].cleanup {
                        continue;
                    }
                    let new = match &entry[succ] {
                        None => Some(l),
                        Some(old) => Some(old.intersection(&l).cloned().collect()),
                    };
                    if new != entry[succ] {
                        entry[succ] = new;
                        changed = true;
                        done[succ] = false;
                    }
                    if !done[succ] {
                        work.push(succ);
                    }
                }
            }
            if !changed || round == 23 {
                break;
            }
        }
        let mut rec = Recorder::default();
        let mut exit: Option<BTreeSet<String>> = None;
        let mut changed = false;
        for b in 0..n {
            let Some(locks) = entry[b].clone() else { continue };
            if body.blocks[b].cleanup {
                continue;
            }
            let outs = self.step_block(id, b, locks.clone(), &mut vals, bindings, &mut changed, Some(&mut rec));
            if let TermKind::Return = body.blocks[b].term.kind {
                let l = outs.first().map(|x| x.1.clone()).unwrap_or(locks);
                exit = Some(match exit {
                    None => l,
                    Some(e) => e.intersection(&l).cloned().collect(),
                });
            }
        }
        summary.exit_locks = exit;
        summary.ret = vals.first().cloned().unwrap_or_default();
        // The lock's own implementation reads its word and id around the primitive: that is
        // the lock's bookkeeping, not an access to the data it protects.
        let lock_locs = rec.lock_locs.clone();
        rec.accesses.retain(|a| !(a.path.len() == 1 && lock_locs.contains(&a.loc)));
        // Lost-update shapes in this function: a load, then a store reachable from it.
        let reach = reachability(body);
        // A store that a callee already pairs with its own load is reported there, where
        // the read-modify-write is (the innermost function that holds both).
        let inner: BTreeSet<(String, Site)> = rec.rmws.iter().map(|r| (r.loc.clone(), r.site.clone())).collect();
        for l in rec.accesses.iter().filter(|a| matches!(a.op, Op::Load | Op::AtomicLoad(_))) {
            for s in rec.accesses.iter().filter(|a| a.loc == l.loc && matches!(a.op, Op::Store | Op::AtomicStore(_))) {
                if s.pos == l.pos || inner.contains(&(s.loc.clone(), s.site.clone())) {
                    continue;
                }
                let after = (s.pos.0 == l.pos.0 && s.pos.1 > l.pos.1) || reach[l.pos.0].contains(&s.pos.0);
                if !after {
                    continue;
                }
                let path = s.path.clone();
                rec.rmws.push(Rmw {
                    loc: l.loc.clone(),
                    plain: l.op.is_plain() || s.op.is_plain(),
                    ignored_cas: false,
                    load_site: l.site.clone(),
                    site: s.site.clone(),
                    locks: l.locks.intersection(&s.locks).cloned().collect(),
                    path,
                });
            }
        }
        summary.accesses = rec.accesses;
        summary.rmws = rec.rmws;
        summary.unfollowed = rec.unfollowed;
        summary.calls = rec.calls;
        summary.visited.extend(rec.visited);
        summary.returned_cas = rec.returned_cas;
        summary.callbacks = rec.callbacks;
        summary
    }

    /// Evaluates a place: the shared locations it is in (None: a stack place), its value
    /// and its type. Long because it is one match over MIR's projection kinds.
    fn eval_place(&self, p: &Place, vals: &[Val], body: &Body) -> (Option<BTreeSet<String>>, Val, String) {
        match p {
            Place::Local(n) => {
                (None, vals.get(*n).cloned().unwrap_or_default(), body.locals.get(*n).cloned().unwrap_or_default())
            }
            Place::Deref(inner) => {
                let (_, v, ty) = self.eval_place(inner, vals, body);
                let t = deref_ty(&ty);
                if !v.locs.is_empty() {
                    let locs = v.locs.clone();
                    let mut val = if may_hold_pointer(&t) {
                        Val { locs: locs.clone(), ..Default::default() }
                    } else {
                        Val::default()
                    };
                    val.callables = self.callables_at(&locs);
                    (Some(locs), val, t)
                } else if let Some(pt) = &v.pointee {
                    (None, (**pt).clone(), t)
                } else {
                    (Some(BTreeSet::new()), Val::default(), t)
                }
            }
            Place::Field(inner, idx, fty) => {
                let (shared, v, ty) = self.eval_place(inner, vals, body);
                match shared {
                    Some(locs) => {
                        let mut out = locs.clone();
                        if let Some(sd) = self.model.struct_of(&ty).filter(|s| s.contract_bearing) {
                            if let Some(f) = sd.fields.get(*idx) {
                                let nested = f
                                    .ty_struct
                                    .as_ref()
                                    .and_then(|t| self.model.structs.get(t))
                                    .is_some_and(|s| s.contract_bearing);
                                if f.contract.is_some() || !nested {
                                    if locs.is_empty() || !locs.iter().any(|l| self.is_contracted(l)) {
                                        out = [f.id()].into();
                                    }
                                } else {
                                    out = BTreeSet::new();
                                }
                            }
                        }
                        let mut val = if out.is_empty() || !may_hold_pointer(fty) {
                            Val::default()
                        } else {
                            Val { locs: out.clone(), ..Default::default() }
                        };
                        val.callables = self.callables_at(&out);
                        (Some(out), val, fty.clone())
                    }
                    // A value whose fields were not tracked (one an external function
                    // returned: an iterator's item, an `Option`) passes on what it reaches.
                    None => (
                        None,
                        v.fields.get(idx).cloned().unwrap_or_else(|| Val {
                            locs: v.locs.clone(),
                            callables: v.callables.clone(),
                            pointee: v.pointee.clone(),
                            ..Default::default()
                        }),
                        fty.clone(),
                    ),
                }
            }
            Place::Index(inner) => {
                let (s, v, ty) = self.eval_place(inner, vals, body);
                (s, v, elem_ty(&ty))
            }
            Place::Downcast(inner) => self.eval_place(inner, vals, body),
        }
    }

    fn remember_callables(&self, locs: &BTreeSet<String>, v: &Val) {
        let mut cs = BTreeSet::new();
        v.all_callables(&mut cs, 0);
        if cs.is_empty() || locs.is_empty() {
            return;
        }
        let mut m = self.field_callables.borrow_mut();
        for l in locs {
            m.entry(l.clone()).or_default().extend(cs.iter().copied());
        }
    }

    fn callables_at(&self, locs: &BTreeSet<String>) -> BTreeSet<usize> {
        let m = self.field_callables.borrow();
        locs.iter().filter_map(|l| m.get(l)).flatten().copied().collect()
    }

    /// Forgets every analysed instance (after callbacks stored in fields were learned, so
    /// a second pass resolves calls through them).
    pub fn reset_memo(&mut self) {
        self.memo.clear();
    }

    fn is_contracted(&self, loc: &str) -> bool {
        if let Some(name) = loc.strip_prefix("static ") {
            return self.model.statics.get(name).is_some_and(|f| f.contract.is_some());
        }
        let Some((o, f)) = loc.split_once('.') else { return false };
        self.model
            .structs
            .get(o)
            .and_then(|s| s.fields.iter().find(|x| x.name == f))
            .is_some_and(|x| x.contract.is_some())
    }

    fn read(&self, p: &Place, vals: &[Val], body: &Body, rec: &mut Option<&mut Recorder>, at: Ctx) -> Val {
        let (shared, v, _) = self.eval_place(p, vals, body);
        if let (Some(locs), Some(r)) = (shared, rec.as_deref_mut()) {
            for l in locs {
                r.access(l, Op::Load, &at);
            }
        }
        v
    }

    fn operand(&self, o: &Operand, vals: &[Val], body: &Body, rec: &mut Option<&mut Recorder>, at: Ctx) -> Val {
        match o {
            Operand::Copy(p) | Operand::Move(p) => self.read(p, vals, body, rec, at),
            Operand::Const(c) => self.const_val(c),
        }
    }

    fn store(
        &self,
        p: &Place,
        v: Val,
        vals: &mut [Val],
        body: &Body,
        rec: &mut Option<&mut Recorder>,
        at: Ctx,
        changed: &mut bool,
    ) {
        let (shared, _, ty) = self.eval_place(p, vals, body);
        if let Some(locs) = shared {
            self.remember_callables(&locs, &v);
            if let Some(r) = rec.as_deref_mut() {
                for l in locs {
                    r.access(l, Op::Store, &at);
                }
            }
            return;
        }
        let keep = if is_primitive(&ty) || !may_hold_pointer(&ty) {
            Val { ordering: v.ordering.clone(), callables: v.callables.clone(), ..Default::default() }
        } else {
            v
        };
        // Write into the stack local (joined: values are per function instance).
        let mut path = Vec::new();
        let mut cur = p;
        loop {
            match cur {
                Place::Local(_) => break,
                Place::Field(inner, i, _) => {
                    path.push(Some(*i));
                    cur = inner;
                }
                Place::Index(inner) | Place::Downcast(inner) => {
                    path.push(None);
                    cur = inner;
                }
                Place::Deref(inner) => {
                    path.push(Some(usize::MAX));
                    cur = inner;
                }
            }
        }
        let base = p.base();
        if base >= vals.len() {
            return;
        }
        let mut slot = &mut vals[base];
        for step in path.iter().rev() {
            slot = match step {
                Some(usize::MAX) => slot.pointee.get_or_insert_with(Default::default),
                Some(i) => slot.fields.entry(*i).or_default(),
                None => slot,
            };
        }
        if slot.join(&keep, 0) {
            *changed = true;
        }
    }

    /// The transfer function of one basic block: every statement, then the terminator.
    /// Long because it is one match over MIR's statement and terminator kinds sharing the
    /// block's state (values, held locks, record); the two large call arms are
    /// `call_body` and `call_external`.
    #[allow(clippy::too_many_arguments)]
    fn step_block(
        &mut self,
        id: usize,
        b: usize,
        locks: BTreeSet<String>,
        vals: &mut Vec<Val>,
        bindings: &BTreeMap<String, String>,
        changed: &mut bool,
        mut rec: Option<&mut Recorder>,
    ) -> Vec<(usize, BTreeSet<String>)> {
        let mir = self.mir;
        let body = &mir.bodies[id];
        let blk = &body.blocks[b];
        let me = self.labels[id].clone();
        for (si, s) in blk.stmts.iter().enumerate() {
            let at = Ctx { site: s.site.clone(), locks: locks.clone(), pos: (b, si), me: me.clone() };
            match &s.kind {
                StmtKind::Assign(dest, rv) => {
                    let v = match rv {
                        Rvalue::Ref(p) => {
                            let (shared, v, _) = self.eval_place(p, vals, body);
                            match shared {
                                Some(locs) => Val { locs, ..Default::default() },
                                None => Val { pointee: Some(Box::new(v)), ..Default::default() },
                            }
                        }
                        Rvalue::Use(o) => self.operand(o, vals, body, &mut rec, at.clone()),
                        Rvalue::Aggregate { closure, adt, fields } => {
                            let mut v = Val::default();
                            // A struct that holds shared state, built by value (a constructor):
                            // the callbacks it is given are stored in those fields.
                            let shared_struct =
                                adt.as_deref().and_then(|t| self.model.struct_of(t)).filter(|sd| sd.contract_bearing);
                            for (i, f) in fields.iter().enumerate() {
                                let fv = self.operand(f, vals, body, &mut rec, at.clone());
                                if let Some(field) = shared_struct.and_then(|sd| sd.fields.get(i)) {
                                    self.remember_callables(&[field.id()].into(), &fv);
                                }
                                v.fields.insert(i, fv);
                            }
                            if let Some(c) = closure {
                                if let Some(&cb) = self.by_closure.get(c) {
                                    v.callables.insert(cb);
                                }
                            }
                            v
                        }
                        Rvalue::FnItem(p) => {
                            Val { callables: self.resolve_path(p).into_iter().collect(), ..Default::default() }
                        }
                        Rvalue::Other { reads, consts } => {
                            let mut v = Val::default();
                            for p in reads {
                                let r = self.read(p, vals, body, &mut rec, at.clone());
                                v.join(&r, 0);
                            }
                            for c in consts {
                                v.join(&self.const_val(c), 0);
                            }
                            v
                        }
                    };
                    self.store(dest, v, vals, body, &mut rec, at, changed);
                }
                StmtKind::SetDiscriminant(p) => {
                    self.store(p, Val::default(), vals, body, &mut rec, at, changed);
                }
                StmtKind::Nop => {}
            }
        }
        let term = &blk.term;
        let at = Ctx { site: term.site.clone(), locks: locks.clone(), pos: (b, blk.stmts.len()), me: me.clone() };
        match &term.kind {
            TermKind::Switch(Some(p), targets) => {
                self.read(p, vals, body, &mut rec, at);
                targets.iter().map(|t| (*t, locks.clone())).collect()
            }
            TermKind::Drop(p, target) => {
                let (_, v, ty) = self.eval_place(p, vals, body);
                let out = self.run_drop(&ty, v, &locks, &mut rec, &at);
                match (target, out) {
                    (Some(t), Some(l)) => vec![(*t, l)],
                    _ => vec![],
                }
            }
            TermKind::Call { dest, callee, args, target } => {
                let argv: Vec<Val> = args.iter().map(|a| self.operand(a, vals, body, &mut rec, at.clone())).collect();
                let mut out: Option<BTreeSet<String>> = None;
                let mut ret = Val::default();
                let merge = |out: &mut Option<BTreeSet<String>>, l: BTreeSet<String>| {
                    *out = Some(match out.take() {
                        None => l,
                        Some(o) => o.intersection(&l).cloned().collect(),
                    });
                };
                let fnptr = callee.strip_prefix("move ").or_else(|| callee.strip_prefix("copy "));
                let mut targets: Vec<Target> = match fnptr {
                    Some(local) => {
                        let v = parse_local(local).map(|n| vals[n].clone()).unwrap_or_default();
                        let mut cs = BTreeSet::new();
                        v.all_callables(&mut cs, 0);
                        if cs.is_empty() {
                            let why = format!("[fn pointer: any address-taken fn with {} argument(s)]", args.len());
                            self.address_taken
                                .iter()
                                .filter(|&&f| mir.bodies[f].arg_count == args.len())
                                .map(|&f| Target::Body(f, Some(why.clone())))
                                .collect()
                        } else {
                            cs.into_iter().map(|f| Target::Body(f, None)).collect()
                        }
                    }
                    None => self.resolve(callee, &argv, bindings),
                };
                if targets.is_empty() {
                    targets.push(Target::External(callee.clone()));
                }
                let cas_dest_unused = !local_used_after(body, dest.base(), b);
                let site = CallSite { args, argv: &argv, vals, body, dest, at: &at, cas_dest_unused };
                for t in targets {
                    match t {
                        Target::Body(f, why) => {
                            let (r, l) = self.call_body(f, why, &site, &locks, bindings, &mut rec);
                            ret.join(&r, 0);
                            if let Some(l) = l {
                                merge(&mut out, l);
                            }
                        }
                        Target::Prim(p, receiver) => {
                            let mem = if receiver && argv.len() > 1 { &argv[1..] } else { &argv[..] };
                            let l = self.prim(&[p], mem, &locks, &mut rec, &at, dest, cas_dest_unused, callee);
                            merge(&mut out, l);
                        }
                        Target::Core(ps) => {
                            if ps.contains(&Prim::Store) && argv.len() >= 2 {
                                // `ptr::write(field, value)`: a callback stored at init.
                                self.remember_callables(&argv[0].locs, &argv[1]);
                            }
                            let l = self.prim(&ps, &argv, &locks, &mut rec, &at, dest, cas_dest_unused, callee);
                            for a in &argv {
                                ret.join(&Val { locs: a.locs.clone(), ..Default::default() }, 0);
                            }
                            merge(&mut out, l);
                        }
                        Target::PassThrough => {
                            for a in &argv {
                                ret.join(a, 0);
                            }
                            merge(&mut out, locks.clone());
                        }
                        Target::DropArg => {
                            let aty = args
                                .first()
                                .and_then(|a| match a {
                                    Operand::Copy(p) | Operand::Move(p) => Some(self.eval_place(p, vals, body).2),
                                    _ => None,
                                })
                                .unwrap_or_default();
                            let l =
                                self.run_drop(&aty, argv.first().cloned().unwrap_or_default(), &locks, &mut rec, &at);
                            if let Some(l) = l {
                                merge(&mut out, l);
                            }
                        }
                        Target::External(text) => {
                            let (r, l) = self.call_external(&text, &site, &locks, &mut rec);
                            ret.join(&r, 0);
                            merge(&mut out, l);
                        }
                    }
                }
                self.store(dest, ret, vals, body, &mut None, at, changed);
                match (target, out) {
                    (Some(t), Some(l)) => vec![(*t, l)],
                    _ => vec![],
                }
            }
            _ => term.successors().into_iter().map(|t| (t, locks.clone())).collect(),
        }
    }

    /// A call into a body of the crate: the arguments bound to the callee's parameters
    /// (generic bindings unified from their types; a closure's tuple of arguments spread),
    /// the callee analysed with the locks held here, and what it records merged into this
    /// record. Returns what it returns and the locks it leaves held.
    fn call_body(
        &mut self,
        f: usize,
        why: Option<String>,
        c: &CallSite,
        locks: &BTreeSet<String>,
        bindings: &BTreeMap<String, String>,
        rec: &mut Option<&mut Recorder>,
    ) -> (Val, Option<BTreeSet<String>>) {
        let mir = self.mir;
        let callee_body = &mir.bodies[f];
        let mut bind = BTreeMap::new();
        for (i, a) in c.args.iter().enumerate() {
            if let Operand::Copy(p) | Operand::Move(p) = a {
                let (_, _, aty) = self.eval_place(p, c.vals, c.body);
                let aty = subst(&aty, bindings);
                if let Some(pty) = callee_body.locals.get(i + 1) {
                    unify(pty, &aty, &mut bind, self);
                }
            }
        }
        let callee_args: Vec<Val> =
            if callee_body.closure_ty.is_some() && c.argv.len() == 2 && callee_body.arg_count > 1 {
                // `call(env, (a, b))`: the tuple's fields are the closure's arguments.
                let mut v = vec![c.argv[0].clone()];
                for k in 0..callee_body.arg_count - 1 {
                    v.push(c.argv[1].fields.get(&k).cloned().unwrap_or_default());
                }
                v
            } else {
                c.argv.to_vec()
            };
        let s = self.analyse(f, locks, &callee_args, &bind);
        if let Some(r) = rec.as_deref_mut() {
            let callee_label = match &why {
                Some(w) => format!("{} {w}", self.labels[f]),
                None => self.labels[f].clone(),
            };
            r.merge(&s, c.at, &callee_label);
            if c.cas_dest_unused {
                for cas in &s.returned_cas {
                    r.ignored_cas(cas, c.at, &callee_label);
                }
            }
            if c.dest.base() == 0 {
                let at_pos = c.at.pos;
                r.returned_cas.extend(s.returned_cas.iter().cloned().map(|mut c| {
                    c.pos = at_pos;
                    c
                }));
            }
        }
        (s.ret.clone(), s.exit_locks.clone())
    }

    /// A call out of the crate (or through a pointer nobody could resolve): it may call any
    /// callable it is handed with the locks held here, read (and through `&mut`, write)
    /// what it is handed, and return a pointer into it. Returns that value and the locks.
    fn call_external(
        &mut self,
        text: &str,
        c: &CallSite,
        locks: &BTreeSet<String>,
        rec: &mut Option<&mut Recorder>,
    ) -> (Val, BTreeSet<String>) {
        // An external function may call any callable it is handed, with
        // the locks held here; its result may point into its arguments.
        let mut cs = BTreeSet::new();
        for a in c.argv {
            a.all_callables(&mut cs, 0);
        }
        let cb_ctx = self.callback_context(text);
        let mut now = locks.clone();
        let mut ret = Val::default();
        let mir = self.mir;
        for f in cs {
            if let Some(ctx) = &cb_ctx {
                if let Some(r) = rec.as_deref_mut() {
                    r.callbacks.insert((ctx.clone(), f));
                }
                continue;
            }
            let fa: Vec<Val> = vec![Val::default(); mir.bodies[f].arg_count];
            let s = self.analyse(f, &now, &fa, &BTreeMap::new());
            if let Some(r) = rec.as_deref_mut() {
                r.merge(&s, c.at, &format!("{} [called by {}]", self.labels[f], short(text)));
            }
            if let Some(l) = &s.exit_locks {
                now = l.clone();
            }
        }
        let mut shared = BTreeSet::new();
        for a in c.argv {
            a.all_locs(&mut shared, 0);
            ret.join(a, 0);
        }
        // What it returns may point anywhere its arguments reach (an
        // iterator's next item, a slice of a field).
        ret.join(&Val { locs: shared.clone(), ..Default::default() }, 0);
        // What it may do with shared memory it is handed: read it, and
        // write it too when the pointer is mutable.
        if let Some(r) = rec.as_deref_mut() {
            for (o, v) in c.args.iter().zip(c.argv) {
                let (Operand::Copy(p) | Operand::Move(p)) = o else { continue };
                let ty = self.eval_place(p, c.vals, c.body).2;
                for l in &v.locs {
                    r.access(l.clone(), Op::Load, c.at);
                    if ty.starts_with("&mut ") || ty.starts_with("*mut ") {
                        r.access(l.clone(), Op::Store, c.at);
                    }
                }
            }
        }
        if let Some(r) = rec.as_deref_mut() {
            // A call through a pointer or trait object the audit found no
            // target for is listed whatever it is handed.
            let dynamic = text.starts_with("move ") || text.starts_with("copy ") || text.starts_with("<dyn ");
            if (!shared.is_empty() || dynamic) && cb_ctx.is_none() {
                r.unfollowed.push(Unfollowed {
                    call: short(text),
                    site: c.at.site.clone(),
                    function: c.at.me.clone(),
                    why: if shared.is_empty() {
                        "no target found for this pointer or trait object".to_string()
                    } else {
                        format!(
                            "defined outside the audited crate; handed {}",
                            shared.iter().cloned().collect::<Vec<_>>().join(", ")
                        )
                    },
                });
            }
        }
        (ret, now)
    }

    fn callback_context(&self, callee: &str) -> Option<String> {
        let c = callee.trim();
        if let Some(rest) = c.strip_prefix('<') {
            let parts = split_path(&format!("<{rest}"));
            let m = strip_generics(parts.last()?);
            let inner = parts.first()?;
            let tr = inner.rsplit(" as ").next()?.trim_end_matches('>');
            let tr = strip_generics(split_path(tr).last()?);
            return self.model.trait_methods.get(&(tr, m)).and_then(|a| a.callback_context.clone());
        }
        let bodies = self.resolve_path(c);
        bodies.first().and_then(|&b| self.annots[b].callback_context.clone())
    }

    #[allow(clippy::too_many_arguments)]
    fn prim(
        &self,
        ps: &[Prim],
        argv: &[Val],
        locks: &BTreeSet<String>,
        rec: &mut Option<&mut Recorder>,
        at: &Ctx,
        dest: &Place,
        dest_unused: bool,
        callee: &str,
    ) -> BTreeSet<String> {
        let method = path_segs(callee).last().cloned().unwrap_or_default();
        // The memory operated on: the first argument that points into shared state.
        let target = argv.iter().find(|a| !a.locs.is_empty()).map(|a| a.locs.clone()).unwrap_or_default();
        let ordering = argv.iter().rev().find_map(|a| a.ordering.clone()).unwrap_or_else(|| "unordered".into());
        let mut out = locks.clone();
        for p in ps {
            match p {
                Prim::Lock => {
                    out.extend(target.iter().cloned());
                    if let Some(r) = rec.as_deref_mut() {
                        r.lock_locs.extend(target.iter().cloned());
                    }
                }
                Prim::Unlock => {
                    if let Some(r) = rec.as_deref_mut() {
                        r.lock_locs.extend(target.iter().cloned());
                    }
                    for t in &target {
                        out.remove(t);
                    }
                }
                _ => {
                    if let Some(r) = rec.as_deref_mut() {
                        let op = match p {
                            Prim::Load => Op::Load,
                            Prim::Store => Op::Store,
                            Prim::AtomicLoad => Op::AtomicLoad(ordering.clone()),
                            Prim::AtomicStore => Op::AtomicStore(ordering.clone()),
                            Prim::AtomicRmw => Op::AtomicRmw(method.clone(), ordering.clone()),
                            Prim::AtomicCas => Op::AtomicCas(ordering.clone()),
                            Prim::Lock | Prim::Unlock => unreachable!(),
                        };
                        for l in &target {
                            r.access(l.clone(), op.clone(), at);
                            if *p == Prim::AtomicCas {
                                let acc = r.accesses.last().cloned().expect("just pushed");
                                if dest.base() == 0 {
                                    r.returned_cas.push(acc);
                                } else if dest_unused {
                                    r.ignored_cas(&acc, at, "");
                                }
                            }
                        }
                    }
                }
            }
        }
        out
    }

    fn run_drop(
        &mut self,
        ty: &str,
        v: Val,
        locks: &BTreeSet<String>,
        rec: &mut Option<&mut Recorder>,
        at: &Ctx,
    ) -> Option<BTreeSet<String>> {
        let Some(&d) = self.drop_impl.get(&base_name(ty)) else { return Some(locks.clone()) };
        let arg = Val { pointee: Some(Box::new(v)), ..Default::default() };
        let s = self.analyse(d, locks, &[arg], &BTreeMap::new());
        if let Some(r) = rec.as_deref_mut() {
            let l = self.labels[d].clone();
            r.merge(&s, at, &l);
        }
        s.exit_locks.clone()
    }
}

fn short(text: &str) -> String {
    if text.starts_with('<') {
        return text.to_string();
    }
    path_segs(text).join("::")
}

fn find_as(inner: &str) -> Option<usize> {
    let b = inner.as_bytes();
    let mut depth = 0i32;
    let mut i = 0;
    while i + 4 <= b.len() {
        match b[i] {
            b'<' | b'(' | b'[' | b'{' => depth += 1,
            b'>' if i == 0 || b[i - 1] != b'-' => depth -= 1,
            b')' | b']' | b'}' => depth -= 1,
            _ => {}
        }
        if depth == 0 && &inner[i..i + 4] == " as " {
            return Some(i);
        }
        i += 1;
    }
    None
}

fn parse_local(s: &str) -> Option<usize> {
    s.trim().strip_prefix('_').and_then(|n| n.parse().ok())
}

fn subst(ty: &str, bindings: &BTreeMap<String, String>) -> String {
    let t = ty.trim();
    let (prefix, core) = split_refs(t);
    match bindings.get(core) {
        Some(b) => format!("{prefix}{b}"),
        None => t.to_string(),
    }
}

fn split_refs(t: &str) -> (&str, &str) {
    let mut i = 0;
    let b = t.as_bytes();
    loop {
        let rest = &t[i..];
        if rest.starts_with("&mut ") {
            i += 5;
        } else if rest.starts_with('&') {
            i += 1;
            if t[i..].starts_with('\'') {
                i += t[i..].find(' ').map_or(0, |x| x + 1);
            }
        } else if rest.starts_with("mut ") {
            i += 4;
        } else {
            break;
        }
        if i >= b.len() {
            break;
        }
    }
    (&t[..i], &t[i..])
}

/// Binds the callee's generic parameters from the types the caller passes: `&H` against
/// `&A` binds `H = A`; `impl Handler` against `A` too.
fn unify(pattern: &str, actual: &str, out: &mut BTreeMap<String, String>, e: &Engine) {
    let (_, p) = split_refs(pattern.trim());
    let (_, a) = split_refs(actual.trim());
    if e.is_generic(p) && !e.is_generic(a) && !a.is_empty() {
        out.entry(p.to_string()).or_insert_with(|| a.to_string());
    }
}

fn local_used_after(body: &Body, local: usize, _from: usize) -> bool {
    if local == 0 {
        return true;
    }
    let uses = |p: &Place| p.base() == local;
    for blk in &body.blocks {
        if blk.cleanup {
            continue;
        }
        for s in &blk.stmts {
            match &s.kind {
                StmtKind::Assign(d, rv) => {
                    if d.base() != local || d.has_deref() {
                        let hit = match rv {
                            Rvalue::Ref(p) => uses(p),
                            Rvalue::Use(Operand::Copy(p)) | Rvalue::Use(Operand::Move(p)) => uses(p),
                            Rvalue::Aggregate { fields, .. } => {
                                fields.iter().any(|f| matches!(f, Operand::Copy(p) | Operand::Move(p) if uses(p)))
                            }
                            Rvalue::Other { reads, .. } => reads.iter().any(uses),
                            _ => false,
                        };
                        if hit {
                            return true;
                        }
                    }
                }
                StmtKind::SetDiscriminant(_) | StmtKind::Nop => {}
            }
        }
        match &blk.term.kind {
            TermKind::Switch(Some(p), _) if uses(p) => return true,
            TermKind::Call { args, .. } => {
                if args.iter().any(|a| matches!(a, Operand::Copy(p) | Operand::Move(p) if uses(p))) {
                    return true;
                }
            }
            _ => {}
        }
    }
    false
}

fn reachability(body: &Body) -> Vec<BTreeSet<usize>> {
    let n = body.blocks.len();
    let succ: Vec<Vec<usize>> =
        body.blocks.iter().map(|b| b.term.successors().into_iter().filter(|&s| s < n).collect()).collect();
    (0..n)
        .map(|start| {
            let mut seen = BTreeSet::new();
            let mut work = succ[start].clone();
            while let Some(x) = work.pop() {
                if seen.insert(x) {
                    work.extend(succ[x].iter().copied());
                }
            }
            seen
        })
        .collect()
}

/// A readable name: `Bes2600::handle_rx_skb`, `Bes2600::extract_packets::{closure#0}`.
fn label(b: &Body, impl_for: Option<&str>) -> String {
    let segs = split_path(&b.path);
    match segs.iter().position(|s| s.starts_with("<impl")) {
        Some(i) => {
            let ty = impl_for.map(str::to_string).unwrap_or_else(|| {
                let s = &segs[i];
                s.trim_start_matches("<impl ").trim_end_matches('>').to_string()
            });
            let mut v = vec![ty];
            v.extend(segs[i + 1..].iter().cloned());
            v.join("::")
        }
        None => segs.join("::"),
    }
}

/// One call's operands as the caller sees them.
struct CallSite<'c> {
    args: &'c [Operand],
    argv: &'c [Val],
    vals: &'c [Val],
    body: &'c Body,
    dest: &'c Place,
    at: &'c Ctx,
    /// The call's result is never read (a compare-exchange's failure then goes unseen).
    cas_dest_unused: bool,
}

#[derive(Clone)]
struct Ctx {
    site: Site,
    locks: BTreeSet<String>,
    pos: (usize, usize),
    me: String,
}

#[derive(Default)]
struct Recorder {
    accesses: Vec<Acc>,
    rmws: Vec<Rmw>,
    unfollowed: Vec<Unfollowed>,
    calls: BTreeSet<(String, String)>,
    visited: BTreeSet<usize>,
    returned_cas: Vec<Acc>,
    callbacks: BTreeSet<(String, usize)>,
    /// Locks this function itself acquires or releases: it is the lock's implementation.
    lock_locs: BTreeSet<String>,
}

impl Recorder {
    fn access(&mut self, loc: String, op: Op, at: &Ctx) {
        self.accesses.push(Acc {
            loc,
            op,
            site: at.site.clone(),
            locks: at.locks.clone(),
            path: vec![format!("{} at {}", at.me, at.site)],
            pos: at.pos,
        });
    }

    fn ignored_cas(&mut self, c: &Acc, at: &Ctx, via: &str) {
        let mut path = vec![format!("{} at {}", at.me, at.site)];
        if !via.is_empty() {
            path.extend(c.path.iter().cloned());
        }
        self.rmws.push(Rmw {
            loc: c.loc.clone(),
            plain: false,
            ignored_cas: true,
            load_site: c.site.clone(),
            site: c.site.clone(),
            locks: c.locks.clone(),
            path,
        });
    }

    fn merge(&mut self, s: &Summary, at: &Ctx, callee: &str) {
        self.calls.insert((at.me.clone(), callee.to_string()));
        self.calls.extend(s.calls.iter().cloned());
        self.visited.extend(s.visited.iter().copied());
        self.callbacks.extend(s.callbacks.iter().cloned());
        let here = format!("{} at {}", at.me, at.site);
        let rename = |first: &mut String| {
            // `Callee at file:line` keeps its site; the note of how it was reached is added.
            if let Some((_, site)) = first.split_once(" at ") {
                *first = format!("{callee} at {site}");
            } else {
                *first = callee.to_string();
            }
        };
        for a in &s.accesses {
            let mut a = a.clone();
            let mut path = vec![here.clone()];
            if let Some(first) = a.path.first_mut() {
                rename(first);
            }
            path.extend(a.path);
            a.path = path;
            a.pos = at.pos;
            self.accesses.push(a);
        }
        for r in &s.rmws {
            let mut r = r.clone();
            if let Some(first) = r.path.first_mut() {
                rename(first);
            }
            let mut path = vec![here.clone()];
            path.extend(r.path);
            r.path = path;
            self.rmws.push(r);
        }
        self.unfollowed.extend(s.unfollowed.iter().cloned());
    }
}

fn body_is_external_drop(c: &str) -> bool {
    c.starts_with("std::mem::drop")
        || c.starts_with("core::mem::drop")
        || c.starts_with("drop::<")
        || c.starts_with("mem::drop")
}
