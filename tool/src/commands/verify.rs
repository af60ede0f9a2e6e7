//! `bench verify`: checks a package's manifest signature and every file's sha256, and names
//! the first thing that differs.

use crate::error::{BenchError, Kind, Result};
use crate::package::signing;
use crate::package::{self, Manifest};
use crate::ui::Ui;
use clap::Args;
use std::collections::BTreeMap;
use std::io::Read;
use std::path::{Path, PathBuf};

#[derive(Args, Debug)]
#[command(after_help = "Exit status: 0 verified, 1 something differs (named), 2 bad input.")]
pub struct VerifyArgs {
    /// Package directory (dist/bes2600-VERSION) or its .dkms.tar.gz.
    pub package: PathBuf,
    /// Public key (.pub) or private key to check the signature against (default: the
    /// workspace key).
    #[arg(long)]
    pub key: Option<PathBuf>,
    #[command(flatten)]
    pub ws: crate::workspace::WorkspaceArg,
}

fn load_files(package: &Path) -> Result<BTreeMap<String, Vec<u8>>> {
    let mut files = BTreeMap::new();
    let bad = |e: std::io::Error| {
        BenchError::usage(format!("cannot read package {}", package.display())).cause(e.to_string())
    };
    if package.is_dir() {
        for entry in std::fs::read_dir(package).map_err(bad)? {
            let entry = entry.map_err(bad)?;
            if entry.file_type().map_err(bad)?.is_file() {
                let name = entry.file_name().to_string_lossy().into_owned();
                files.insert(name, std::fs::read(entry.path()).map_err(bad)?);
            }
        }
    } else {
        let f = std::fs::File::open(package).map_err(bad)?;
        let mut archive = tar::Archive::new(flate2::read::GzDecoder::new(f));
        for entry in archive.entries().map_err(bad)? {
            let mut entry = entry.map_err(bad)?;
            let path = entry.path().map_err(bad)?.to_string_lossy().into_owned();
            if let Some(name) = path.strip_prefix("dkms_source_tree/") {
                if !name.is_empty() && entry.header().entry_type().is_file() {
                    let mut bytes = Vec::new();
                    entry.read_to_end(&mut bytes).map_err(bad)?;
                    files.insert(name.to_string(), bytes);
                }
            }
        }
    }
    Ok(files)
}

/// The first difference between the package and its signed manifest, if any.
pub fn check(
    files: &BTreeMap<String, Vec<u8>>,
    key: &ssh_key::PublicKey,
) -> Result<std::result::Result<Manifest, String>> {
    let Some(manifest_bytes) = files.get(package::MANIFEST) else {
        return Ok(Err(format!("{} is missing", package::MANIFEST)));
    };
    let Some(sig) = files.get(package::SIGNATURE) else {
        return Ok(Err(format!("{} is missing", package::SIGNATURE)));
    };
    if let Err(why) = signing::verify(key, manifest_bytes, &String::from_utf8_lossy(sig)) {
        return Ok(Err(format!("{}: {why}", package::MANIFEST)));
    }
    let manifest: Manifest = match serde_json::from_slice(manifest_bytes) {
        Ok(m) => m,
        Err(e) => return Ok(Err(format!("{} does not parse: {e}", package::MANIFEST))),
    };
    for (name, want) in &manifest.files {
        match files.get(name) {
            None => return Ok(Err(format!("{name} is missing"))),
            Some(bytes) => {
                let got = crate::fsutil::sha256_hex(bytes);
                if &got != want {
                    return Ok(Err(format!("{name} differs: sha256 {got}, the manifest says {want}")));
                }
            }
        }
    }
    for name in files.keys() {
        if !manifest.files.contains_key(name)
            && ![package::MANIFEST, package::SIGNATURE, package::SIGNER].contains(&name.as_str())
        {
            return Ok(Err(format!("{name} is not in the manifest")));
        }
    }
    Ok(Ok(manifest))
}

pub fn run(args: &VerifyArgs, ui: &Ui) -> Result<()> {
    if !args.package.exists() {
        return Err(BenchError::usage(format!("no package at {}", args.package.display()))
            .hint("pass a directory dist/bes2600-VERSION or its .dkms.tar.gz"));
    }
    let key = match &args.key {
        Some(k) => signing::load_public(k)?,
        None => {
            let root = args.ws.root()?;
            let p = signing::workspace_key_path(&root);
            if !p.is_file() {
                return Err(
                    BenchError::usage("no key to verify against").hint("pass --key KEY.pub (the signer's public key)")
                );
            }
            signing::load_public(&p)?
        }
    };
    let files = load_files(&args.package)?;
    match check(&files, &key)? {
        Ok(m) => {
            ui.out(format!(
                "verified: {} {} (variant {}, srcversion {}, {} files, signed by {})",
                m.package,
                m.version,
                m.variant,
                m.predicted_srcversion,
                m.files.len(),
                signing::fingerprint(&key)
            ));
            Ok(())
        }
        Err(why) => {
            Err(BenchError::new(Kind::Failed, format!("{} does not verify", args.package.display())).cause(why))
        }
    }
}
