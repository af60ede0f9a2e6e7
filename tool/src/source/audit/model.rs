//! What the crate declares, from rustdoc's JSON (`rustdoc-types`): every struct with its
//! fields in declaration order (the order MIR's field indices use) and their `contract:`
//! lines after `cfg_attr`; statics and their contracts; impl blocks (which type, which
//! trait) keyed by where they start, as MIR names them; and the doc annotations of
//! functions: `context:` (an entry point), `access:` (a memory primitive of the platform
//! layer) and `callback-context:` (a registration whose callable runs in that context).

use super::mir::Site;
use super::Contract;
use crate::error::{BenchError, Result};
use rustdoc_types::{Crate, ItemEnum, StructKind, Type};
use std::collections::BTreeMap;

/// What a primitive does to the memory its pointer argument reaches.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Prim {
    Load,
    Store,
    AtomicLoad,
    AtomicStore,
    /// fetch-add, swap, ...: one indivisible read-modify-write.
    AtomicRmw,
    /// compare-exchange: indivisible, but the update is lost if its failure is ignored.
    AtomicCas,
    Lock,
    Unlock,
}

impl Prim {
    pub fn parse(s: &str) -> Option<Prim> {
        Some(match s.trim() {
            "load" => Prim::Load,
            "store" => Prim::Store,
            "atomic-load" => Prim::AtomicLoad,
            "atomic-store" => Prim::AtomicStore,
            "atomic-rmw" => Prim::AtomicRmw,
            "atomic-cas" => Prim::AtomicCas,
            "lock" => Prim::Lock,
            "unlock" => Prim::Unlock,
            _ => return None,
        })
    }
}

#[derive(Clone, Debug, Default)]
pub struct Annot {
    pub contexts: Vec<String>,
    pub access: Option<Prim>,
    pub callback_context: Option<String>,
}

#[derive(Clone, Debug)]
pub struct FieldDef {
    pub owner: String,
    pub name: String,
    pub contract: Option<Contract>,
    pub site: Site,
    /// The field's struct type (arrays: the element's), when it is a struct of the crate.
    pub ty_struct: Option<String>,
}

impl FieldDef {
    /// `Owner.field`, the name every report uses.
    pub fn id(&self) -> String {
        if self.owner.is_empty() {
            format!("static {}", self.name)
        } else {
            format!("{}.{}", self.owner, self.name)
        }
    }
}

#[derive(Clone, Debug)]
pub struct StructDef {
    pub fields: Vec<FieldDef>,
    /// At least one field states a contract: the struct holds shared state.
    pub contract_bearing: bool,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ImplDef {
    pub for_name: Option<String>,
    pub trait_name: Option<String>,
}

/// The methods of the traits `#[derive]` implements, to tell derived impls that start at
/// the same place apart.
const DERIVED_METHODS: [(&str, &[&str]); 9] = [
    ("Clone", &["clone", "clone_from"]),
    ("PartialEq", &["eq", "ne"]),
    ("Eq", &["assert_receiver_is_total_eq"]),
    ("Debug", &["fmt"]),
    ("Hash", &["hash"]),
    ("PartialOrd", &["partial_cmp", "lt", "le", "gt", "ge"]),
    ("Ord", &["cmp"]),
    ("Default", &["default"]),
    ("Copy", &[]),
];

impl Model {
    /// The impl block starting at `at` that holds method `method`: the only one there, or
    /// among derived impls sharing the start, the one whose trait has that method; else
    /// the first by trait name (a stable choice).
    pub fn impl_for(&self, at: &(String, u32, u32), method: &str) -> Option<&ImplDef> {
        let all = self.impls.get(at)?;
        if all.len() == 1 {
            return all.first();
        }
        let has = |d: &&ImplDef| {
            let Some(t) = d.trait_name.as_deref() else { return false };
            DERIVED_METHODS.iter().any(|(tr, ms)| *tr == t && ms.contains(&method))
                || self.trait_methods.contains_key(&(t.to_string(), method.to_string()))
        };
        all.iter().find(has).or_else(|| all.iter().min_by_key(|d| d.trait_name.clone()))
    }
}

#[derive(Clone, Debug)]
pub struct FnDoc {
    pub name: String,
    pub file: String,
    pub begin: u32,
    pub end: u32,
    pub annot: Annot,
}

#[derive(Clone, Debug, Default)]
pub struct Model {
    pub structs: BTreeMap<String, StructDef>,
    pub statics: BTreeMap<String, FieldDef>,
    /// Impl blocks by where they start. Derived impls (`#[derive(Clone, PartialEq)]`) can
    /// share a start: all of them are kept, and [`Model::impl_for`] picks by method.
    pub impls: BTreeMap<(String, u32, u32), Vec<ImplDef>>,
    pub fns: Vec<FnDoc>,
    /// Trait methods without a body in this crate (the platform layer's), by (trait, method).
    pub trait_methods: BTreeMap<(String, String), Annot>,
    /// Every trait of the crate.
    pub traits: BTreeMap<String, ()>,
}

pub fn parse_contract(line: &str, at: &Site) -> Result<Contract> {
    let line = line.trim();
    let bad = || {
        BenchError::usage(format!("{at}: cannot read `contract: {line}`"))
            .hint("write one of: writers(ctx, ...), atomic, lock(name), owner(ctx), init")
    };
    let args = |s: &str| -> Option<Vec<String>> {
        let inner = s.split_once('(')?.1.strip_suffix(')')?;
        Some(inner.split(',').map(|x| x.trim().to_string()).filter(|x| !x.is_empty()).collect())
    };
    Ok(match line {
        "atomic" => Contract::Atomic,
        "init" => Contract::Init,
        l if l.starts_with("writers(") => {
            let w = args(l).ok_or_else(bad)?;
            if w.is_empty() {
                return Err(bad());
            }
            Contract::Writers(w.into_iter().collect())
        }
        l if l.starts_with("lock(") => Contract::Lock(args(l).ok_or_else(bad)?.into_iter().next().ok_or_else(bad)?),
        l if l.starts_with("owner(") => Contract::Owner(args(l).ok_or_else(bad)?.into_iter().next().ok_or_else(bad)?),
        _ => return Err(bad()),
    })
}

fn doc_value<'a>(docs: &'a str, key: &str) -> Vec<&'a str> {
    docs.lines().filter_map(|l| l.trim().strip_prefix(key)).map(str::trim).collect()
}

