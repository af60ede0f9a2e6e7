//! A DKMS package of one variant: materialised sources in the flat layout a kernel build
//! hashes, dkms.conf, Kbuild, Makefile, the rollback-slot hook, RATIONALE.md and the
//! signed MANIFEST.json; and its tarball in the layout `dkms ldtarball` loads.

pub mod build;
pub mod cache;
pub mod signing;
pub mod srcversion;
pub mod verify;

use crate::error::ResultExt;
use crate::error::{BenchError, Result};
use crate::fsutil::{sha256_hex, write_synced};
use crate::source::materialise::{self, CfgSet};
use crate::workspace::git::GitInfo;
use crate::workspace::variant::{Variant, Variants};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

pub const MODULE: &str = "bes2600";
pub const MANIFEST: &str = "MANIFEST.json";
pub const SIGNATURE: &str = "MANIFEST.json.sig";
pub const SIGNER: &str = "SIGNER.pub";
/// Where DKMS installs the module under /lib/modules/KVER.
pub const DEST_MODULE_LOCATION: &str = "/updates/dkms";

#[derive(Clone, Debug)]
pub struct PkgFile {
    pub path: String,
    pub bytes: Vec<u8>,
    pub executable: bool,
}

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct Manifest {
    pub package: String,
    pub version: String,
    pub variant: String,
    pub features: Vec<String>,
    pub parent: Option<String>,
    pub status: String,
    pub git_commit: String,
    pub git_dirty: bool,
    pub predicted_srcversion: String,
    /// How the srcversion was predicted (which files modpost hashes).
    pub srcversion_rule: String,
    pub tool_version: String,
    pub time: String,
    pub audit: AuditSummary,
    /// sha256 of every file of the package except the manifest, its signature and the
    /// signer's public key.
    pub files: BTreeMap<String, String>,
    /// The permission bits of each of those files (0644, or 0755 for the DKMS hook):
    /// `bench verify` refuses any other mode.
    pub modes: BTreeMap<String, u32>,
}

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct AuditSummary {
    pub clean: bool,
    /// `field rule: message` per violation (built anyway with --allow-violations).
    pub violations: Vec<String>,
}

pub struct Package {
    pub name: String,
    pub manifest: Manifest,
    pub files: Vec<PkgFile>,
}

/// Puts the package version into the module's `.modinfo` (`modinfo -F version`): the
/// kernel entry declares `static MODINFO_VERSION: [u8; N] = *b"version=...\0";`. Done
/// after the srcversion is known (the version names it); that file is not the crate root,
/// so modpost's srcversion does not change with it.
fn set_modinfo_version(sources: &mut [PkgFile], version: &str) -> Result<()> {
    const DECL: &str = "static MODINFO_VERSION: [u8; ";
    let Some(f) = sources.iter_mut().find(|f| f.path == "kmod.rs") else {
        return Ok(()); // a build without the kernel entry has no .modinfo to fill
    };
    let text = String::from_utf8_lossy(&f.bytes).into_owned();
    let Some(start) = text.find(DECL) else {
        return Err(BenchError::env("kmod.rs declares no MODINFO_VERSION")
            .hint(format!("the kernel entry must keep `{DECL}N] = *b\"version=...\\0\";`")));
    };
    let end = start + text[start..].find('\n').unwrap_or(text.len() - start);
    let entry = format!("version={version}");
    let line = format!("{DECL}{}] = *b\"{entry}\\0\";", entry.len() + 1);
    f.bytes = format!("{}{line}{}", &text[..start], &text[end..]).into_bytes();
    Ok(())
}

