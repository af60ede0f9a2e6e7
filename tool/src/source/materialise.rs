//! Materialisation: a variant's driver core with every `#[cfg(...)]` resolved for its
//! feature set. Disabled items, fields, statements, arms and expressions are deleted,
//! enabled `cfg` attributes are stripped, `cfg_attr` becomes its attributes or nothing,
//! `cfg!(..)` becomes `true` or `false`; every other byte (comments, formatting) stays as
//! written. Edits are byte ranges from syn's span locations. Predicates: `feature = ".."`,
//! `test` (false: tests are not part of a package), `not`, `all`, `any`; anything else is
//! rejected with the file, line and column.

use crate::error::ResultExt;
use crate::error::{BenchError, Result};
use proc_macro2::Span;
use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use syn::punctuated::Punctuated;
use syn::spanned::Spanned;
use syn::visit::Visit;
use syn::{Attribute, Expr, Meta, Token};

/// The features that decide: the variant's set, plus `sim` when the simulator is kept.
#[derive(Clone, Debug)]
pub struct CfgSet {
    pub enabled: BTreeSet<String>,
    /// Every feature the crate declares (a `feature = "x"` outside it is an error).
    pub known: BTreeSet<String>,
}

/// One materialised file: its path relative to `src/` and its text.
#[derive(Clone, Debug, PartialEq)]
pub struct Output {
    pub rel_path: PathBuf,
    pub text: String,
    /// Declared under a kernel config cfg (`#[cfg(CONFIG_RUST)] mod kmod;`): only a kernel
    /// build compiles it (the kernel entry), so the contract audit leaves it out.
    pub kernel_only: bool,
}

/// Materialises the crate rooted at `src_dir/lib.rs`, following the `mod` declarations
/// that survive.
pub fn crate_tree(src_dir: &Path, cfg: &CfgSet) -> Result<Vec<Output>> {
    let mut out = Vec::new();
    walk(src_dir, Path::new("lib.rs"), cfg, false, &mut out)?;
    Ok(out)
}

fn walk(src_dir: &Path, rel: &Path, cfg: &CfgSet, kernel_only: bool, out: &mut Vec<Output>) -> Result<()> {
    let path = src_dir.join(rel);
    let text = std::fs::read_to_string(&path).or_env(format!("cannot read {}", path.display()))?;
    let (resolved, modules) = file(&path, &text, cfg)?;
    out.push(Output { rel_path: rel.to_path_buf(), text: resolved, kernel_only });
    // Child modules of lib.rs or mod.rs live beside it; of x.rs, in x/.
    let base = match rel.file_name().and_then(|n| n.to_str()) {
        Some("lib.rs") | Some("mod.rs") => rel.parent().unwrap_or(Path::new("")).to_path_buf(),
        _ => rel.with_extension(""),
    };
    for (m, kernel_gated) in modules {
        let flat = base.join(format!("{m}.rs"));
        let nested = base.join(&m).join("mod.rs");
        let next = if src_dir.join(&flat).is_file() { flat } else { nested };
        walk(src_dir, &next, cfg, kernel_only || kernel_gated, out)?;
    }
    Ok(())
}

/// Resolves one file; returns the text and the out-of-line modules kept (name, and
/// whether a kernel config cfg gates it).
pub fn file(path: &Path, text: &str, cfg: &CfgSet) -> Result<(String, Vec<(String, bool)>)> {
    let ast = syn::parse_file(text).map_err(|e| {
        let at = e.span().start();
        BenchError::usage(format!("{}:{}:{}: {e}", path.display(), at.line, at.column + 1))
    })?;
    let mut v = Resolver { text, path, cfg, edits: BTreeMap::new(), error: None, modules: Vec::new() };
    v.attrs_of(&ast.attrs, None);
    v.visit_file(&ast);
    if let Some(e) = v.error {
        return Err(e);
    }
    Ok((apply(text, &v.edits), v.modules))
}

/// `CONFIG_X` or `CONFIG_X = ".."`: a kernel configuration option.
fn kernel_config_cfg(meta: &Meta) -> bool {
    let is_config = |p: &syn::Path| p.get_ident().is_some_and(|i| i.to_string().starts_with("CONFIG_"));
    match meta {
        Meta::Path(p) => is_config(p),
        Meta::NameValue(nv) => is_config(&nv.path),
        Meta::List(_) => false,
    }
}