fn annot(docs: Option<&String>, site: &Site) -> Result<Annot> {
    let mut a = Annot::default();
    let Some(d) = docs else { return Ok(a) };
    for c in doc_value(d, "context:") {
        a.contexts.extend(c.split(',').map(|x| x.trim().to_string()).filter(|x| !x.is_empty()));
    }
    if let Some(v) = doc_value(d, "access:").first() {
        a.access = Some(Prim::parse(v).ok_or_else(|| {
            BenchError::usage(format!("{site}: cannot read `access: {v}`"))
                .hint("write one of: load, store, atomic-load, atomic-store, atomic-rmw, atomic-cas, lock, unlock")
        })?);
    }
    a.callback_context = doc_value(d, "callback-context:").first().map(|s| s.to_string());
    Ok(a)
}

/// The last path segment without generic arguments: `device::Bes2600<P>` -> `Bes2600`.
pub fn base_name(ty: &str) -> String {
    let mut t = ty.trim();
    loop {
        let before = t;
        t = t.trim_start_matches('&').trim_start();
        if t.starts_with('\'') {
            t = t.split_once(' ').map_or(t, |x| x.1);
        }
        t = t.trim_start_matches("mut ").trim_start_matches("*const ").trim_start_matches("*mut ");
        t = t.trim_start_matches("dyn ");
        if t == before {
            break;
        }
    }
    // `Dev::<P>` and `device::Dev<P>` alike.
    let t = t.split('<').next().unwrap_or(t).trim_end_matches("::");
    t.rsplit("::").next().unwrap_or(t).trim().to_string()
}

fn type_struct(ty: &Type, krate: &Crate) -> Option<String> {
    match ty {
        Type::ResolvedPath(p) => {
            let item = krate.index.get(&p.id)?;
            match &item.inner {
                ItemEnum::Struct(_) => item.name.clone(),
                _ => None,
            }
        }
        Type::Array { type_, .. } | Type::Slice(type_) => type_struct(type_, krate),
        _ => None,
    }
}

fn interior_mutable(ty: &Type, krate: &Crate) -> bool {
    match ty {
        Type::ResolvedPath(p) => {
            let name = base_name(&p.path);
            let known = name.starts_with("Atomic")
                || matches!(name.as_str(), "Cell" | "RefCell" | "UnsafeCell" | "OnceCell" | "Mutex" | "RwLock");
            let crate_struct = krate.index.get(&p.id).is_some_and(|i| {
                matches!(&i.inner, ItemEnum::Struct(st) if match &st.kind {
                    StructKind::Plain { fields, .. } => fields.iter().any(|f| {
                        krate.index.get(f).is_some_and(|fi| match &fi.inner {
                            ItemEnum::StructField(t) => interior_mutable(t, krate),
                            _ => false,
                        })
                    }),
                    StructKind::Tuple(fields) => fields.iter().flatten().any(|f| {
                        krate.index.get(f).is_some_and(|fi| match &fi.inner {
                            ItemEnum::StructField(t) => interior_mutable(t, krate),
                            _ => false,
                        })
                    }),
                    StructKind::Unit => false,
                })
            });
            known || crate_struct
        }
        Type::Array { type_, .. } | Type::Slice(type_) => interior_mutable(type_, krate),
        _ => false,
    }
}

fn site_of(span: &Option<rustdoc_types::Span>) -> Site {
    match span {
        Some(s) => Site { file: s.filename.display().to_string(), line: s.begin.0 as u32 },
        None => Site::default(),
    }
}

