//! Where the lab's Debian packages come from: `BENCH_LAB_MIRROR`, else the Debian archive
//! this machine's apt is configured with (`/etc/apt/sources.list` and the deb822 files in
//! `/etc/apt/sources.list.d/`). No archive address is written in bench itself.

use crate::error::{BenchError, Result};
use std::path::Path;

/// The mirror to bootstrap the lab from.
pub fn mirror() -> Result<String> {
    if let Ok(m) = std::env::var("BENCH_LAB_MIRROR") {
        if !m.is_empty() {
            return Ok(m);
        }
    }
    from_apt(Path::new("/etc/apt")).ok_or_else(|| {
        BenchError::env("no Debian archive in this machine's apt sources (/etc/apt/sources.list, sources.list.d/)")
            .hint("set BENCH_LAB_MIRROR to a Debian mirror URL (the archive root, ending in /debian)")
    })
}

/// The first `deb` source of apt under `etc_apt` that is a Debian archive root (a URI whose
/// path ends in `/debian`; the security archive and third-party repositories are not).
pub fn from_apt(etc_apt: &Path) -> Option<String> {
    let mut texts = Vec::new();
    if let Ok(t) = std::fs::read_to_string(etc_apt.join("sources.list")) {
        texts.push((false, t));
    }
    let mut files: Vec<_> = std::fs::read_dir(etc_apt.join("sources.list.d"))
        .into_iter()
        .flatten()
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|x| x == "sources" || x == "list"))
        .collect();
    files.sort();
    for p in files {
        if let Ok(t) = std::fs::read_to_string(&p) {
            texts.push((p.extension().is_some_and(|x| x == "sources"), t));
        }
    }
    texts.iter().flat_map(|(deb822, t)| if *deb822 { deb822_uris(t) } else { one_line_uris(t) }).find(|u| is_archive(u))
}

fn is_archive(uri: &str) -> bool {
    (uri.starts_with("http://") || uri.starts_with("https://")) && uri.trim_end_matches('/').ends_with("/debian")
}

/// `deb [options] URI suite components` lines.
fn one_line_uris(text: &str) -> Vec<String> {
    text.lines()
        .map(|l| l.split('#').next().unwrap_or("").trim())
        .filter_map(|l| l.strip_prefix("deb "))
        .filter_map(|rest| {
            let rest = rest.trim_start();
            let rest = match rest.strip_prefix('[') {
                Some(r) => r.split_once(']').map_or("", |x| x.1),
                None => rest,
            };
            rest.split_whitespace().next().map(|u| u.trim_end_matches('/').to_string())
        })
        .collect()
}

/// deb822 stanzas: `Types: deb` and `URIs: ...`, an `Enabled: no` stanza skipped.
fn deb822_uris(text: &str) -> Vec<String> {
    let mut out = Vec::new();
    for stanza in text.split("\n\n") {
        let field = |name: &str| {
            stanza.lines().filter(|l| !l.starts_with('#')).find_map(|l| {
                let (k, v) = l.split_once(':')?;
                k.trim().eq_ignore_ascii_case(name).then(|| v.trim().to_string())
            })
        };
        let is_deb = field("Types").is_some_and(|t| t.split_whitespace().any(|x| x == "deb"));
        let enabled = field("Enabled").is_none_or(|e| !e.eq_ignore_ascii_case("no"));
        if is_deb && enabled {
            if let Some(uris) = field("URIs") {
                out.extend(uris.split_whitespace().map(|u| u.trim_end_matches('/').to_string()));
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_archive_is_taken_from_apt_and_security_and_third_party_sources_are_not() {
        let d = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(d.path().join("sources.list.d")).unwrap();
        assert_eq!(from_apt(d.path()), None, "no sources: no mirror");
        std::fs::write(
            d.path().join("sources.list.d/a.sources"),
            "Types: deb\nURIs: https://example.org/node_20.x\nSuites: nodistro\n\n\
             Types: deb\nURIs: http://mirror.example/debian-security\nSuites: sid-security\n\n\
             Types: deb-src\nURIs: http://src.example/debian\n\n\
             Enabled: no\nTypes: deb\nURIs: http://off.example/debian\n\n\
             # the archive\nTypes: deb\nURIs: http://mirror.example/debian/\nSuites: sid\n",
        )
        .unwrap();
        assert_eq!(from_apt(d.path()).as_deref(), Some("http://mirror.example/debian"));
        std::fs::write(
            d.path().join("sources.list"),
            "# deb http://commented.example/debian sid main\ndeb [arch=amd64 signed-by=/k.gpg] http://first.example/debian sid main\n",
        )
        .unwrap();
        assert_eq!(from_apt(d.path()).as_deref(), Some("http://first.example/debian"), "sources.list comes first");
    }
}
