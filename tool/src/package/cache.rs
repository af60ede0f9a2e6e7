//! The unchanged-rebuild shortcut of `bench build`: a fingerprint of every input (driver
//! sources, variants, templates, notes, commit, key, output directory, tool version). When
//! it matches the last build of the variant and the package on disk still has the recorded
//! manifest, nothing is assembled again.

use crate::error::Result;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use std::path::{Path, PathBuf};

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct Entry {
    pub fingerprint: String,
    pub package_dir: PathBuf,
    pub tarball: PathBuf,
    pub manifest_sha256: String,
    pub srcversion: String,
    pub time: String,
    pub violations: usize,
    /// sha256 of every file of the package, signature included.
    pub files: std::collections::BTreeMap<String, String>,
}

fn hash_tree(h: &mut Sha256, root: &Path, dir: &Path) {
    let Ok(entries) = std::fs::read_dir(dir) else { return };
    let mut paths: Vec<PathBuf> = entries.filter_map(|e| e.ok().map(|e| e.path())).collect();
    paths.sort();
    for p in paths {
        if p.is_dir() {
            hash_tree(h, root, &p);
        } else if let Ok(bytes) = std::fs::read(&p) {
            h.update(p.strip_prefix(root).unwrap_or(&p).to_string_lossy().as_bytes());
            h.update([0]);
            h.update((bytes.len() as u64).to_le_bytes());
            h.update(&bytes);
        }
    }
}

pub fn fingerprint(root: &Path, variant: &str, extra: &[&str]) -> String {
    let mut h = Sha256::new();
    h.update(env!("CARGO_PKG_VERSION").as_bytes());
    h.update(variant.as_bytes());
    for e in extra {
        h.update([0]);
        h.update(e.as_bytes());
    }
    for d in ["driver/src", "variants", "dkms", "notes"] {
        hash_tree(&mut h, root, &root.join(d));
    }
    if let Ok(b) = std::fs::read(root.join("driver/Cargo.toml")) {
        h.update(&b);
    }
    h.finalize().iter().map(|b| format!("{b:02x}")).collect()
}

fn path(root: &Path, variant: &str) -> PathBuf {
    crate::workspace::ledger::state_dir(root).join("cache").join(format!("build-{variant}.json"))
}

/// The cached build, if it is still what is on disk.
pub fn hit(root: &Path, variant: &str, fingerprint: &str) -> Option<Entry> {
    let e: Entry = serde_json::from_slice(&std::fs::read(path(root, variant)).ok()?).ok()?;
    if e.fingerprint != fingerprint || !e.tarball.is_file() {
        return None;
    }
    // Every file as recorded, and nothing else: a package changed on disk is not a hit.
    let on_disk = std::fs::read_dir(&e.package_dir).ok()?.count();
    if on_disk != e.files.len() {
        return None;
    }
    for (name, sha) in &e.files {
        let bytes = std::fs::read(e.package_dir.join(name)).ok()?;
        if &crate::fsutil::sha256_hex(&bytes) != sha {
            return None;
        }
    }
    Some(e)
}

pub fn store(root: &Path, variant: &str, entry: &Entry) -> Result<()> {
    let p = path(root, variant);
    let dir = p.parent().expect("has a parent");
    std::fs::create_dir_all(dir)
        .map_err(|e| crate::error::BenchError::env(format!("cannot create {}", dir.display())).cause(e.to_string()))?;
    let tmp = p.with_extension("json.tmp");
    crate::fsutil::write_synced(&tmp, &serde_json::to_vec_pretty(entry).expect("serialises"), false)?;
    std::fs::rename(&tmp, &p)
        .map_err(|e| crate::error::BenchError::env(format!("cannot write {}", p.display())).cause(e.to_string()))
}
