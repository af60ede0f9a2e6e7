//! The variants of the patch series and their feature sets (DESIGN.md section 4). Until
//! `variants/*.toml` exist this table is the source.

use crate::error::{BenchError, Result};

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Variant {
    pub name: &'static str,
    pub parent: Option<&'static str>,
    pub features: &'static [&'static str],
}

pub const VARIANTS: &[Variant] = &[
    Variant { name: "baseline", parent: None, features: &[] },
    Variant { name: "b", parent: Some("baseline"), features: &["patch-b"] },
    Variant { name: "c", parent: Some("b"), features: &["patch-b", "c-direct-rx"] },
    Variant { name: "c-prep", parent: Some("b"), features: &["patch-b", "c-prep-atomic"] },
    Variant { name: "c-v2", parent: Some("c-prep"), features: &["patch-b", "c-prep-atomic", "c-direct-rx"] },
];

pub fn find(name: &str) -> Result<Variant> {
    if let Some(v) = VARIANTS.iter().find(|v| v.name == name) {
        return Ok(*v);
    }
    let known: Vec<&str> = VARIANTS.iter().map(|v| v.name).collect();
    let mut err = BenchError::usage(format!("unknown variant `{name}`"));
    if let Some(near) = nearest(name, &known) {
        err = err.hint(format!("did you mean `{near}`? Known variants: {}", known.join(", ")));
    } else {
        err = err.hint(format!("known variants: {}", known.join(", ")));
    }
    Err(err)
}

/// The closest name by edit distance, if it is close enough to be a typo.
pub fn nearest<'a>(name: &str, known: &[&'a str]) -> Option<&'a str> {
    known.iter().map(|k| (edit_distance(name, k), *k)).filter(|(d, k)| *d <= 2.max(k.len() / 3)).min().map(|(_, k)| k)
}

fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut row: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut prev = row[0];
        row[0] = i + 1;
        for (j, cb) in b.iter().enumerate() {
            let cur = row[j + 1];
            row[j + 1] = (prev + usize::from(ca != *cb)).min(row[j] + 1).min(cur + 1);
            prev = cur;
        }
    }
    row[b.len()]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_known_and_suggests_near_names() {
        assert_eq!(find("c-v2").unwrap().features, &["patch-b", "c-prep-atomic", "c-direct-rx"]);
        let err = find("c-v3").unwrap_err();
        assert_eq!(err.kind, crate::error::Kind::Usage);
        assert!(err.hint.unwrap().contains("did you mean `c-v2`?"));
        assert!(find("zzzzzzzz").unwrap_err().hint.unwrap().starts_with("known variants"));
    }
}