/// The materialised tree in the package's flat layout, with the digest of every source in
/// the crate root, and the srcversion modpost will give it (crate root only: DESIGN.md
/// section 6).
pub fn flat_sources(tree: &[materialise::Output]) -> Result<(Vec<PkgFile>, String)> {
    let mut sources: Vec<PkgFile> = Vec::new();
    for f in tree {
        let rel = f.rel_path.to_string_lossy().replace('\\', "/");
        if rel.contains('/') {
            return Err(BenchError::env(format!("driver module {rel} is not flat"))
                .hint("the package layout puts every driver file beside the crate root"));
        }
        let path = if rel == "lib.rs" { format!("{MODULE}.rs") } else { rel };
        sources.push(PkgFile { path, bytes: f.text.clone().into_bytes(), executable: false });
    }
    // modpost hashes the crate root only: a digest of every source as a string literal
    // there makes srcversion tell variants apart.
    let mut hasher = Sha256::new();
    let mut sorted: Vec<&PkgFile> = sources.iter().collect();
    sorted.sort_by(|a, b| a.path.cmp(&b.path));
    for f in &sorted {
        hasher.update(f.path.as_bytes());
        hasher.update([0]);
        hasher.update(&f.bytes);
        hasher.update([0]);
    }
    let digest: String = hasher.finalize().iter().map(|b| format!("{b:02x}")).collect();
    let root_file = sources
        .iter_mut()
        .find(|f| f.path == format!("{MODULE}.rs"))
        .ok_or_else(|| BenchError::env("the materialised driver has no lib.rs"))?;
    root_file.bytes.extend_from_slice(
        format!(
            "\n/// SHA-256 of every source file of this package, so that modpost's srcversion,\n\
             /// which hashes the crate root only, tells variants apart.\n\
             #[doc(hidden)]\npub const BENCH_SOURCES_SHA256: &str = \"{digest}\";\n"
        )
        .as_bytes(),
    );
    let mut stream = Vec::new();
    srcversion::tokenize(&root_file.bytes, &mut stream);
    Ok((sources, srcversion::kernel_md4_hex(&stream)))
}

