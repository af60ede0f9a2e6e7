//! `bench build`: materialises a variant into a signed, srcversion-tagged DKMS package
//! with its rationale and rollback-slot hook, writes its tarball and records the build.

use crate::error::{BenchError, Result};
use crate::ledger::{self, BuildRecord};
use crate::pkg::{self, PkgFile};
use crate::ui::Ui;
use crate::variant::Variants;
use crate::{buildcache, gitinfo, signing};
use clap::Args;
use std::path::PathBuf;

#[derive(Args, Debug)]
#[command(after_help = "Writes OUT/bes2600-VERSION/ and OUT/bes2600-VERSION.dkms.tar.gz (load it with \
`dkms ldtarball`). VERSION carries the variant, the first 8 digits of the predicted srcversion and \
the commit. \
The manifest is signed (SSHSIG, namespace bench-package); check with `bench verify` or \
`ssh-keygen -Y verify -n bench-package`. Building again with no change gives the same bytes.

Examples:
  bench build --variant c-v2
  bench build --all --allow-violations --json   (c has violations: kept for forensics)
  bench build --variant c --key ~/.ssh/bench_ed25519")]
pub struct BuildArgs {
    /// Variant to build (variants/NAME.toml).
    #[arg(long, required_unless_present = "all", conflicts_with = "all")]
    pub variant: Option<String>,
    /// Build every variant.
    #[arg(long)]
    pub all: bool,
    /// Output directory.
    #[arg(long, default_value = "dist")]
    pub out: PathBuf,
    /// OpenSSH private key to sign with (default: the workspace key in .bench/keys/, made
    /// on first use).
    #[arg(long)]
    pub key: Option<PathBuf>,
    /// Build even when the contract audit finds violations (kept for forensics, as the
    /// seed kept its broken Patch C module); the violations go into MANIFEST.json and
    /// RATIONALE.md.
    #[arg(long)]
    pub allow_violations: bool,
    /// Print what was built as JSON.
    #[arg(long)]
    pub json: bool,
    #[command(flatten)]
    pub ws: crate::workspace::WorkspaceArg,
}

pub fn run(args: &BuildArgs, ui: &Ui) -> Result<()> {
    let root = args.ws.root()?;
    let variants = Variants::load(&root)?;
    let names: Vec<String> = match &args.variant {
        Some(v) => vec![variants.get(v)?.name.clone()],
        None => variants.list.iter().map(|v| v.name.clone()).collect(),
    };
    let git = gitinfo::describe(&root)?;
    let (key, key_path, created) = signing::load_or_create(&root, args.key.as_deref())?;
    let fp = signing::fingerprint(key.public_key());
    if created {
        ui.status(format!("generated a workspace signing key at {} ({fp})", key_path.display()));
    }
    let out_dir = if args.out.is_absolute() { args.out.clone() } else { root.join(&args.out) };
    let bar = ui.bar_plain(names.len() as u64, "building");
    let mut built = Vec::new();
    for name in &names {
        bar.set_message(format!("building {name}"));
        let variant = variants.get(name)?;
        let inputs = buildcache::fingerprint(
            &root,
            name,
            &[
                &git.commit,
                &git.dirty.to_string(),
                &fp,
                &out_dir.display().to_string(),
                &args.allow_violations.to_string(),
            ],
        );
        if let Some(c) = buildcache::hit(&root, name, &inputs) {
            let record = ledger::append(
                &root,
                BuildRecord {
                    id: 0,
                    time: c.time.clone(),
                    variant: variant.name.clone(),
                    features: variant.features.clone(),
                    commit: git.commit.clone(),
                    dirty: git.dirty,
                    srcversion: c.srcversion.clone(),
                    manifest_sha256: c.manifest_sha256.clone(),
                    key_fingerprint: fp.clone(),
                    path: c.package_dir.display().to_string(),
                },
            )?;
            built.push((variant.name.clone(), c.package_dir, c.tarball, c.srcversion, false, record.id));
            bar.inc(1);
            continue;
        }
        let mut p = pkg::assemble(&root, &variants, variant, &git, args.allow_violations)?;
        let manifest = serde_json::to_string_pretty(&p.manifest).expect("a manifest serialises") + "\n";
        let signature = signing::sign(&key, manifest.as_bytes())?;
        let public =
            key.public_key().to_openssh().map_err(|e| BenchError::env("cannot encode the key").cause(e.to_string()))?;
        p.files.push(PkgFile { path: pkg::MANIFEST.into(), bytes: manifest.clone().into_bytes(), executable: false });
        p.files.push(PkgFile { path: pkg::SIGNATURE.into(), bytes: signature.into_bytes(), executable: false });
        p.files.push(PkgFile {
            path: pkg::SIGNER.into(),
            bytes: format!("{public}\n").into_bytes(),
            executable: false,
        });
        let (dir, fresh) = pkg::write_dir(&out_dir, &p.name, &p.files)?;
        let tarball = pkg::tarball(&out_dir, &p.name, &p.files, git.time_s)?;
        let record = ledger::append(
            &root,
            BuildRecord {
                id: 0,
                time: p.manifest.time.clone(),
                variant: variant.name.clone(),
                features: variant.features.clone(),
                commit: git.commit.clone(),
                dirty: git.dirty,
                srcversion: p.manifest.predicted_srcversion.clone(),
                manifest_sha256: pkg::sha256_hex(manifest.as_bytes()),
                key_fingerprint: fp.clone(),
                path: dir.display().to_string(),
            },
        )?;
        if !p.manifest.audit.clean {
            ui.status(format!(
                "warning: {} built with {} contract violation(s) (--allow-violations); see {}/AUDIT.md",
                variant.name,
                p.manifest.audit.violations.len(),
                dir.display()
            ));
        }
        buildcache::store(
            &root,
            name,
            &buildcache::Entry {
                fingerprint: inputs,
                package_dir: dir.clone(),
                tarball: tarball.clone(),
                manifest_sha256: pkg::sha256_hex(manifest.as_bytes()),
                srcversion: p.manifest.predicted_srcversion.clone(),
                time: p.manifest.time.clone(),
                violations: p.manifest.audit.violations.len(),
                files: p.files.iter().map(|f| (f.path.clone(), pkg::sha256_hex(&f.bytes))).collect(),
            },
        )?;
        built.push((variant.name.clone(), dir, tarball, p.manifest.predicted_srcversion.clone(), fresh, record.id));
        bar.inc(1);
    }
    bar.finish_and_clear();
    if args.json {
        let list: Vec<serde_json::Value> = built
            .iter()
            .map(|(v, dir, tar, srcv, fresh, id)| {
                serde_json::json!({"variant": v, "package": dir, "tarball": tar, "srcversion": srcv,
                    "written": fresh, "build_id": id, "key_fingerprint": fp, "commit": git.commit, "dirty": git.dirty})
            })
            .collect();
        ui.out(serde_json::to_string_pretty(&list).expect("serialises"));
        return Ok(());
    }
    for (v, dir, tar, srcv, fresh, id) in &built {
        ui.out(format!("{v}: {}{}", dir.display(), if *fresh { "" } else { " (unchanged)" }));
        ui.out(format!("  tarball     {}", tar.display()));
        ui.out(format!("  srcversion  {srcv} (predicted)"));
        ui.out(format!("  signed by   {fp} ({})", key_path.display()));
        ui.out(format!(
            "  build       #{id} at {}{}",
            &git.commit[..12.min(git.commit.len())],
            if git.dirty { " (dirty tree)" } else { "" }
        ));
    }
    Ok(())
}
