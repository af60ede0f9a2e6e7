//! `bench verify`: checks a package's manifest signature against a key the user trusts,
//! every file's sha256 and mode, and that nothing else is there; names the first thing
//! that differs.

use crate::error::{BenchError, Kind, Result};
use crate::package::signing;
use crate::package::verify::{self, Trusted};
use crate::ui::Ui;
use clap::Args;
use std::path::PathBuf;

#[derive(Args, Debug)]
#[command(after_help = "Exit status: 0 verified, 1 something differs (named), 2 bad input.")]
pub struct VerifyArgs {
    /// Package directory (dist/bes2600-VERSION) or its .dkms.tar.gz.
    pub package: PathBuf,
    /// Public key (.pub) or private key to check the signature against (default: the
    /// workspace key). A key shipped in the package is never trusted.
    #[arg(long, conflicts_with = "allowed_signers")]
    pub key: Option<PathBuf>,
    /// An OpenSSH allowed_signers file: the signature must be by one of its keys.
    #[arg(long, value_name = "FILE")]
    pub allowed_signers: Option<PathBuf>,
    #[command(flatten)]
    pub ws: crate::workspace::WorkspaceArg,
}

pub fn run(args: &VerifyArgs, ui: &Ui) -> Result<()> {
    if !args.package.exists() {
        return Err(BenchError::usage(format!("no package at {}", args.package.display()))
            .hint("pass a directory dist/bes2600-VERSION or its .dkms.tar.gz"));
    }
    let trusted = match (&args.key, &args.allowed_signers) {
        (Some(k), _) => Trusted::Key(signing::load_public(k)?),
        (None, Some(f)) => Trusted::allowed_signers(f)?,
        (None, None) => {
            let root = args.ws.root()?;
            let p = signing::workspace_key_path(&root);
            if !p.is_file() {
                return Err(BenchError::usage("no key to verify against").hint(
                    "pass --key KEY.pub (the signer's public key) or --allowed-signers FILE; a key inside the package is never trusted",
                ));
            }
            Trusted::Key(signing::load_public(&p)?)
        }
    };
    let checked = verify::load(&args.package)?.and_then(|files| verify::check(&files, &trusted));
    match checked {
        Ok((m, fp)) => {
            ui.out(format!(
                "verified: {} {} (variant {}, srcversion {}, {} files, modes and nothing else, signed by {fp})",
                m.package,
                m.version,
                m.variant,
                m.predicted_srcversion,
                m.files.len(),
            ));
            Ok(())
        }
        Err(why) => {
            Err(BenchError::new(Kind::Failed, format!("{} does not verify", args.package.display())).cause(why))
        }
    }
}