/// Assembles the package of `variant` (unsigned: the manifest is the last file). Long
/// because it lists the package's files in order: sources, dkms.conf, Kbuild, the hook,
/// RATIONALE.md, AUDIT.md, the manifest.
pub fn assemble(
    root: &Path,
    variants: &Variants,
    variant: &Variant,
    git: &GitInfo,
    allow_violations: bool,
) -> Result<Package> {
    let audit = crate::source::audit::audit_variant(root, variants, variant)?;
    let delta = match &variant.parent {
        Some(p) => Some(crate::source::audit::delta(
            p,
            &crate::source::audit::audit_variant(root, variants, variants.get(p)?)?,
            &audit,
        )),
        None => None,
    };
    let violations: Vec<String> =
        audit.violations.iter().map(|v| format!("{} {}: {}", v.field, v.rule, v.message)).collect();
    if !audit.clean() && !allow_violations {
        let mut e = BenchError::new(
            crate::error::Kind::Failed,
            format!("the contract audit of `{}` found {} violation(s); not building", variant.name, violations.len()),
        );
        for v in violations.iter().take(6) {
            e = e.cause(v.clone());
        }
        return Err(e.hint(format!(
            "see `bench audit --variant {}`; to keep a broken build for forensics, pass --allow-violations (recorded in MANIFEST.json and RATIONALE.md)",
            variant.name
        )));
    }
    let known = variants.driver_features.iter().cloned().chain(["sim".to_string()]).collect();
    let cfg = CfgSet { enabled: variant.features.iter().cloned().collect(), known };
    let tree = materialise::crate_tree(&root.join("driver").join("src"), &cfg)?;
    let (sources, srcv) = flat_sources(&tree)?;

    let tool_version = env!("CARGO_PKG_VERSION").to_string();
    // The commit is part of the version: the manifest records it, so two commits with the
    // same sources are two packages (never one overwritten by the other); a dirty tree adds
    // a digest of what differs, so it never claims a clean build's version.
    let version = format!("{tool_version}+{}.{}.{}", variant.name, &srcv[..8], git.version_tag());
    let name = format!("{MODULE}-{version}");
    let mut sources = sources;
    set_modinfo_version(&mut sources, &version)?;
    let ctx = minijinja::context! {
        module => MODULE, version => version, variant => variant.name, features => variant.features.join(", "),
        tool_version => tool_version, dest_module_location => DEST_MODULE_LOCATION,
    };
    let mut files = sources;
    for (template, out) in [("dkms.conf.j2", "dkms.conf"), ("Kbuild.j2", "Kbuild"), ("Makefile.j2", "Makefile")] {
        files.push(PkgFile { path: out.into(), bytes: render(root, template, &ctx)?.into_bytes(), executable: false });
    }
    let hook = root.join("dkms").join("bench-slots.sh");
    let hook_bytes = std::fs::read(&hook).or_env(format!("cannot read {}", hook.display()))?;
    files.push(PkgFile { path: "bench-slots.sh".into(), bytes: hook_bytes, executable: true });
    files.push(PkgFile {
        path: "RATIONALE.md".into(),
        bytes: rationale(root, variant, &srcv, &violations)?.into_bytes(),
        executable: false,
    });
    files.push(PkgFile {
        path: "AUDIT.md".into(),
        bytes: crate::source::audit::markdown(&variant.name, &audit, delta.as_ref()).into_bytes(),
        executable: false,
    });
    let audit_json =
        serde_json::json!({"variant": variant.name, "clean": audit.clean(), "report": audit, "delta": delta});
    files.push(PkgFile {
        path: "audit.json".into(),
        bytes: (serde_json::to_string_pretty(&audit_json).expect("serialises") + "\n").into_bytes(),
        executable: false,
    });
    files.sort_by(|a, b| a.path.cmp(&b.path));

    let manifest = Manifest {
        package: MODULE.into(),
        version,
        variant: variant.name.clone(),
        features: variant.features.clone(),
        parent: variant.parent.clone(),
        status: variant.status.clone(),
        git_commit: git.commit.clone(),
        git_dirty: git.dirty,
        predicted_srcversion: srcv,
        srcversion_rule: "rust crate root only (external Rust module, M= build, 6.13+)".into(),
        tool_version: env!("CARGO_PKG_VERSION").into(),
        time: crate::workspace::git::rfc3339(git.time_s),
        audit: AuditSummary { clean: violations.is_empty(), violations: violations.clone() },
        files: files.iter().map(|f| (f.path.clone(), sha256_hex(&f.bytes))).collect(),
        modes: files.iter().map(|f| (f.path.clone(), if f.executable { 0o755 } else { 0o644 })).collect(),
    };
    Ok(Package { name, manifest, files })
}

fn render(root: &Path, template: &str, ctx: &minijinja::Value) -> Result<String> {
    let path = root.join("dkms").join(template);
    let text = std::fs::read_to_string(&path).or_env(format!("cannot read template {}", path.display()))?;
    let mut env = minijinja::Environment::new();
    env.set_undefined_behavior(minijinja::UndefinedBehavior::Strict);
    let fail = |e: minijinja::Error| {
        BenchError::usage(format!("template {}:{}: {}", path.display(), e.line().unwrap_or(0), e.kind()))
            .cause(e.detail().unwrap_or("").to_string())
    };
    env.add_template(template, &text).map_err(fail)?;
    let mut out = env.get_template(template).expect("just added").render(ctx).map_err(fail)?;
    if !out.ends_with('\n') {
        out.push('\n');
    }
    Ok(out)
}