/// Reads rustdoc JSON into the model. Long because it walks every item kind that can
/// carry a contract or an annotation (structs and fields, statics, impls, functions).
pub fn from_json(bytes: &[u8], what: &str) -> Result<Model> {
    let krate: Crate = serde_json::from_slice(bytes).map_err(|e| {
        BenchError::env(format!("cannot read rustdoc's JSON for {what}: {e}"))
            .hint(format!("bench reads rustdoc JSON format {}; check `rustc --version`", rustdoc_types::FORMAT_VERSION))
    })?;
    let mut m = Model::default();
    // In id order: rustdoc's index is a hash map, and the model must not depend on its order.
    let mut items: Vec<(&rustdoc_types::Id, &rustdoc_types::Item)> = krate.index.iter().collect();
    items.sort_by_key(|(id, _)| id.0);
    for (_, item) in items {
        if item.crate_id != 0 {
            continue;
        }
        match &item.inner {
            ItemEnum::Struct(s) => {
                let name = item.name.clone().unwrap_or_default();
                let mut fields = Vec::new();
                if let StructKind::Plain { fields: ids, .. } = &s.kind {
                    for id in ids {
                        let Some(f) = krate.index.get(id) else { continue };
                        let ItemEnum::StructField(ty) = &f.inner else { continue };
                        let site = site_of(&f.span);
                        let mut contract = None;
                        if let Some(d) = &f.docs {
                            if let Some(c) = doc_value(d, "contract:").last() {
                                contract = Some(parse_contract(c, &site)?);
                            }
                        }
                        fields.push(FieldDef {
                            owner: name.clone(),
                            name: f.name.clone().unwrap_or_default(),
                            contract,
                            site,
                            ty_struct: type_struct(ty, &krate),
                        });
                    }
                }
                let contract_bearing = fields.iter().any(|f| f.contract.is_some());
                m.structs.insert(name, StructDef { fields, contract_bearing });
            }
            ItemEnum::Static(s) => {
                // Only a static that can change is shared state: `static mut`, or one with
                // interior mutability (an atomic, a cell, a lock, a contract-bearing struct).
                if !s.is_mutable && !interior_mutable(&s.type_, &krate) {
                    continue;
                }
                let site = site_of(&item.span);
                let contract = match item.docs.as_deref().map(|d| doc_value(d, "contract:")) {
                    Some(v) if !v.is_empty() => Some(parse_contract(v[v.len() - 1], &site)?),
                    _ => None,
                };
                let name = item.name.clone().unwrap_or_default();
                m.statics.insert(
                    name.clone(),
                    FieldDef { owner: String::new(), name, contract, site, ty_struct: type_struct(&s.type_, &krate) },
                );
            }
            ItemEnum::Impl(i) => {
                if let Some(sp) = &item.span {
                    let for_name = match &i.for_ {
                        Type::ResolvedPath(p) => Some(base_name(&p.path)),
                        Type::Primitive(p) => Some(p.clone()),
                        _ => None,
                    };
                    let trait_name = i.trait_.as_ref().map(|t| base_name(&t.path));
                    let key = (sp.filename.display().to_string(), sp.begin.0 as u32, sp.begin.1 as u32);
                    let def = ImplDef { for_name, trait_name };
                    let all = m.impls.entry(key).or_default();
                    if !all.contains(&def) {
                        all.push(def);
                    }
                }
            }
            ItemEnum::Trait(t) => {
                let tname = item.name.clone().unwrap_or_default();
                m.traits.insert(tname.clone(), ());
                for id in &t.items {
                    let Some(f) = krate.index.get(id) else { continue };
                    if let ItemEnum::Function(_) = &f.inner {
                        let a = annot(f.docs.as_ref(), &site_of(&f.span))?;
                        m.trait_methods.insert((tname.clone(), f.name.clone().unwrap_or_default()), a);
                    }
                }
            }
            ItemEnum::Function(_) => {
                if let Some(sp) = &item.span {
                    let a = annot(item.docs.as_ref(), &site_of(&item.span))?;
                    m.fns.push(FnDoc {
                        name: item.name.clone().unwrap_or_default(),
                        file: sp.filename.display().to_string(),
                        begin: sp.begin.0 as u32,
                        end: sp.end.0 as u32,
                        annot: a,
                    });
                }
            }
            _ => {}
        }
    }
    Ok(m)
}

impl Model {
    /// The struct a MIR type names, if it is one of the crate's.
    pub fn struct_of(&self, ty: &str) -> Option<&StructDef> {
        let t = ty.trim();
        if t.starts_with('[') {
            let inner = t.trim_start_matches('[');
            let inner = inner.rsplit_once(';').map_or(inner.trim_end_matches(']'), |x| x.0);
            return self.struct_of(inner);
        }
        self.structs.get(&base_name(t))
    }

    /// The annotations of the function whose MIR body starts at `site` with this name.
    pub fn fn_annot(&self, name: &str, site: &Site) -> Option<&Annot> {
        self.fns
            .iter()
            .filter(|f| f.name == name && f.file == site.file && f.begin <= site.line && site.line <= f.end)
            .min_by_key(|f| f.end - f.begin)
            .map(|f| &f.annot)
    }
}
