//! A reader for rustc's MIR as `-Zunpretty=mir -Zmir-include-spans=yes` prints it: per
//! function its locals with their types, its basic blocks (cleanup blocks left out: an
//! unwinding path runs no driver logic), each statement and terminator with its source
//! line. Only what the contract audit needs is kept: places (typed field projections,
//! derefs, indexing), the operands and references of each right-hand side, calls with
//! their resolved callee text, drops, and the control flow edges.

use std::collections::BTreeMap;

/// A source position `file:line`.
#[derive(Clone, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Site {
    pub file: String,
    pub line: u32,
}

impl std::fmt::Display for Site {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}:{}", self.file, self.line)
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Place {
    Local(usize),
    Deref(Box<Place>),
    /// Field index and the field's type as printed.
    Field(Box<Place>, usize, String),
    /// Indexing, constant indexing and subslices: the element of an array or slice.
    Index(Box<Place>),
    /// `(P as Variant)`: an enum's variant; its fields follow.
    Downcast(Box<Place>),
}

impl Place {
    pub fn base(&self) -> usize {
        match self {
            Place::Local(n) => *n,
            Place::Deref(p) | Place::Field(p, _, _) | Place::Index(p) | Place::Downcast(p) => p.base(),
        }
    }
    pub fn has_deref(&self) -> bool {
        match self {
            Place::Local(_) => false,
            Place::Deref(_) => true,
            Place::Field(p, _, _) | Place::Index(p) | Place::Downcast(p) => p.has_deref(),
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Operand {
    Copy(Place),
    Move(Place),
    /// A constant, as printed after `const `.
    Const(String),
}

/// The parts of a right-hand side the audit reads.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Rvalue {
    /// `&P`, `&mut P`, `&raw const P`, `&raw mut P`.
    Ref(Place),
    /// `copy P`, `move P`, `CopyForDeref(P)`, possibly cast.
    Use(Operand),
    /// An aggregate: its operands in field order. `closure` holds the closure type for a
    /// closure's environment.
    Aggregate { closure: Option<String>, adt: Option<String>, fields: Vec<Operand> },
    /// A cast of a function item to a pointer: `path as fn(..) (PointerCoercion(ReifyFnPointer..))`.
    FnItem(String),
    /// Anything else: the places it reads and the constants it uses.
    Other { reads: Vec<Place>, consts: Vec<String> },
}

#[derive(Clone, Debug)]
pub enum StmtKind {
    Assign(Place, Rvalue),
    /// `discriminant(P) = N`: a store to P.
    SetDiscriminant(Place),
    Nop,
}

#[derive(Clone, Debug)]
pub struct Stmt {
    pub kind: StmtKind,
    pub site: Site,
}

#[derive(Clone, Debug)]
pub enum TermKind {
    Goto(usize),
    Switch(Option<Place>, Vec<usize>),
    Return,
    /// `drop(P)`: runs P's destructor.
    Drop(Place, Option<usize>),
    Call {
        dest: Place,
        callee: String,
        args: Vec<Operand>,
        target: Option<usize>,
    },
    /// Anything else that continues to these blocks (assert, falseEdge, ...).
    Other(Vec<usize>),
}

#[derive(Clone, Debug)]
pub struct Term {
    pub kind: TermKind,
    pub site: Site,
}

impl Term {
    pub fn successors(&self) -> Vec<usize> {
        match &self.kind {
            TermKind::Goto(b) => vec![*b],
            TermKind::Switch(_, bs) | TermKind::Other(bs) => bs.clone(),
            TermKind::Return => vec![],
            TermKind::Drop(_, t) | TermKind::Call { target: t, .. } => t.iter().copied().collect(),
        }
    }
}

#[derive(Clone, Debug)]
pub struct Block {
    pub stmts: Vec<Stmt>,
    pub term: Term,
    pub cleanup: bool,
}

#[derive(Clone, Debug)]
pub struct Body {
    /// As printed: `bh::<impl at driver/src/bh.rs:23:1: 23:29>::handle_rx_skb`,
    /// `for_each_msg`, `entry::{closure#0}`.
    pub path: String,
    /// The last segment that is not a closure: the function's name.
    pub name: String,
    pub arg_count: usize,
    /// Type of each local as printed (index 0 is the return place).
    pub locals: Vec<String>,
    pub blocks: Vec<Block>,
    /// Where the function is: the return place's span.
    pub site: Site,
    /// For a closure body: the closure's type `{closure@file:l:c: l:c}`.
    pub closure_ty: Option<String>,
    /// For a method in an impl block: the block's start `(file, line, column)`.
    pub impl_at: Option<(String, u32, u32)>,
}

/// Every body of the crate, and the statics behind `allocN` constants.
#[derive(Clone, Debug, Default)]
pub struct Mir {
    pub bodies: Vec<Body>,
    /// `allocN` -> static name.
    pub statics: BTreeMap<String, String>,
}

/// Splits `text` at top-level occurrences of `sep` (outside (), [], {}, <> and quotes).
pub fn split_top(text: &str, sep: char) -> Vec<String> {
    let mut out = Vec::new();
    let mut depth = 0i32;
    let mut cur = String::new();
    let mut in_str = false;
    let mut prev = '\0';
    for c in text.chars() {
        if in_str {
            cur.push(c);
            if c == '"' && prev != '\\' {
                in_str = false;
            }
            prev = c;
            continue;
        }
        match c {
            '"' => in_str = true,
            '(' | '[' | '{' | '<' => depth += 1,
            ')' | ']' | '}' => depth -= 1,
            '>' if prev != '-' => depth -= 1,
            _ => {}
        }
        if c == sep && depth == 0 {
            out.push(cur.trim().to_string());
            cur.clear();
        } else {
            cur.push(c);
        }
        prev = c;
    }
    if !cur.trim().is_empty() {
        out.push(cur.trim().to_string());
    }
    out
}

/// Index of the bracket closing the one opened at `open` (quotes and `->` respected).
fn matching(s: &[u8], open: usize) -> Option<usize> {
    let mut depth = 0i32;
    let mut i = open;
    let mut in_str = false;
    while i < s.len() {
        let c = s[i];
        if in_str {
            if c == b'"' && s[i - 1] != b'\\' {
                in_str = false;
            }
        } else {
            match c {
                b'"' => in_str = true,
                b'(' | b'[' | b'{' | b'<' => depth += 1,
                b')' | b']' | b'}' => depth -= 1,
                b'>' if i == 0 || s[i - 1] != b'-' => depth -= 1,
                _ => {}
            }
            if depth == 0 {
                return Some(i);
            }
        }
        i += 1;
    }
    None
}

/// Parses a place at the start of `s`; returns it and the rest.
pub fn parse_place(s: &str) -> Option<(Place, &str)> {
    let s = s.trim_start();
    let b = s.as_bytes();
    let (mut place, mut rest) = if let Some(r) = s.strip_prefix("(*") {
        let (inner, r) = parse_place(r)?;
        (Place::Deref(Box::new(inner)), r.strip_prefix(')')?)
    } else if s.starts_with('(') {
        let close = matching(b, 0)?;
        let inner = &s[1..close];
        let (p, r) = parse_place(inner)?;
        let p = if r.starts_with(" as ") {
            Place::Downcast(Box::new(p))
        } else if let Some(r2) = r.strip_prefix('.') {
            let (idx, ty) = r2.split_once(": ")?;
            Place::Field(Box::new(p), idx.trim().parse().ok()?, ty.trim().to_string())
        } else {
            return None;
        };
        (p, &s[close + 1..])
    } else if let Some(r) = s.strip_prefix('_') {
        let n: String = r.chars().take_while(|c| c.is_ascii_digit()).collect();
        if n.is_empty() {
            return None;
        }
        (Place::Local(n.parse().ok()?), &r[n.len()..])
    } else {
        return None;
    };
    // Postfix: indexing and unnamed fields of downcasts are printed as `P[..]`.
    while rest.starts_with('[') {
        let close = matching(rest.as_bytes(), 0)?;
        place = Place::Index(Box::new(place));
        rest = &rest[close + 1..];
    }
    Some((place, rest))
}

fn parse_operand(s: &str) -> Option<Operand> {
    let s = s.trim();
    if let Some(r) = s.strip_prefix("copy ") {
        return parse_place(r).map(|(p, _)| Operand::Copy(p));
    }
    if let Some(r) = s.strip_prefix("move ") {
        return parse_place(r).map(|(p, _)| Operand::Move(p));
    }
    if let Some(r) = s.strip_prefix("const ") {
        return Some(Operand::Const(r.to_string()));
    }
    None
}

/// Every `copy P` / `move P` / `CopyForDeref(P)` / `discriminant(P)` / `Len(P)` in `s`.
fn places_read(s: &str) -> Vec<Place> {
    let mut out = Vec::new();
    let mut i = 0;
    let keys = ["copy ", "move ", "CopyForDeref(", "discriminant(", "Len(", "PtrMetadata("];
    while i < s.len() {
        let rest = &s[i..];
        let hit = keys.iter().find(|k| rest.starts_with(**k));
        if let Some(k) = hit {
            let boundary = i == 0 || !s.as_bytes()[i - 1].is_ascii_alphanumeric();
            if boundary {
                if let Some((p, r)) = parse_place(&rest[k.len()..]) {
                    out.push(p);
                    i = s.len() - r.len();
                    continue;
                }
            }
        }
        i += rest.chars().next().map_or(1, |c| c.len_utf8());
    }
    out
}

fn consts_in(s: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut rest = s;
    while let Some(i) = rest.find("const ") {
        let after = &rest[i + 6..];
        let end = split_top(after, ',').first().map(|x| x.len()).unwrap_or(after.len());
        out.push(after[..end.min(after.len())].trim_end_matches(')').trim().to_string());
        rest = &after[end.min(after.len())..];
    }
    out
}

/// One right-hand side. Long because it is one match over MIR's rvalue forms.
pub fn parse_rvalue(s: &str) -> Rvalue {
    let s = s.trim();
    for pre in ["&raw const ", "&raw mut ", "&mut ", "&"] {
        if let Some(r) = s.strip_prefix(pre) {
            if let Some((p, rest)) = parse_place(r) {
                if rest.trim().is_empty() {
                    return Rvalue::Ref(p);
                }
            }
        }
    }
    if let Some(r) = s.strip_prefix("CopyForDeref(") {
        if let Some((p, _)) = parse_place(r) {
            return Rvalue::Use(Operand::Copy(p));
        }
    }
    if s.contains("ReifyFnPointer") || s.contains("ClosureFnPointer") {
        if let Some((item, _)) = s.split_once(" as ") {
            let item = item.trim().trim_start_matches("const ").to_string();
            if !item.starts_with("copy ") && !item.starts_with("move ") {
                return Rvalue::FnItem(item);
            }
        }
    }
    if s.starts_with("copy ") || s.starts_with("move ") {
        // `copy _1`, or `copy _1 as T (Kind)`.
        let head = if s.contains(" as ") { s.split(" as ").next().unwrap_or(s) } else { s };
        if let Some(op) = parse_operand(head) {
            return Rvalue::Use(op);
        }
    }
    // `std::sync::atomic::Ordering::Relaxed`: an ordering constant.
    if !s.contains(' ') && s.contains("Ordering::") {
        return Rvalue::Use(Operand::Const(s.to_string()));
    }
    if s.starts_with("const ") && !s.contains(',') {
        return Rvalue::Use(Operand::Const(s[6..].to_string()));
    }
    // Aggregates: `T { a: op, .. }`, `{closure@..} { a: op }`, `(op, op)`, `[op, op]`,
    // `Variant(op)`.
    let closure = s.starts_with("{closure@").then(|| {
        let close = matching(s.as_bytes(), 0).unwrap_or(s.len() - 1);
        s[..=close].to_string()
    });
    let body = if let Some(c) = &closure {
        Some(s[c.len()..].trim())
    } else if s.starts_with('(') || s.starts_with('[') {
        Some(s)
    } else if s.ends_with('}') && s.contains(" { ") && !s.starts_with("const ") {
        s.find(" { ").map(|i| &s[i + 1..])
    } else {
        None
    };
    if let Some(body) = body {
        if (body.starts_with('{') || body.starts_with('(') || body.starts_with('['))
            && matching(body.as_bytes(), 0) == Some(body.len() - 1)
        {
            let inner = &body[1..body.len() - 1];
            let mut fields = Vec::new();
            for part in split_top(inner, ',') {
                let val =
                    if body.starts_with('{') { part.split_once(": ").map(|x| x.1).unwrap_or(&part) } else { &part };
                match parse_operand(val) {
                    Some(op) => fields.push(op),
                    None => fields.push(Operand::Const(val.to_string())),
                }
            }
            if closure.is_some() || !fields.is_empty() {
                // `Dev::<P> { .. }`: the struct's name, for what a constructor stores.
                let adt = (body.starts_with('{') && closure.is_none())
                    .then(|| s[..s.len() - body.len()].trim().to_string())
                    .filter(|t| !t.is_empty());
                return Rvalue::Aggregate { closure, adt, fields };
            }
        }
    }
    Rvalue::Other { reads: places_read(s), consts: consts_in(s) }
}

fn parse_site(comment: &str) -> Site {
    // `scope 2 at driver/src/bh.rs:163:22: 163:39` or `in scope 0 at ...`.
    let Some((_, at)) = comment.split_once(" at ") else { return Site::default() };
    let mut it = at.rsplitn(2, ": ");
    let _end = it.next();
    let start = it.next().unwrap_or(at);
    let mut parts = start.rsplitn(3, ':');
    let _col = parts.next();
    let line = parts.next().and_then(|l| l.parse().ok()).unwrap_or(0);
    let file = parts.next().unwrap_or("").to_string();
    Site { file, line }
}

fn bb(s: &str) -> Option<usize> {
    s.trim().strip_prefix("bb").and_then(|n| n.trim_end_matches([']', ';', ',']).parse().ok())
}

fn targets_in(s: &str) -> Vec<usize> {
    // `[return: bb3, unwind: bb16]`, `[0: bb7, otherwise: bb5]`, `bb4`, `[success: bb2, ..]`.
    let mut out = Vec::new();
    for part in s.split([',', '[', ']', ' ']) {
        if let Some(n) = bb(part) {
            out.push(n);
        }
    }
    out
}

fn normal_targets(s: &str) -> Vec<usize> {
    // Leave out unwind edges: cleanup code is not audited.
    let mut out = Vec::new();
    for part in s.trim().trim_start_matches('[').trim_end_matches([']', ';']).split(", ") {
        let part = part.trim();
        if part.starts_with("unwind") {
            continue;
        }
        let v = part.rsplit(": ").next().unwrap_or(part);
        if let Some(n) = bb(v) {
            out.push(n);
        }
    }
    out
}

fn parse_term(code: &str, site: Site) -> Term {
    let code = code.trim().trim_end_matches(';');
    let kind = if let Some(r) = code.strip_prefix("goto -> ") {
        TermKind::Goto(bb(r).unwrap_or(0))
    } else if code == "return" {
        TermKind::Return
    } else if code == "resume" || code == "unreachable" || code.starts_with("abort") || code.starts_with("terminate") {
        TermKind::Other(vec![])
    } else if let Some(r) = code.strip_prefix("switchInt(") {
        let disc = r.split(") -> ").next().and_then(|o| match parse_operand(o) {
            Some(Operand::Copy(p)) | Some(Operand::Move(p)) => Some(p),
            _ => None,
        });
        TermKind::Switch(disc, targets_in(code.split(" -> ").last().unwrap_or("")))
    } else if let Some(r) = code.strip_prefix("drop(") {
        let (p, rest) = parse_place(r).unwrap_or((Place::Local(0), ""));
        let t = rest.split(" -> ").nth(1).map(normal_targets).unwrap_or_default();
        TermKind::Drop(p, t.first().copied())
    } else if let Some((dest, call)) = code.split_once(" = ").filter(|(d, _)| parse_place(d).is_some()) {
        // A call: `DEST = CALLEE(ARGS) -> TARGETS`.
        let dest = parse_place(dest).map(|x| x.0).unwrap_or(Place::Local(0));
        let bytes = call.as_bytes();
        let mut depth = 0i32;
        let mut open = None;
        let mut i = 0;
        while i < bytes.len() {
            match bytes[i] {
                b'<' | b'[' | b'{' => depth += 1,
                b'>' if i == 0 || bytes[i - 1] != b'-' => depth -= 1,
                b']' | b'}' => depth -= 1,
                b'(' if depth == 0 => {
                    open = Some(i);
                    break;
                }
                b'(' => depth += 1,
                b')' => depth -= 1,
                _ => {}
            }
            i += 1;
        }
        match open.and_then(|o| matching(bytes, o).map(|c| (o, c))) {
            Some((o, c)) => {
                let callee = call[..o].trim().to_string();
                let args = split_top(&call[o + 1..c], ',').iter().filter_map(|a| parse_operand(a)).collect();
                let rest = &call[c + 1..];
                let t = rest.split_once(" -> ").map(|x| normal_targets(x.1)).unwrap_or_default();
                TermKind::Call { dest, callee, args, target: t.first().copied() }
            }
            None => TermKind::Other(vec![]),
        }
    } else if let Some((_, t)) = code.rsplit_once(" -> ") {
        TermKind::Other(normal_targets(t))
    } else {
        TermKind::Other(vec![])
    };
    Term { kind, site }
}

fn split_comment(line: &str) -> (&str, &str) {
    // The span comment starts at `// `, outside strings.
    let b = line.as_bytes();
    let mut in_str = false;
    let mut i = 0;
    while i + 1 < b.len() {
        if b[i] == b'"' && (i == 0 || b[i - 1] != b'\\') {
            in_str = !in_str;
        }
        if !in_str && b[i] == b'/' && b[i + 1] == b'/' {
            return (&line[..i], &line[i + 2..]);
        }
        i += 1;
    }
    (line, "")
}

fn parse_header(line: &str) -> Option<(String, Vec<String>)> {
    let rest = line.strip_prefix("fn ")?;
    let open = rest.find('(')?;
    let path = rest[..open].to_string();
    let close = matching(rest.as_bytes(), open)?;
    let params = split_top(&rest[open + 1..close], ',')
        .into_iter()
        .map(|p| p.split_once(": ").map(|x| x.1.to_string()).unwrap_or_default())
        .collect();
    Some((path, params))
}

fn impl_at(path: &str) -> Option<(String, u32, u32)> {
    let i = path.find("<impl at ")?;
    let rest = &path[i + 9..];
    let end = rest.find('>')?;
    let span = &rest[..end];
    let start = span.split(": ").next()?;
    let mut parts = start.rsplitn(3, ':');
    let col = parts.next()?.parse().ok()?;
    let line = parts.next()?.parse().ok()?;
    let file = parts.next()?.to_string();
    Some((file, line, col))
}

fn fn_name(path: &str) -> String {
    split_path(path).into_iter().rev().find(|s| !s.starts_with('{')).unwrap_or_default()
}

/// `a::<impl at x>::b::{closure#0}` -> [a, <impl at x>, b, {closure#0}] (`::` inside <> kept).
pub fn split_path(path: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut depth = 0i32;
    let mut cur = String::new();
    let b = path.as_bytes();
    let mut i = 0;
    while i < b.len() {
        let c = b[i] as char;
        match c {
            '<' | '{' | '(' | '[' => depth += 1,
            '>' if i == 0 || b[i - 1] != b'-' => depth -= 1,
            '}' | ')' | ']' => depth -= 1,
            _ => {}
        }
        if depth == 0 && c == ':' && i + 1 < b.len() && b[i + 1] == b':' {
            out.push(std::mem::take(&mut cur));
            i += 2;
            continue;
        }
        cur.push(c);
        i += 1;
    }
    out.push(cur);
    out.into_iter().filter(|s| !s.is_empty()).collect()
}

/// Parses the whole MIR dump. Long because it is one line-oriented state machine (item
/// header, locals, basic blocks, statements, terminators, scopes) over rustc's text.
pub fn parse(text: &str) -> Mir {
    let mut mir = Mir::default();
    let lines: Vec<&str> = text.lines().collect();
    let mut i = 0;
    while i < lines.len() {
        let line = lines[i];
        if let Some(rest) = line.strip_prefix("alloc") {
            // `alloc5 (static: COUNT, size: 4, align: 4) {`
            if let Some((id, more)) = rest.split_once(' ') {
                if let Some(name) = more.strip_prefix("(static: ").and_then(|m| m.split(',').next()) {
                    mir.statics.insert(format!("alloc{id}"), name.trim_end_matches(')').to_string());
                }
            }
            i += 1;
            continue;
        }
        let head = split_comment(line).0.trim_end();
        // A static's or constant's initialiser is a body too: the functions it takes the
        // address of (a fn pointer in a static) must be known.
        let item = ["static mut ", "static ", "const "]
            .iter()
            .find_map(|k| head.strip_prefix(k))
            .filter(|r| r.ends_with("= {"))
            .map(|r| (format!("{{init}} {}", r.split(':').next().unwrap_or("").trim()), Vec::new()));
        let Some((path, params)) = parse_header(head).or(item) else {
            i += 1;
            continue;
        };
        let mut locals: BTreeMap<usize, String> = BTreeMap::new();
        for (k, t) in params.iter().enumerate() {
            locals.insert(k + 1, t.clone());
        }
        let mut blocks: BTreeMap<usize, Block> = BTreeMap::new();
        let mut site = Site::default();
        let mut cur: Option<(usize, bool, Vec<Stmt>)> = None;
        i += 1;
        while i < lines.len() && lines[i] != "}" {
            let (code, comment) = split_comment(lines[i]);
            let code = code.trim();
            let s = parse_site(comment);
            if let Some(r) = code.strip_prefix("let ") {
                let r = r.trim_start_matches("mut ");
                if let Some((l, ty)) = r.split_once(": ") {
                    if let Some(n) = l.trim().strip_prefix('_').and_then(|n| n.parse::<usize>().ok()) {
                        locals.insert(n, ty.trim_end_matches(';').to_string());
                        if n == 0 {
                            site = s.clone();
                        }
                    }
                }
            } else if code.starts_with("bb") && code.ends_with('{') {
                let n = bb(code.split([' ', ':']).next().unwrap_or("")).unwrap_or(0);
                cur = Some((n, code.contains("(cleanup)"), Vec::new()));
            } else if let Some((n, cleanup, stmts)) = cur.as_mut() {
                if code == "}" {
                    cur = None;
                } else if !code.is_empty() {
                    let is_term = code.starts_with("goto ")
                        || code == "return;"
                        || code == "resume;"
                        || code == "unreachable;"
                        || code.starts_with("switchInt(")
                        || code.starts_with("drop(")
                        || code.starts_with("assert(")
                        || code.starts_with("falseEdge")
                        || code.starts_with("falseUnwind")
                        || code.starts_with("abort")
                        || code.starts_with("terminate")
                        || code.contains(") -> ")
                        || code.ends_with("-> unwind continue;")
                        || code.contains(" -> unwind ");
                    if is_term {
                        let term = parse_term(code, s);
                        blocks.insert(*n, Block { stmts: std::mem::take(stmts), term, cleanup: *cleanup });
                    } else {
                        let kind = if let Some(r) = code.strip_prefix("discriminant(") {
                            parse_place(r).map(|(p, _)| StmtKind::SetDiscriminant(p)).unwrap_or(StmtKind::Nop)
                        } else if let Some((l, r)) = code.trim_end_matches(';').split_once(" = ") {
                            match parse_place(l) {
                                Some((p, rest)) if rest.trim().is_empty() => StmtKind::Assign(p, parse_rvalue(r)),
                                _ => StmtKind::Nop,
                            }
                        } else {
                            StmtKind::Nop
                        };
                        stmts.push(Stmt { kind, site: s });
                    }
                }
            }
            i += 1;
        }
        let n_locals = locals.keys().max().map_or(1, |m| m + 1);
        let mut lv = vec![String::new(); n_locals];
        for (k, t) in locals {
            lv[k] = t;
        }
        let n_blocks = blocks.keys().max().map_or(0, |m| m + 1);
        let mut bv = Vec::with_capacity(n_blocks);
        for k in 0..n_blocks {
            bv.push(blocks.remove(&k).unwrap_or(Block {
                stmts: vec![],
                term: Term { kind: TermKind::Other(vec![]), site: Site::default() },
                cleanup: true,
            }));
        }
        let closure_ty = if path.ends_with('}') && path.contains("{closure#") {
            lv.get(1).map(|t| t.trim_start_matches("&mut ").trim_start_matches('&').to_string())
        } else {
            None
        };
        mir.bodies.push(Body {
            name: fn_name(&path),
            impl_at: impl_at(&path),
            path,
            arg_count: params.len(),
            locals: lv,
            blocks: bv,
            site,
            closure_ty,
        });
        i += 1;
    }
    mir
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn places_with_typed_fields_derefs_and_indexing() {
        let (p, rest) = parse_place("((*_1).3: shared::SingleWriter<<P as platform::Memory>::Word>)").unwrap();
        assert!(rest.is_empty());
        assert_eq!(
            p,
            Place::Field(
                Box::new(Place::Deref(Box::new(Place::Local(1)))),
                3,
                "shared::SingleWriter<<P as platform::Memory>::Word>".into()
            )
        );
        let (p, _) = parse_place("((*_1).4: [SingleWriter<W>; 2])[_8]").unwrap();
        assert!(matches!(p, Place::Index(_)));
        let (p, _) = parse_place("((_4 as Ok).0: bool)").unwrap();
        assert!(matches!(p, Place::Field(ref b, 0, _) if matches!(**b, Place::Downcast(_))));
    }

    #[test]
    fn calls_aggregates_and_fn_items() {
        let t = parse_term(
            "_5 = SingleWriter::<<P as Memory>::Word>::add::<P>(move _6, copy _3, move _7) -> [return: bb3, unwind: bb16];",
            Site::default(),
        );
        match t.kind {
            TermKind::Call { callee, args, target, .. } => {
                assert_eq!(callee, "SingleWriter::<<P as Memory>::Word>::add::<P>");
                assert_eq!(args.len(), 3);
                assert_eq!(target, Some(3));
            }
            k => panic!("{k:?}"),
        }
        let t = parse_term("_6 = move _7(copy _1) -> [return: bb3, unwind continue];", Site::default());
        assert!(matches!(t.kind, TermKind::Call { ref callee, .. } if callee == "move _7"));
        match parse_rvalue("{closure@p.rs:21:13: 21:15} { d: copy _1, e: move _2 }") {
            Rvalue::Aggregate { closure: Some(c), fields, .. } => {
                assert_eq!(c, "{closure@p.rs:21:13: 21:15}");
                assert_eq!(fields.len(), 2);
            }
            r => panic!("{r:?}"),
        }
        assert_eq!(
            parse_rvalue("helper as for<'a> fn(&'a Dev) (PointerCoercion(ReifyFnPointer(Safe), Implicit))"),
            Rvalue::FnItem("helper".into())
        );
        assert!(matches!(parse_rvalue("&((*_1).3: T)"), Rvalue::Ref(_)));
        assert!(
            matches!(parse_rvalue("SpinLockGuard::<'_, M, T> { lock: copy _1, m: copy _2 }"), Rvalue::Aggregate { closure: None, ref adt, ref fields } if fields.len() == 2 && adt.as_deref() == Some("SpinLockGuard::<'_, M, T>"))
        );
    }
}
