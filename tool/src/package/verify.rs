//! Verifying a package against keys the user trusts (the workspace key, `--key`, or an
//! OpenSSH allowed_signers file), never against a key the package ships: the signed
//! manifest names every file with its sha256 and mode, and anything else in the directory
//! or the tarball fails (extra files, links, subdirectories, prebuilt modules under
//! `dkms_main_tree/`, `..` paths, owners other than root, setuid bits, duplicates).

use crate::error::{BenchError, Result};
use crate::package::{self, signing, Manifest};
use ssh_key::PublicKey;
use std::collections::BTreeMap;
use std::io::Read;
use std::path::Path;

/// One regular file of a package, as read.
pub struct Entry {
    pub bytes: Vec<u8>,
    /// Permission bits (`mode & 0o7777`).
    pub mode: u32,
}

/// Files by name, or the first thing in the package that no manifest can allow.
type Loaded = std::result::Result<BTreeMap<String, Entry>, String>;

/// Reads a package directory or its `.dkms.tar.gz`, entry by entry. An I/O error is an
/// error; a shape no package has is `Ok(Err(why))`.
pub fn load(package: &Path) -> Result<Loaded> {
    let bad = |e: std::io::Error| {
        BenchError::usage(format!("cannot read package {}", package.display())).cause(e.to_string())
    };
    let meta = std::fs::symlink_metadata(package).map_err(bad)?;
    if meta.is_dir() {
        load_dir(package).map_err(bad)
    } else if meta.is_file() {
        let f = std::fs::File::open(package).map_err(bad)?;
        let mut head = [0u8; 2];
        let n = (&f).read(&mut head).map_err(bad)?;
        if n < 2 || head != [0x1f, 0x8b] {
            return Err(BenchError::usage(format!("{} is not a package", package.display()))
                .hint("pass a package directory (dist/bes2600-VERSION) or its .dkms.tar.gz (gzip)"));
        }
        let f = std::fs::File::open(package).map_err(bad)?;
        load_tar(f).map_err(|e| {
            BenchError::usage(format!("{} is not a readable .dkms.tar.gz", package.display())).cause(e.to_string())
        })
    } else {
        Err(BenchError::usage(format!("{} is neither a directory nor a file", package.display())))
    }
}

fn load_dir(dir: &Path) -> std::io::Result<Loaded> {
    use std::os::unix::fs::MetadataExt;
    let mut files = BTreeMap::new();
    for entry in std::fs::read_dir(dir)? {
        let entry = entry?;
        let name = entry.file_name().to_string_lossy().into_owned();
        let meta = std::fs::symlink_metadata(entry.path())?;
        if meta.file_type().is_symlink() {
            return Ok(Err(format!("{name} is a symbolic link")));
        }
        if meta.is_dir() {
            return Ok(Err(format!("{name}/ is a directory (a package has none)")));
        }
        if !meta.is_file() {
            return Ok(Err(format!("{name} is not a regular file")));
        }
        if meta.nlink() > 1 {
            return Ok(Err(format!("{name} is hard-linked ({} names)", meta.nlink())));
        }
        files.insert(name, Entry { bytes: std::fs::read(entry.path())?, mode: meta.mode() & 0o7777 });
    }
    Ok(Ok(files))
}

fn load_tar(f: std::fs::File) -> std::io::Result<Loaded> {
    let mut archive = tar::Archive::new(flate2::read::GzDecoder::new(f));
    let mut files = BTreeMap::new();
    let mut dirs = Vec::new();
    for entry in archive.entries()? {
        let mut entry = entry?;
        let raw = String::from_utf8_lossy(&entry.path_bytes()).into_owned();
        let h = entry.header();
        let kind = h.entry_type();
        let (uid, gid) = (h.uid()?, h.gid()?);
        if uid != 0 || gid != 0 {
            return Ok(Err(format!("{raw} is owned by {uid}:{gid}, not root")));
        }
        let mode = h.mode()? & 0o7777;
        if kind.is_dir() {
            if raw != "dkms_main_tree/" && raw != "dkms_source_tree/" {
                return Ok(Err(format!("{raw} is a directory no package has")));
            }
            if dirs.contains(&raw) {
                return Ok(Err(format!("{raw} appears twice")));
            }
            dirs.push(raw);
            continue;
        }
        if kind.is_symlink() || kind.is_hard_link() {
            return Ok(Err(format!("{raw} is a link")));
        }
        if !kind.is_file() {
            return Ok(Err(format!("{raw} is not a regular file")));
        }
        let Some(name) = raw.strip_prefix("dkms_source_tree/") else {
            return Ok(Err(if raw.starts_with("dkms_main_tree/") {
                format!("{raw}: a prebuilt file where DKMS takes binaries from")
            } else {
                format!("{raw} is outside dkms_source_tree/")
            }));
        };
        if name.is_empty() || name.contains('/') || name == ".." || name == "." {
            return Ok(Err(format!("{raw}: a package's files sit directly in dkms_source_tree/")));
        }
        let mut bytes = Vec::new();
        entry.read_to_end(&mut bytes)?;
        if files.insert(name.to_string(), Entry { bytes, mode }).is_some() {
            return Ok(Err(format!("{raw} appears twice")));
        }
    }
    Ok(Ok(files))
}

