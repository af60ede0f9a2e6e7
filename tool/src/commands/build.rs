//! `bench build`: materialises a variant into a signed, srcversion-tagged DKMS package
//! with its rationale and rollback-slot hook, writes its tarball and records the build.

use crate::error::Result;
use crate::package::build::{self, BuildOutcome, BuildRequest, LabKernel};
use crate::ui::Ui;
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
    /// checked against the prediction), or `lab-kcsan` (its KCSAN kernel, of
    /// `bench lab setup --kcsan`; the module goes to DIR.lab-kcsan/).
    #[arg(long, value_parser = ["lab", "lab-kcsan"])]
    pub kernel: Option<String>,
    /// The kernel lab's directory (default: BENCH_LAB_DIR, else .bench/lab).
    #[arg(long)]
    pub lab_dir: Option<PathBuf>,
    #[command(flatten)]
    pub ws: crate::workspace::WorkspaceArg,
}

pub fn run(args: &BuildArgs, ui: &Ui) -> Result<()> {
    let root = args.ws.root()?;
    let req = BuildRequest {
        variants: args.variant.clone().map(|v| vec![v]),
        out: &args.out,
        key: args.key.as_deref(),
        allow_violations: args.allow_violations,
        lab: args.kernel.as_deref().map(|k| LabKernel {
            dir: args.lab_dir.as_deref(),
            flavour: if k == "lab-kcsan" { crate::lab::Flavour::Kcsan } else { crate::lab::Flavour::Plain },
        }),
    };
    let outcome = build::build(&root, &req, ui)?;
    print(args, ui, &outcome);
    Ok(())
}

fn print(args: &BuildArgs, ui: &Ui, outcome: &BuildOutcome) {
    let (built, fp, key_path, git) = (&outcome.built, &outcome.key_fingerprint, &outcome.key_path, &outcome.git);
    if args.json {
        let list: Vec<serde_json::Value> = built
            .iter()
            .map(|b| {
                serde_json::json!({"variant": b.variant, "package": b.dir, "tarball": b.tarball, "srcversion": b.srcversion,
                    "written": b.fresh, "build_id": b.build_id, "key_fingerprint": fp, "commit": git.commit, "dirty": git.dirty,
                    "dirty_digest": git.dirty_digest, "lab": b.lab})
            })
            .collect();
        ui.out(serde_json::to_string_pretty(&list).expect("serialises"));
        return;
    }
    for b in built.iter() {
        ui.out(format!("{}: {}{}", b.variant, b.dir.display(), if b.fresh { "" } else { " (unchanged)" }));
        ui.out(format!("  tarball     {}", b.tarball.display()));
        ui.out(format!("  srcversion  {} (predicted)", b.srcversion));
        ui.out(format!("  signed by   {fp} ({})", key_path.display()));
        ui.out(format!(
            "  build       #{} at {}{}",
            b.build_id,
            &git.commit[..12.min(git.commit.len())],
            match &git.dirty_digest {
                Some(d) => format!(" (dirty tree, changes digest {d})"),
                None => String::new(),
            }
        ));
        if let Some(m) = &b.lab {
            ui.out(format!("  lab module  {} (kernel {})", m.ko.display(), m.kernel_release));
            ui.out(format!("  modinfo     srcversion {} (as predicted), signer {}", m.srcversion, m.signer));
        }
    }
}
