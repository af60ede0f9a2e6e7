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
    /// Also build the package into a module for a kernel: `lab` (the kernel lab of
    /// `bench lab setup`: dkms in the lab's chroot, signed with the lab key, srcversion
    /// checked against the prediction).
    #[arg(long, value_parser = ["lab"])]
    pub kernel: Option<String>,
    /// The kernel lab's directory (default: BENCH_LAB_DIR, else .bench/lab).
    #[arg(long)]
    pub lab_dir: Option<PathBuf>,
    #[command(flatten)]
    pub ws: crate::workspace::WorkspaceArg,
}

/// One package `bench build` wrote or found unchanged.
pub struct Built {
    pub variant: String,
    pub dir: PathBuf,
    pub tarball: PathBuf,
    pub srcversion: String,
    pub fresh: bool,
    pub build_id: u64,
    pub lab: Option<crate::lab::LabModule>,
}

pub fn run(args: &BuildArgs, ui: &Ui) -> Result<()> {
    let root = args.ws.root()?;
    let (built, fp, key_path, git) = build(&root, args, ui)?;
    print(args, ui, &built, &fp, &key_path, &git);
    Ok(())
}

/// Builds the packages `args` asks for (and their lab modules with `--kernel lab`).
pub fn build(
    root: &std::path::Path,
    args: &BuildArgs,
    ui: &Ui,
) -> Result<(Vec<Built>, String, PathBuf, gitinfo::GitInfo)> {
    let root = root.to_path_buf();
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
            built.push(Built {
                variant: variant.name.clone(),
                dir: c.package_dir,
                tarball: c.tarball,
                srcversion: c.srcversion,
                fresh: false,
                build_id: record.id,
                lab: None,
            });
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
        built.push(Built {
            variant: variant.name.clone(),
            dir,
            tarball,
            srcversion: p.manifest.predicted_srcversion.clone(),
            fresh,
            build_id: record.id,
            lab: None,
        });
        bar.inc(1);
    }
    bar.finish_and_clear();
    if args.kernel.is_some() {
        let lab = crate::lab::Lab::at(args.lab_dir.as_deref(), &root);
        for b in &mut built {
            let name = b.dir.file_name().and_then(|n| n.to_str()).unwrap_or_default().to_string();
            let version = name.strip_prefix("bes2600-").unwrap_or(&name).to_string();
            let spinner = ui.spinner(format!("dkms build of {} for the lab kernel", b.variant));
            let out = b.dir.with_file_name(format!("{name}.lab"));
            let m = crate::lab::build_module(&lab, &b.tarball, &version, &b.srcversion, &out);
            spinner.finish_and_clear();
            b.lab = Some(m?);
        }
    }
    Ok((built, fp, key_path, git))
}

fn print(args: &BuildArgs, ui: &Ui, built: &[Built], fp: &str, key_path: &std::path::Path, git: &gitinfo::GitInfo) {
    if args.json {
        let list: Vec<serde_json::Value> = built
            .iter()
            .map(|b| {
                serde_json::json!({"variant": b.variant, "package": b.dir, "tarball": b.tarball, "srcversion": b.srcversion,
                    "written": b.fresh, "build_id": b.build_id, "key_fingerprint": fp, "commit": git.commit, "dirty": git.dirty,
                    "lab": b.lab})
            })
            .collect();
        ui.out(serde_json::to_string_pretty(&list).expect("serialises"));
        return;
    }
    for b in built {
        ui.out(format!("{}: {}{}", b.variant, b.dir.display(), if b.fresh { "" } else { " (unchanged)" }));
        ui.out(format!("  tarball     {}", b.tarball.display()));
        ui.out(format!("  srcversion  {} (predicted)", b.srcversion));
        ui.out(format!("  signed by   {fp} ({})", key_path.display()));
        ui.out(format!(
            "  build       #{} at {}{}",
            b.build_id,
            &git.commit[..12.min(git.commit.len())],
            if git.dirty { " (dirty tree)" } else { "" }
        ));
        if let Some(m) = &b.lab {
            ui.out(format!("  lab module  {} (kernel {})", m.ko.display(), m.kernel_release));
            ui.out(format!("  modinfo     srcversion {} (as predicted), signer {}", m.srcversion, m.signer));
        }
    }
}
