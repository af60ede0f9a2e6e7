//! The build pipeline: a variant becomes a signed, srcversion-tagged DKMS package (and,
//! for the kernel lab, a signed module). `bench build`, `bench lab run` and whatever else
//! needs a package call [`build`]; commands never call commands.

use crate::error::Result;
use crate::error::ResultExt;
use crate::package::{self, cache, signing, PkgFile};
use crate::ui::Ui;
use crate::workspace::git::{self, GitInfo};
use crate::workspace::ledger::{self, BuildRecord};
use crate::workspace::variant::{Variant, Variants};
use std::path::{Path, PathBuf};

/// What to build.
pub struct BuildRequest<'a> {
    /// Variant names; `None` builds every variant.
    pub variants: Option<Vec<String>>,
    /// Where packages go (absolute, or relative to the workspace root).
    pub out: &'a Path,
    /// OpenSSH private key to sign with; `None`: the workspace key (made on first use).
    pub key: Option<&'a Path>,
    /// Package a variant whose audit finds violations (kept for forensics).
    pub allow_violations: bool,
    /// Also build each package into a signed module for the kernel lab at this directory
    /// (`None` for the lab: no module).
    pub lab: Option<LabKernel<'a>>,
}

/// The kernel lab a package is built for.
pub struct LabKernel<'a> {
    /// The lab's directory (`None`: BENCH_LAB_DIR, else .bench/lab).
    pub dir: Option<&'a Path>,
    /// Its plain kernel or its KCSAN kernel.
    pub flavour: crate::lab::Flavour,
}

/// One package written or found unchanged.
pub struct Built {
    pub variant: String,
    pub dir: PathBuf,
    pub tarball: PathBuf,
    pub srcversion: String,
    pub fresh: bool,
    pub build_id: u64,
    pub lab: Option<crate::lab::LabModule>,
}

/// What a build produced, with the key and commit it was made from.
pub struct BuildOutcome {
    pub built: Vec<Built>,
    pub key_fingerprint: String,
    pub key_path: PathBuf,
    pub git: GitInfo,
}

/// The signing key and the commit every package of one build shares.
struct Signer {
    key: ssh_key::PrivateKey,
    fingerprint: String,
}

/// Builds the packages `req` asks for (and their lab modules).
pub fn build(root: &Path, req: &BuildRequest, ui: &Ui) -> Result<BuildOutcome> {
    // One build at a time per workspace: the key, the cache and dist/ are shared.
    let _lock = crate::workspace::lock::acquire(root, "bench build", ui)?;
    let variants = Variants::load(root)?;
    let names: Vec<String> = match &req.variants {
        Some(list) => list.iter().map(|v| variants.get(v).map(|v| v.name.clone())).collect::<Result<_>>()?,
        None => variants.list.iter().map(|v| v.name.clone()).collect(),
    };
    let git = git::describe(root)?;
    let (key, key_path, created) = signing::load_or_create(root, req.key)?;
    let fingerprint = signing::fingerprint(key.public_key());
    if created {
        ui.status(format!("generated a workspace signing key at {} ({fingerprint})", key_path.display()));
    }
    let signer = Signer { key, fingerprint };
    let out_dir = if req.out.is_absolute() { req.out.to_path_buf() } else { root.join(req.out) };
    let bar = ui.bar_plain(names.len() as u64, "building");
    let mut built = Vec::new();
    for name in &names {
        bar.set_message(format!("building {name}"));
        let variant = variants.get(name)?;
        let inputs = cache::fingerprint(
            root,
            name,
            &[
                &git.commit,
                git.dirty_digest.as_deref().unwrap_or("clean"),
                &signer.fingerprint,
                &out_dir.display().to_string(),
                &req.allow_violations.to_string(),
            ],
        );
        let one = match cache::hit(root, name, &inputs) {
            Some(c) => from_cache(root, variant, &git, &signer, c)?,
            None => fresh(root, &variants, variant, &git, &signer, &out_dir, req.allow_violations, inputs, ui)?,
        };
        built.push(one);
        bar.inc(1);
    }
    bar.finish_and_clear();
    if let Some(lab) = &req.lab {
        build_lab_modules(root, lab, &mut built, ui)?;
    }
    Ok(BuildOutcome { built, key_fingerprint: signer.fingerprint, key_path, git })
}

