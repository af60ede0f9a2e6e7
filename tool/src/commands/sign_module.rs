//! `bench sign-module`: appends the kernel's PKCS#7 module signature, as
//! `scripts/sign-file sha256 KEY CERT MODULE` does, byte for byte.

use crate::error::Result;
use crate::modsign;
use crate::ui::Ui;
use clap::Args;
use std::path::PathBuf;

#[derive(Args, Debug)]
#[command(after_help = "Writes OUT (default: the module itself, replaced through a temporary file and a rename). \
Check with `modinfo FILE.ko` (signer, sig_key, sig_hashalgo). A key that does not match the certificate is \
refused (the kernel would refuse the module).

Examples:
  bench sign-module bes2600.ko --key certs/signing_key.pem              the kernel's combined key + cert
  KBUILD_SIGN_PIN=... bench sign-module bes2600.ko --key key8.pem --cert cert.pem")]
pub struct SignModuleArgs {
    /// The unsigned kernel module.
    pub module: PathBuf,
    /// RSA private key, PEM: PKCS#8, PKCS#1, or encrypted PKCS#8 with its passphrase in
    /// KBUILD_SIGN_PIN; may hold the certificate too (the kernel's certs/signing_key.pem).
    #[arg(long)]
    pub key: PathBuf,
    /// X.509 certificate of the key, PEM or DER (default: the one in the key file).
    #[arg(long)]
    pub cert: Option<PathBuf>,
    /// Where to write the signed module (default: in place).
    #[arg(long)]
    pub out: Option<PathBuf>,
}

pub fn run(args: &SignModuleArgs, ui: &Ui) -> Result<()> {
    let signed = modsign::sign_files(&args.module, &args.key, args.cert.as_deref().unwrap_or(&args.key))?;
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