struct Resolver<'a> {
    text: &'a str,
    path: &'a Path,
    cfg: &'a CfgSet,
    /// start byte -> (end byte, replacement)
    edits: BTreeMap<usize, (usize, String)>,
    error: Option<BenchError>,
    modules: Vec<(String, bool)>,
}

impl Resolver<'_> {
    fn offset(&self, lc: proc_macro2::LineColumn) -> usize {
        let mut line_start = 0;
        for _ in 1..lc.line {
            line_start += self.text[line_start..].find('\n').map_or(self.text.len() - line_start, |i| i + 1);
        }
        let line = &self.text[line_start..];
        line_start + line.char_indices().nth(lc.column).map_or(line.len(), |(i, _)| i)
    }

    fn range(&self, span: Span) -> (usize, usize) {
        (self.offset(span.start()), self.offset(span.end()))
    }

    fn fail(&mut self, span: Span, msg: String) {
        if self.error.is_none() {
            let at = span.start();
            self.error = Some(
                BenchError::usage(format!("{}:{}:{}: {msg}", self.path.display(), at.line, at.column + 1))
                    .hint("cfg predicates may use feature = \"..\", test, not(..), all(..) and any(..)"),
            );
        }
    }

    /// Deletes a range, taking its whole lines when nothing else stands on them.
    fn delete(&mut self, start: usize, end: usize) {
        let t = self.text.as_bytes();
        let line_start = self.text[..start].rfind('\n').map_or(0, |i| i + 1);
        let line_end = self.text[end..].find('\n').map_or(t.len(), |i| end + i + 1);
        let only_ws = |a: usize, b: usize| t[a..b].iter().all(|c| c.is_ascii_whitespace());
        let (mut s, e) =
            if only_ws(line_start, start) && only_ws(end, line_end) { (line_start, line_end) } else { (start, end) };
        // Whole lines between a blank line and a blank line (or a closing brace, or the end
        // of the file) take the blank line before them too: removing an item removes one
        // of its separators, so a feature's cfg'd item leaves its neighbours' text exactly
        // as it was before the item was written (published patches stay byte-identical).
        if s == line_start && e == line_end && s > 0 {
            let prev_start = self.text[..s - 1].rfind('\n').map_or(0, |i| i + 1);
            let next_end = self.text[e..].find('\n').map_or(t.len(), |i| e + i + 1);
            let next = self.text[e..next_end].trim();
            if only_ws(prev_start, s) && (e == t.len() || next.is_empty() || next.starts_with('}')) {
                s = prev_start;
            }
        }
        self.edits.insert(s, (e, String::new()));
    }

    fn replace(&mut self, start: usize, end: usize, with: String) {
        self.edits.insert(start, (end, with));
    }

    fn eval(&mut self, meta: &Meta) -> Option<bool> {
        match meta {
            m if kernel_config_cfg(m) => {
                self.fail(m.span(), "a kernel config cfg (CONFIG_*) must stand alone in #[cfg(..)]".into());
                None
            }
            Meta::Path(p) if p.is_ident("test") => Some(false),
            Meta::NameValue(nv) if nv.path.is_ident("feature") => {
                let Expr::Lit(syn::ExprLit { lit: syn::Lit::Str(s), .. }) = &nv.value else {
                    self.fail(nv.span(), "feature = needs a string".into());
                    return None;
                };
                let name = s.value();
                if !self.cfg.known.contains(&name) {
                    self.fail(nv.span(), format!("unknown feature `{name}` (known: {})", join(&self.cfg.known)));
                    return None;
                }
                Some(self.cfg.enabled.contains(&name))
            }
            Meta::List(l) if l.path.is_ident("not") || l.path.is_ident("all") || l.path.is_ident("any") => {
                let args = match l.parse_args_with(Punctuated::<Meta, Token![,]>::parse_terminated) {
                    Ok(a) => a,
                    Err(e) => {
                        self.fail(l.span(), format!("cannot read cfg predicate: {e}"));
                        return None;
                    }
                };
                let vals: Option<Vec<bool>> = args.iter().map(|m| self.eval(m)).collect();
                let vals = vals?;
                if l.path.is_ident("not") {
                    if vals.len() != 1 {
                        self.fail(l.span(), "not(..) takes exactly one predicate".into());
                        return None;
                    }
                    Some(!vals[0])
                } else if l.path.is_ident("all") {
                    Some(vals.iter().all(|v| *v))
                } else {
                    Some(vals.iter().any(|v| *v))
                }
            }
            other => {
                let shown = quote::quote!(#other).to_string();
                self.fail(other.span(), format!("unsupported cfg predicate `{shown}`"));
                None
            }
        }
    }

    /// Handles the cfg and cfg_attr attributes of a node. `node` is the range to delete
    /// when a cfg is false. Returns false when the node was deleted.
    fn attrs_of(&mut self, attrs: &[Attribute], node: Option<(usize, usize)>) -> bool {
        for attr in attrs {
            if attr.path().is_ident("cfg") {
                let pred = match attr.parse_args::<Meta>() {
                    Ok(m) => m,
                    Err(e) => {
                        self.fail(attr.span(), format!("cannot read #[cfg]: {e}"));
                        return true;
                    }
                };
                // The kernel's configuration (`CONFIG_*`, passed by Kbuild) is decided when
                // the kernel builds the package: such a cfg stays as written.
                if kernel_config_cfg(&pred) {
                    continue;
                }
                match self.eval(&pred) {
                    Some(true) => {
                        let (s, e) = self.range(attr.span());
                        self.delete(s, e);
                    }
                    Some(false) => {
                        if let Some((s, e)) = node {
                            self.delete(s, e);
                        }
                        return false;
                    }
                    None => return true,
                }
            } else if attr.path().is_ident("cfg_attr") {
                self.cfg_attr(attr);
            }
        }
        true
    }

    fn cfg_attr(&mut self, attr: &Attribute) {
        let args = match attr.parse_args_with(Punctuated::<Meta, Token![,]>::parse_terminated) {
            Ok(a) if a.len() >= 2 => a,
            _ => {
                self.fail(attr.span(), "cfg_attr needs a predicate and at least one attribute".into());
                return;
            }
        };
        let mut it = args.iter();
        let Some(value) = self.eval(it.next().expect("len checked")) else { return };
        let (s, e) = self.range(attr.span());
        if !value {
            self.delete(s, e);
            return;
        }
        let inner = matches!(attr.style, syn::AttrStyle::Inner(_));
        let mut parts = Vec::new();
        for m in it {
            match m {
                // A doc attribute comes back as the `///` line it stands for.
                Meta::NameValue(nv) if nv.path.is_ident("doc") && !inner => {
                    if let Expr::Lit(syn::ExprLit { lit: syn::Lit::Str(text), .. }) = &nv.value {
                        parts.push(format!("/// {}", text.value()));
                        continue;
                    }
                    let (ms, me) = self.range(m.span());
                    parts.push(format!("#[{}]", &self.text[ms..me]));
                }
                m => {
                    // The attribute as written, not re-printed from tokens.
                    let (ms, me) = self.range(m.span());
                    parts.push(format!("{}[{}]", if inner { "#!" } else { "#" }, &self.text[ms..me]))
                }
            }
        }
        let indent = {
            let line_start = self.text[..s].rfind('\n').map_or(0, |i| i + 1);
            self.text[line_start..s].to_string()
        };
        self.replace(s, e, parts.join(&format!("\n{indent}")));
    }

    fn node(&self, span: Span, comma: Option<Span>) -> (usize, usize) {
        let (s, mut e) = self.range(span);
        if let Some(c) = comma {
            e = self.range(c).1;
        }
        (s, e)
    }
}

