//! `bench sign-module`: appends the kernel's PKCS#7 module signature, as
//! `scripts/sign-file sha256 KEY CERT MODULE` does, byte for byte.

use crate::error::Result;
use crate::modsign;
use crate::ui::Ui;
use clap::Args;
use std::path::PathBuf;

#[derive(Args, Debug)]
#[command(after_help = "Writes OUT (default: the module itself, replaced through a temporary file and a rename). \
Check with `modinfo FILE.ko` (signer, sig_key, sig_hashalgo).")]
pub struct SignModuleArgs {
    /// The unsigned kernel module.
    pub module: PathBuf,
    /// RSA private key, PEM (PKCS#8 or PKCS#1), unencrypted.
    #[arg(long)]
    pub key: PathBuf,
    /// X.509 certificate of the key, PEM or DER.
    #[arg(long)]
    pub cert: PathBuf,
    /// Where to write the signed module (default: in place).
    #[arg(long)]
    pub out: Option<PathBuf>,
}

pub fn run(args: &SignModuleArgs, ui: &Ui) -> Result<()> {
    let signed = modsign::sign_files(&args.module, &args.key, &args.cert)?;
    let out = args.out.clone().unwrap_or_else(|| args.module.clone());
    let tmp = out.with_file_name(format!(
        ".{}.tmp-{}",
        out.file_name().map(|n| n.to_string_lossy()).unwrap_or_default(),
        std::process::id()
    ));
    crate::fsutil::write_synced(&tmp, &signed, false)?;
    std::fs::rename(&tmp, &out).map_err(|e| {
        let _ = std::fs::remove_file(&tmp);
        crate::error::BenchError::env(format!("cannot write {}", out.display())).cause(e.to_string())
    })?;
    ui.out(format!("signed {} (sha256 {})", out.display(), crate::fsutil::sha256_hex(&signed)));
    Ok(())
}