/// Keys the user trusts.
pub enum Trusted {
    Key(PublicKey),
    /// From an allowed_signers file (principals are not checked: any listed key).
    Keys(Vec<PublicKey>),
}

impl Trusted {
    /// An OpenSSH allowed_signers file: `principals [options] keytype base64 [comment]`.
    pub fn allowed_signers(p: &Path) -> Result<Trusted> {
        let text = crate::fsutil::read_text(p)?;
        let mut keys = Vec::new();
        for (i, line) in text.lines().enumerate() {
            let line = line.trim();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            let words: Vec<&str> = line.split_whitespace().collect();
            let key = words
                .windows(2)
                .find_map(|w| PublicKey::from_openssh(&format!("{} {}", w[0], w[1])).ok())
                .ok_or_else(|| {
                    BenchError::usage(format!("{}:{}: no public key on this line", p.display(), i + 1))
                        .hint("allowed_signers lines are `principal ssh-ed25519 AAAA... [comment]` (ssh-keygen(1))")
                })?;
            keys.push(key);
        }
        if keys.is_empty() {
            return Err(BenchError::usage(format!("{} lists no key", p.display())));
        }
        Ok(Trusted::Keys(keys))
    }

    fn all(&self) -> Vec<&PublicKey> {
        match self {
            Trusted::Key(k) => vec![k],
            Trusted::Keys(ks) => ks.iter().collect(),
        }
    }
}

/// The package's manifest when every entry is what it says and the signature is by a
/// trusted key (and that key's fingerprint), else the first thing wrong.
pub fn check(files: &BTreeMap<String, Entry>, trusted: &Trusted) -> std::result::Result<(Manifest, String), String> {
    let manifest_bytes = &files.get(package::MANIFEST).ok_or(format!("{} is missing", package::MANIFEST))?.bytes;
    let sig = &files.get(package::SIGNATURE).ok_or(format!("{} is missing", package::SIGNATURE))?.bytes;
    let armoured = String::from_utf8_lossy(sig);
    let mut why = Vec::new();
    let mut signer = None;
    for k in trusted.all() {
        match signing::verify(k, &manifest_bytes[..], &armoured) {
            Ok(()) => {
                signer = Some(k);
                break;
            }
            Err(e) => why.push(e),
        }
    }
    let signer = signer.ok_or_else(|| format!("{}: {}", package::MANIFEST, why.join("; ")))?;
    let fp = signing::fingerprint(signer);
    // The shipped public key is informational; one naming another key is a tampering sign.
    if let Some(shipped) = files.get(package::SIGNER) {
        let text = String::from_utf8_lossy(&shipped.bytes);
        match PublicKey::from_openssh(text.trim()) {
            Ok(k) if signing::fingerprint(&k) == fp => {}
            Ok(k) => {
                return Err(format!("{} names key {}, not the signer {fp}", package::SIGNER, signing::fingerprint(&k)))
            }
            Err(_) => return Err(format!("{} is not an OpenSSH public key", package::SIGNER)),
        }
    }
    let manifest: Manifest =
        serde_json::from_slice(manifest_bytes).map_err(|e| format!("{} does not parse: {e}", package::MANIFEST))?;
    for (name, want) in &manifest.files {
        let e = files.get(name).ok_or(format!("{name} is missing"))?;
        let got = crate::fsutil::sha256_hex(&e.bytes);
        if &got != want {
            return Err(format!("{name} differs: sha256 {got}, the manifest says {want}"));
        }
        let mode = manifest.modes.get(name).copied().ok_or(format!("{name} has no mode in the manifest"))?;
        if e.mode != mode {
            return Err(format!("{name} has mode {:04o}, the manifest says {mode:04o}", e.mode));
        }
    }
    for (name, e) in files {
        let own = [package::MANIFEST, package::SIGNATURE, package::SIGNER].contains(&name.as_str());
        if !manifest.files.contains_key(name) && !own {
            return Err(format!("{name} is not in the manifest"));
        }
        if own && e.mode != 0o644 {
            return Err(format!("{name} has mode {:04o}, not 0644", e.mode));
        }
    }
    Ok((manifest, fp))
}