fn join(set: &BTreeSet<String>) -> String {
    set.iter().cloned().collect::<Vec<_>>().join(", ")
}

impl<'ast> Visit<'ast> for Resolver<'_> {
    fn visit_item(&mut self, item: &'ast syn::Item) {
        let attrs: &[Attribute] = match item {
            syn::Item::Const(i) => &i.attrs,
            syn::Item::Enum(i) => &i.attrs,
            syn::Item::ExternCrate(i) => &i.attrs,
            syn::Item::Fn(i) => &i.attrs,
            syn::Item::Impl(i) => &i.attrs,
            syn::Item::Macro(i) => &i.attrs,
            syn::Item::Mod(i) => &i.attrs,
            syn::Item::Static(i) => &i.attrs,
            syn::Item::Struct(i) => &i.attrs,
            syn::Item::Trait(i) => &i.attrs,
            syn::Item::Type(i) => &i.attrs,
            syn::Item::Union(i) => &i.attrs,
            syn::Item::Use(i) => &i.attrs,
            _ => &[],
        };
        let range = self.range(item.span());
        if self.attrs_of(attrs, Some(range)) {
            if let syn::Item::Mod(m) = item {
                if m.content.is_none() {
                    let gated = m.attrs.iter().any(|a| {
                        a.path().is_ident("cfg") && a.parse_args::<Meta>().is_ok_and(|p| kernel_config_cfg(&p))
                    });
                    self.modules.push((m.ident.to_string(), gated));
                }
            }
            syn::visit::visit_item(self, item);
        }
    }

    fn visit_impl_item(&mut self, item: &'ast syn::ImplItem) {
        let attrs: &[Attribute] = match item {
            syn::ImplItem::Const(i) => &i.attrs,
            syn::ImplItem::Fn(i) => &i.attrs,
            syn::ImplItem::Type(i) => &i.attrs,
            syn::ImplItem::Macro(i) => &i.attrs,
            _ => &[],
        };
        let range = self.range(item.span());
        if self.attrs_of(attrs, Some(range)) {
            syn::visit::visit_impl_item(self, item);
        }
    }

    fn visit_trait_item(&mut self, item: &'ast syn::TraitItem) {
        let attrs: &[Attribute] = match item {
            syn::TraitItem::Const(i) => &i.attrs,
            syn::TraitItem::Fn(i) => &i.attrs,
            syn::TraitItem::Type(i) => &i.attrs,
            syn::TraitItem::Macro(i) => &i.attrs,
            _ => &[],
        };
        let range = self.range(item.span());
        if self.attrs_of(attrs, Some(range)) {
            syn::visit::visit_trait_item(self, item);
        }
    }

    fn visit_fields_named(&mut self, fields: &'ast syn::FieldsNamed) {
        for pair in fields.named.pairs() {
            let f = pair.value();
            let range = self.node(f.span(), pair.punct().map(|c| c.span()));
            if self.attrs_of(&f.attrs, Some(range)) {
                self.visit_field(f);
            }
        }
    }

    fn visit_fields_unnamed(&mut self, fields: &'ast syn::FieldsUnnamed) {
        for pair in fields.unnamed.pairs() {
            let f = pair.value();
            let range = self.node(f.span(), pair.punct().map(|c| c.span()));
            if self.attrs_of(&f.attrs, Some(range)) {
                self.visit_field(f);
            }
        }
    }

    fn visit_field(&mut self, f: &'ast syn::Field) {
        // cfg attributes handled by the list; visit the type only.
        self.visit_type(&f.ty);
    }

    fn visit_item_enum(&mut self, e: &'ast syn::ItemEnum) {
        for pair in e.variants.pairs() {
            let v = pair.value();
            let range = self.node(v.span(), pair.punct().map(|c| c.span()));
            if self.attrs_of(&v.attrs, Some(range)) {
                self.visit_fields(&v.fields);
                if let Some((_, d)) = &v.discriminant {
                    self.visit_expr(d);
                }
            }
        }
    }

    fn visit_block(&mut self, b: &'ast syn::Block) {
        for stmt in &b.stmts {
            match stmt {
                syn::Stmt::Local(l) => {
                    let range = self.range(l.span());
                    if self.attrs_of(&l.attrs, Some(range)) {
                        syn::visit::visit_local(self, l);
                    }
                }
                syn::Stmt::Expr(e, semi) => {
                    let range = self.node(e.span(), semi.map(|s| s.span()));
                    if self.attrs_of(expr_attrs(e), Some(range)) {
                        self.visit_expr_inner(e);
                    }
                }
                syn::Stmt::Macro(m) => {
                    let range = self.node(m.span(), m.semi_token.map(|s| s.span()));
                    if self.attrs_of(&m.attrs, Some(range)) {
                        self.visit_stmt_macro(m);
                    }
                }
                syn::Stmt::Item(i) => self.visit_item(i),
            }
        }
    }

    fn visit_expr(&mut self, e: &'ast Expr) {
        let range = self.range(e.span());
        if self.attrs_of(expr_attrs(e), Some(range)) {
            self.visit_expr_inner(e);
        }
    }

    fn visit_arm(&mut self, arm: &'ast syn::Arm) {
        let range = self.node(arm.span(), arm.comma.map(|c| c.span()));
        if self.attrs_of(&arm.attrs, Some(range)) {
            self.visit_pat(&arm.pat);
            if let Some((_, g)) = &arm.guard {
                self.visit_expr(g);
            }
            self.visit_expr(&arm.body);
        }
    }

    fn visit_expr_macro(&mut self, m: &'ast syn::ExprMacro) {
        if m.mac.path.is_ident("cfg") {
            match m.mac.parse_body::<Meta>() {
                // `cfg!(CONFIG_X)` is the kernel's to decide, as `#[cfg(CONFIG_X)]` is.
                Ok(pred) if kernel_config_cfg(&pred) => {}
                Ok(pred) => {
                    if let Some(v) = self.eval(&pred) {
                        let (s, e) = self.range(m.span());
                        self.replace(s, e, v.to_string());
                    }
                }
                Err(e) => self.fail(m.span(), format!("cannot read cfg!(..): {e}")),
            }
        }
    }
}