fn rationale(root: &Path, v: &Variant, srcv: &str, violations: &[String]) -> Result<String> {
    let mut s = format!("# {MODULE} variant `{}`\n\n", v.name);
    s += &format!(
        "- status: {}\n- parent: {}\n- features: [{}]\n- predicted srcversion: {srcv}\n\n",
        v.status,
        v.parent.as_deref().unwrap_or("none"),
        v.features.join(", ")
    );
    s += "## Rationale\n\n";
    s += v.rationale.text.trim();
    s += "\n";
    if !v.scope.is_empty() {
        s += "\n## Minimum-diff scope (kept, knowingly dead)\n\n";
        for item in &v.scope {
            s += &format!("- {item}\n");
        }
    }
    if !v.predictions.is_empty() {
        s += "\n## Predictions\n\n| metric | from | to | unit | confidence |\n| --- | --- | --- | --- | --- |\n";
        for p in &v.predictions {
            s += &format!(
                "| {} | {} | {} | {} | {} |\n",
                p.metric,
                p.from,
                p.to,
                p.unit.as_deref().unwrap_or(""),
                p.confidence
            );
        }
    }
    if !v.rationale.notes.is_empty() {
        s += "\n## Notes\n\n";
        for n in &v.rationale.notes {
            let text = std::fs::read_to_string(root.join(n)).or_usage(format!("cannot read note {n}"))?;
            s += &format!("### {n}\n\n{}\n", text.trim());
        }
    }
    s += "\n## Contract audit\n\n";
    if violations.is_empty() {
        s += "PASS: no violations (AUDIT.md, audit.json).\n";
    } else {
        s += "FAIL: built anyway with --allow-violations, for forensics. Violations:\n\n";
        for v in violations {
            s += &format!("- {v}\n");
        }
    }
    Ok(s)
}