/// An unchanged rebuild: the package on disk is still the one the cache names.
fn from_cache(root: &Path, variant: &Variant, git: &GitInfo, signer: &Signer, c: cache::Entry) -> Result<Built> {
    let record = ledger::append(
        root,
        BuildRecord {
            id: 0,
            time: c.time.clone(),
            variant: variant.name.clone(),
            features: variant.features.clone(),
            commit: git.commit.clone(),
            dirty: git.dirty,
            srcversion: c.srcversion.clone(),
            manifest_sha256: c.manifest_sha256.clone(),
            key_fingerprint: signer.fingerprint.clone(),
            path: c.package_dir.display().to_string(),
        },
    )?;
    Ok(Built {
        variant: variant.name.clone(),
        dir: c.package_dir,
        tarball: c.tarball,
        srcversion: c.srcversion,
        fresh: false,
        build_id: record.id,
        lab: None,
    })
}

/// Assembles, signs and writes one package, records it in the ledger and the cache.
#[allow(clippy::too_many_arguments)]
fn fresh(
    root: &Path,
    variants: &Variants,
    variant: &Variant,
    git: &GitInfo,
    signer: &Signer,
    out_dir: &Path,
    allow_violations: bool,
    inputs: String,
    ui: &Ui,
) -> Result<Built> {
    let mut p = package::assemble(root, variants, variant, git, allow_violations)?;
    let manifest = serde_json::to_string_pretty(&p.manifest).expect("a manifest serialises") + "\n";
    let signature = signing::sign(&signer.key, manifest.as_bytes())?;
    let public = signer.key.public_key().to_openssh().or_env("cannot encode the key")?;
    p.files.push(PkgFile { path: package::MANIFEST.into(), bytes: manifest.clone().into_bytes(), executable: false });
    p.files.push(PkgFile { path: package::SIGNATURE.into(), bytes: signature.into_bytes(), executable: false });
    p.files.push(PkgFile {
        path: package::SIGNER.into(),
        bytes: format!("{public}\n").into_bytes(),
        executable: false,
    });
    let (dir, fresh) = package::write_dir(out_dir, &p.name, &p.files)?;
    let tarball = package::tarball(out_dir, &p.name, &p.files, git.time_s)?;
    let manifest_sha256 = crate::fsutil::sha256_hex(manifest.as_bytes());
    let srcversion = p.manifest.predicted_srcversion.clone();
    let record = ledger::append(
        root,
        BuildRecord {
            id: 0,
            time: p.manifest.time.clone(),
            variant: variant.name.clone(),
            features: variant.features.clone(),
            commit: git.commit.clone(),
            dirty: git.dirty,
            srcversion: srcversion.clone(),
            manifest_sha256: manifest_sha256.clone(),
            key_fingerprint: signer.fingerprint.clone(),
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
    cache::store(
        root,
        &variant.name,
        &cache::Entry {
            fingerprint: inputs,
            package_dir: dir.clone(),
            tarball: tarball.clone(),
            manifest_sha256,
            srcversion: srcversion.clone(),
            time: p.manifest.time.clone(),
            violations: p.manifest.audit.violations.len(),
            files: p.files.iter().map(|f| (f.path.clone(), crate::fsutil::sha256_hex(&f.bytes))).collect(),
        },
    )?;
    Ok(Built { variant: variant.name.clone(), dir, tarball, srcversion, fresh, build_id: record.id, lab: None })
}

/// Builds each package with dkms for the lab kernel, signs the module with the lab key and
/// checks its srcversion against the prediction.
fn build_lab_modules(root: &Path, lab_kernel: &LabKernel, built: &mut [Built], ui: &Ui) -> Result<()> {
    let lab = crate::lab::Lab::at(lab_kernel.dir, root);
    for b in built {
        let name = b.dir.file_name().and_then(|n| n.to_str()).unwrap_or_default().to_string();
        let version = name.strip_prefix("bes2600-").unwrap_or(&name).to_string();
        let flavour = lab_kernel.flavour;
        let spinner = ui.spinner(format!("dkms build of {} for the lab kernel{}", b.variant, flavour.suffix()));
        let out = b.dir.with_file_name(format!("{name}.lab{}", flavour.suffix()));
        let m = crate::lab::build_module(&lab, flavour, &b.tarball, &version, &b.srcversion, &out);
        spinner.finish_and_clear();
        b.lab = Some(m?);
    }
    Ok(())
}