impl Resolver<'_> {
    /// Visits an expression whose own attributes were handled: elements of arrays, tuples,
    /// calls and struct literals are lists whose entries may carry cfgs.
    fn visit_expr_inner(&mut self, e: &Expr) {
        match e {
            Expr::Array(a) => self.list(&a.elems),
            Expr::Tuple(t) => self.list(&t.elems),
            Expr::Call(c) => {
                self.visit_expr(&c.func);
                self.list(&c.args);
            }
            Expr::MethodCall(c) => {
                self.visit_expr(&c.receiver);
                self.list(&c.args);
            }
            Expr::Struct(s) => {
                for pair in s.fields.pairs() {
                    let f = pair.value();
                    let range = self.node(f.span(), pair.punct().map(|c| c.span()));
                    if self.attrs_of(&f.attrs, Some(range)) {
                        self.visit_expr(&f.expr);
                    }
                }
                if let Some(rest) = &s.rest {
                    self.visit_expr(rest);
                }
            }
            Expr::Macro(m) => self.visit_expr_macro(m),
            other => syn::visit::visit_expr(self, other),
        }
    }

    fn list(&mut self, elems: &Punctuated<Expr, Token![,]>) {
        for pair in elems.pairs() {
            let el = pair.value();
            let range = self.node(el.span(), pair.punct().map(|c| c.span()));
            if self.attrs_of(expr_attrs(el), Some(range)) {
                self.visit_expr_inner(el);
            }
        }
    }
}