/// Writes the package directory atomically under `out_dir`: into a temporary directory
/// first, renamed into place. An existing directory of the same name must hold the same
/// package byte for byte, else nothing is written.
pub fn write_dir(out_dir: &Path, name: &str, files: &[PkgFile]) -> Result<(PathBuf, bool)> {
    let final_dir = out_dir.join(name);
    let io = |p: &Path, e: std::io::Error| {
        BenchError::env(format!("cannot write {}", p.display()))
            .cause(e.to_string())
            .hint("choose a writable --out directory")
    };
    std::fs::create_dir_all(out_dir).map_err(|e| io(out_dir, e))?;
    if final_dir.exists() {
        for f in files {
            let p = final_dir.join(&f.path);
            if std::fs::read(&p).ok().as_deref() != Some(&f.bytes[..]) {
                return Err(BenchError::usage(format!(
                    "{} already holds a different package of version {} ({} differs)",
                    final_dir.display(),
                    name,
                    f.path
                ))
                .hint("bench never overwrites a package: move the old one aside, or commit your change so the version moves"));
            }
        }
        return Ok((final_dir, false));
    }
    let tmp = out_dir.join(format!(".{name}.tmp-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&tmp);
    std::fs::create_dir_all(&tmp).map_err(|e| io(&tmp, e))?;
    let result = (|| {
        for f in files {
            write_synced(&tmp.join(&f.path), &f.bytes, f.executable)?;
        }
        std::fs::rename(&tmp, &final_dir).map_err(|e| io(&final_dir, e))
    })();
    if result.is_err() {
        let _ = std::fs::remove_dir_all(&tmp);
    }
    result.map(|_| (final_dir, true))
}

/// The tarball `dkms ldtarball` loads: `dkms_source_tree/` with dkms.conf and sources,
/// and an empty `dkms_main_tree/` (no prebuilt modules). Deterministic: fixed owner,
/// modes and the build time as mtime.
pub fn tarball(out_dir: &Path, name: &str, files: &[PkgFile], mtime_s: i64) -> Result<PathBuf> {
    let path = out_dir.join(format!("{name}.dkms.tar.gz"));
    let tmp = out_dir.join(format!(".{name}.dkms.tar.gz.tmp-{}", std::process::id()));
    let gz = flate2::GzBuilder::new().mtime(mtime_s.max(0) as u32).write(Vec::new(), flate2::Compression::default());
    let mut tar = tar::Builder::new(gz);
    tar.mode(tar::HeaderMode::Deterministic);
    let entry = |path: &str, len: u64, mode: u32, kind: tar::EntryType| {
        let mut h = tar::Header::new_gnu();
        h.set_entry_type(kind);
        h.set_size(len);
        h.set_mode(mode);
        h.set_uid(0);
        h.set_gid(0);
        h.set_mtime(mtime_s.max(0) as u64);
        let _ = h.set_path(path);
        h.set_cksum();
        h
    };
    let fail = |e: std::io::Error| BenchError::env(format!("cannot write {}", path.display())).cause(e.to_string());
    for dir in ["dkms_main_tree/", "dkms_source_tree/"] {
        tar.append(&entry(dir, 0, 0o755, tar::EntryType::Directory), std::io::empty()).map_err(fail)?;
    }
    for f in files {
        let h = entry(
            &format!("dkms_source_tree/{}", f.path),
            f.bytes.len() as u64,
            if f.executable { 0o755 } else { 0o644 },
            tar::EntryType::Regular,
        );
        tar.append(&h, &f.bytes[..]).map_err(fail)?;
    }
    let bytes = tar.into_inner().and_then(|gz| gz.finish()).map_err(fail)?;
    if std::fs::read(&path).ok().as_deref() == Some(&bytes[..]) {
        return Ok(path);
    }
    write_synced(&tmp, &bytes, false)?;
    std::fs::rename(&tmp, &path).map_err(fail)?;
    Ok(path)
}

/// The `.dkms.tar.gz` of a package given as the tarball or as its `dist/` directory.
pub fn tarball_of(pkg: &Path) -> Result<PathBuf> {
    if pkg.is_file() {
        return Ok(pkg.to_path_buf());
    }
    let sibling = PathBuf::from(format!("{}.dkms.tar.gz", pkg.display().to_string().trim_end_matches('/')));
    if pkg.is_dir() && sibling.is_file() {
        return Ok(sibling);
    }
    Err(BenchError::usage(format!("no DKMS package at {}", pkg.display()))
        .hint("pass dist/bes2600-VERSION.dkms.tar.gz (bench build --variant V writes it)"))
}

/// What `bench stage --package` needs of a package: verified against the workspace key
/// (version, variant and the predicted srcversion from its manifest), or with `unverified`
/// only its dkms.conf's PACKAGE_VERSION.
pub fn identify_for_stage(root: &Path, tarball: &Path, unverified: bool) -> Result<crate::target::PackageId> {
    let files = verify::load(tarball)?.map_err(|why| {
        BenchError::usage(format!("{} is not a DKMS package", tarball.display()))
            .cause(why)
            .hint("a package is dkms_source_tree/ with dkms.conf and its sources, as bench build writes it")
    })?;
    if unverified {
        let conf = files
            .get("dkms.conf")
            .ok_or_else(|| BenchError::usage(format!("{} has no dkms_source_tree/dkms.conf", tarball.display())))?;
        let text = String::from_utf8_lossy(&conf.bytes);
        let version = text
            .lines()
            .find_map(|l| l.trim().strip_prefix("PACKAGE_VERSION="))
            .map(|v| v.trim().trim_matches('"').to_string())
            .filter(|v| !v.is_empty() && v.chars().all(|c| c.is_ascii_alphanumeric() || "._+-~".contains(c)))
            .ok_or_else(|| {
                BenchError::usage(format!("{}: dkms.conf has no usable PACKAGE_VERSION", tarball.display()))
                    .hint("PACKAGE_VERSION=\"1.2.3\" (letters, digits and ._+-~)")
            })?;
        return Ok(crate::target::PackageId { version, variant: "unknown".into(), predicted_srcversion: None });
    }
    let key = signing::workspace_key_path(root);
    if !key.is_file() {
        return Err(BenchError::usage("no workspace key to verify the package against").hint(
            "build packages here (bench build creates the key), or pass --no-verify for a DKMS tarball bench did not make",
        ));
    }
    let trusted = verify::Trusted::Key(signing::load_public(&key)?);
    let (manifest, _) = verify::check(&files, &trusted).map_err(|why| {
        BenchError::new(
            crate::error::Kind::Failed,
            format!("{} does not verify: nothing was staged", tarball.display()),
        )
        .cause(why)
    })?;
    Ok(crate::target::PackageId {
        version: manifest.version,
        variant: manifest.variant,
        predicted_srcversion: Some(manifest.predicted_srcversion),
    })
}