fn expr_attrs(e: &Expr) -> &[Attribute] {
    match e {
        Expr::Array(x) => &x.attrs,
        Expr::Assign(x) => &x.attrs,
        Expr::Async(x) => &x.attrs,
        Expr::Await(x) => &x.attrs,
        Expr::Binary(x) => &x.attrs,
        Expr::Block(x) => &x.attrs,
        Expr::Break(x) => &x.attrs,
        Expr::Call(x) => &x.attrs,
        Expr::Cast(x) => &x.attrs,
        Expr::Closure(x) => &x.attrs,
        Expr::Const(x) => &x.attrs,
        Expr::Continue(x) => &x.attrs,
        Expr::Field(x) => &x.attrs,
        Expr::ForLoop(x) => &x.attrs,
        Expr::Group(x) => &x.attrs,
        Expr::If(x) => &x.attrs,
        Expr::Index(x) => &x.attrs,
        Expr::Let(x) => &x.attrs,
        Expr::Lit(x) => &x.attrs,
        Expr::Loop(x) => &x.attrs,
        Expr::Macro(x) => &x.attrs,
        Expr::Match(x) => &x.attrs,
        Expr::MethodCall(x) => &x.attrs,
        Expr::Paren(x) => &x.attrs,
        Expr::Path(x) => &x.attrs,
        Expr::Range(x) => &x.attrs,
        Expr::Reference(x) => &x.attrs,
        Expr::Repeat(x) => &x.attrs,
        Expr::Return(x) => &x.attrs,
        Expr::Struct(x) => &x.attrs,
        Expr::Try(x) => &x.attrs,
        Expr::Tuple(x) => &x.attrs,
        Expr::Unary(x) => &x.attrs,
        Expr::Unsafe(x) => &x.attrs,
        Expr::While(x) => &x.attrs,
        _ => &[],
    }
}

/// Applies non-overlapping edits; an edit inside a deleted range is dropped with it.
fn apply(text: &str, edits: &BTreeMap<usize, (usize, String)>) -> String {
    let mut out = String::with_capacity(text.len());
    let mut pos = 0;
    for (&start, (end, with)) in edits {
        if start < pos {
            continue;
        }
        out.push_str(&text[pos..start]);
        out.push_str(with);
        pos = *end;
    }
    out.push_str(&text[pos..]);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cfg(enabled: &[&str]) -> CfgSet {
        CfgSet {
            enabled: enabled.iter().map(|s| s.to_string()).collect(),
            known: ["a", "b", "sim"].iter().map(|s| s.to_string()).collect(),
        }
    }

    fn resolve(src: &str, enabled: &[&str]) -> String {
        file(Path::new("fixture.rs"), src, &cfg(enabled)).map(|(t, _)| t).unwrap_or_else(|e| panic!("{e}"))
    }

    const FIXTURE: &str = r#"//! Fixture.
#![cfg_attr(not(feature = "sim"), no_std)]

/// Kept always.
pub struct S {
    /// contract: writers(bh)
    #[cfg(feature = "a")]
    pub x: u32, // trailing comment stays with x
    #[cfg(not(feature = "a"))]
    pub x: i64,
    #[cfg_attr(feature = "b", doc = "contract: writers(rx_work)")]
    pub y: u8,
}

#[cfg(all(feature = "a", not(feature = "b")))]
fn only_a() {}

pub const L: &[&str] = &[
    #[cfg(feature = "a")]
    "a",
    #[cfg(feature = "b")]
    "b",
];

fn body(v: u8) -> u8 {
    #[cfg(any(feature = "a", feature = "b"))]
    let z = 1;
    #[cfg(not(any(feature = "a", feature = "b")))]
    let z = 2;
    #[cfg(feature = "b")]
    {
        // a block statement
        call();
    }
    #[cfg(feature = "a")]
    call();
    let flag = cfg!(feature = "b");
    match v {
        #[cfg(feature = "a")]
        0 => z,
        _ => z + 1,
    }
}

#[cfg(test)]
mod tests {}
"#;

    #[test]
    fn every_cfg_form_resolves_for_a() {
        let out = resolve(FIXTURE, &["a"]);
        assert!(out.contains("#![no_std]"), "{out}");
        assert!(
            out.contains("    /// contract: writers(bh)\n    pub x: u32, // trailing comment stays with x\n"),
            "{out}"
        );
        assert!(!out.contains("i64"));
        assert!(!out.contains("writers(rx_work)"));
        assert!(out.contains("fn only_a() {}"));
        assert!(out.contains("    \"a\",\n];"), "{out}");
        assert!(!out.contains("\"b\""));
        assert!(out.contains("    let z = 1;\n"));
        assert!(!out.contains("let z = 2"));
        assert!(!out.contains("a block statement"));
        assert!(out.contains("    call();\n    let flag = false;"), "{out}");
        assert!(out.contains("        0 => z,\n"));
        assert!(!out.contains("mod tests"));
        assert!(!out.contains("cfg"), "no cfg left: {out}");
        assert!(syn::parse_file(&out).is_ok());
    }

    #[test]
    fn every_cfg_form_resolves_for_b_and_none() {
        let out = resolve(FIXTURE, &["b"]);
        assert!(out.contains("    pub x: i64,\n"));
        assert!(out.contains("    /// contract: writers(rx_work)\n    pub y: u8,"), "{out}");
        assert!(!out.contains("only_a"));
        assert!(out.contains("// a block statement"));
        assert!(out.contains("let flag = true;"));
        assert!(!out.contains("0 => z"));
        let none = resolve(FIXTURE, &[]);
        assert!(none.contains("let z = 2;"));
        assert!(none.contains("pub const L: &[&str] = &[\n];"), "{none}");
        let sim = resolve(FIXTURE, &["sim"]);
        assert!(!sim.contains("no_std"), "cfg_attr false removes the attribute");
    }

    #[test]
    fn kernel_config_cfgs_stay_for_kbuild_and_must_stand_alone() {
        let src = "#[cfg(CONFIG_RUST)]\nmod kmod;\n#[cfg(feature = \"a\")]\nfn a() {}\n";
        let out = resolve(src, &[]);
        assert_eq!(out, "#[cfg(CONFIG_RUST)]\nmod kmod;\n");
        let e =
            file(Path::new("x.rs"), "#[cfg(all(CONFIG_RUST, feature = \"a\"))]\nfn f() {}\n", &cfg(&[])).unwrap_err();
        assert!(e.message.contains("x.rs:1:11: a kernel config cfg"), "{}", e.message);
        let src = "const ON: bool = cfg!(CONFIG_KCSAN);\nconst A: bool = cfg!(feature = \"a\");\n";
        assert_eq!(resolve(src, &["a"]), "const ON: bool = cfg!(CONFIG_KCSAN);\nconst A: bool = true;\n");
        let e = file(Path::new("x.rs"), "const X: bool = cfg!(not(CONFIG_KCSAN));\n", &cfg(&[])).unwrap_err();
        assert!(e.message.contains("x.rs:1:26: a kernel config cfg"), "{}", e.message);
    }

    #[test]
    fn untouched_text_stays_byte_for_byte() {
        let src = "// c\nfn   f( ) {  /* odd   spacing */ }\n";
        assert_eq!(resolve(src, &[]), src);
    }

    #[test]
    fn unsupported_predicates_and_unknown_features_are_rejected_with_a_location() {
        let e =
            file(Path::new("x.rs"), "fn f() {}\n#[cfg(target_os = \"linux\")]\nfn g() {}\n", &cfg(&[])).unwrap_err();
        assert!(e.message.starts_with("x.rs:2:"), "{}", e.message);
        assert!(e.message.contains("unsupported cfg predicate"), "{}", e.message);
        let e = file(Path::new("x.rs"), "#[cfg(feature = \"zz\")]\nfn g() {}\n", &cfg(&[])).unwrap_err();
        assert!(e.message.contains("unknown feature `zz`"), "{}", e.message);
    }
}

/// Writes a materialised tree as a standalone crate named `bes2600` with no features.
pub fn write_crate(dir: &Path, files: &[Output], extra_manifest: &str) -> Result<()> {
    let io =
        |p: &Path, e: std::io::Error| BenchError::env(format!("cannot write {}", p.display())).cause(e.to_string());
    for f in files {
        let p = dir.join("src").join(&f.rel_path);
        std::fs::create_dir_all(p.parent().expect("has a parent")).map_err(|e| io(&p, e))?;
        std::fs::write(&p, &f.text).map_err(|e| io(&p, e))?;
    }
    let manifest = format!(
        "[package]\nname = \"bes2600\"\nversion = \"0.1.0\"\nedition = \"2021\"\n\n[lib]\npath = \"src/lib.rs\"\n{extra_manifest}\n[workspace]\n"
    );
    let p = dir.join("Cargo.toml");
    std::fs::write(&p, manifest).map_err(|e| io(&p, e))
}

#[cfg(test)]
mod driver_tests {
    use super::*;
    use crate::workspace::variant::Variants;

    fn root() -> PathBuf {
        Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap().to_path_buf()
    }

    #[test]
    fn every_variant_of_the_driver_materialises_and_compiles_alone() {
        let root = root();
        let variants = Variants::load(&root).unwrap();
        let known: BTreeSet<String> = variants.driver_features.iter().cloned().chain(["sim".to_string()]).collect();
        let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
        for v in &variants.list {
            let cfg = CfgSet { enabled: v.features.iter().cloned().collect(), known: known.clone() };
            let files = crate_tree(&root.join("driver/src"), &cfg).unwrap();
            let names: Vec<String> = files.iter().map(|f| f.rel_path.display().to_string()).collect();
            assert!(names.contains(&"bh.rs".to_string()) && !names.iter().any(|n| n.starts_with("sim")), "{names:?}");
            for f in &files {
                // Only the kernel's config cfgs stay (Kbuild decides them).
                let left = f.text.matches("#[cfg").count() - f.text.matches("#[cfg(CONFIG_").count();
                assert_eq!(left, 0, "{} {}: cfg left", v.name, f.rel_path.display());
                let left = f.text.matches("cfg!(").count() - f.text.matches("cfg!(CONFIG_").count();
                assert_eq!(left, 0, "{} {}: cfg! left", v.name, f.rel_path.display());
            }
            let lib = &files[0].text;
            assert!(lib.contains("#![no_std]"), "{}: the core is no_std", v.name);
            let device = files.iter().find(|f| f.rel_path == Path::new("device.rs")).unwrap();
            let atomic = v.features.iter().any(|f| f == "c-prep-atomic");
            assert_eq!(device.text.contains("pub hw_bufs_used: Atomic<P::Word>"), atomic, "{}", v.name);
            assert_eq!(device.text.contains("pub hw_bufs_used: SingleWriter<P::Word>"), !atomic, "{}", v.name);
            let dir = tempfile::tempdir().unwrap();
            write_crate(dir.path(), &files, "").unwrap();
            let out = std::process::Command::new(&cargo)
                .args(["check", "--quiet", "--offline"])
                .current_dir(dir.path())
                .env("CARGO_TARGET_DIR", root.join("target/bench-materialise-check"))
                .output()
                .unwrap();
            assert!(
                out.status.success(),
                "{} does not compile alone:\n{}",
                v.name,
                String::from_utf8_lossy(&out.stderr)
            );
        }
    }
}

#[cfg(test)]
mod sim_equivalence_tests {
    use super::*;
    use crate::workspace::variant::Variants;

    /// The simulator compiled on a variant's materialised tree (no features left) gives the
    /// same report, byte for byte, as the feature build of the same variant.
    #[test]
    fn simulator_on_the_materialised_tree_matches_the_feature_build() {
        let root = Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap().to_path_buf();
        let variants = Variants::load(&root).unwrap();
        let known: BTreeSet<String> = variants.driver_features.iter().cloned().chain(["sim".to_string()]).collect();
        let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
        let args = ["--seed", "3", "--stage", "1:20", "--stage", "4:40"];
        for v in &variants.list {
            let name = &v.name;
            let mut enabled: BTreeSet<String> = v.features.iter().cloned().collect();
            enabled.insert("sim".into());
            let files = crate_tree(&root.join("driver/src"), &CfgSet { enabled, known: known.clone() }).unwrap();
            assert!(files.iter().all(|f| !f.text.contains("#[cfg(feature")), "{name}: feature cfgs left");
            let dir = tempfile::tempdir().unwrap();
            write_crate(
                dir.path(),
                &files,
                "[dependencies]\ncorosensei = \"0.3\"\n\n[[bin]]\nname = \"bes2600-sim\"\npath = \"src/bin/bes2600-sim.rs\"\n",
            )
            .unwrap();
            std::fs::create_dir_all(dir.path().join("src/bin")).unwrap();
            std::fs::copy(root.join("driver/src/bin/bes2600-sim.rs"), dir.path().join("src/bin/bes2600-sim.rs"))
                .unwrap();
            std::fs::copy(root.join("Cargo.lock"), dir.path().join("Cargo.lock")).unwrap();
            let target = root.join("target/bench-materialise-sim");
            let build = std::process::Command::new(&cargo)
                .args(["build", "--quiet", "--release", "--offline"])
                .current_dir(dir.path())
                .env("CARGO_TARGET_DIR", &target)
                .output()
                .unwrap();
            assert!(build.status.success(), "{name}: {}", String::from_utf8_lossy(&build.stderr));
            let materialised =
                std::process::Command::new(target.join("release/bes2600-sim")).args(args).output().unwrap();
            let feature_build = crate::sim::build::build(&root, v).unwrap();
            let featured = std::process::Command::new(feature_build).args(args).output().unwrap();
            assert_eq!(materialised.status.code(), featured.status.code(), "{name}");
            assert!(!featured.stdout.is_empty());
            assert_eq!(
                String::from_utf8_lossy(&materialised.stdout),
                String::from_utf8_lossy(&featured.stdout),
                "{name}"
            );
        }
    }
}
