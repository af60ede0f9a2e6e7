//! Package signatures: SSHSIG (the format of `ssh-keygen -Y sign` and git) over
//! MANIFEST.json, namespace [`NAMESPACE`]. Without a configured key a workspace key is
//! made on first use in `.bench/keys/` (git-ignored).

use crate::error::ResultExt;
use crate::error::{BenchError, Result};
use ssh_key::{Algorithm, HashAlg, LineEnding, PrivateKey, PublicKey, SshSig};
use std::path::{Path, PathBuf};

pub const NAMESPACE: &str = "bench-package";

pub fn workspace_key_path(root: &Path) -> PathBuf {
    crate::workspace::ledger::state_dir(root).join("keys").join("bench_ed25519")
}

/// Loads `--key`, or the workspace key, making it on first use. The bool says whether a
/// key was just made.
pub fn load_or_create(root: &Path, explicit: Option<&Path>) -> Result<(PrivateKey, PathBuf, bool)> {
    if let Some(p) = explicit {
        return Ok((load_private(p)?, p.to_path_buf(), false));
    }
    let p = workspace_key_path(root);
    if p.is_file() {
        return Ok((load_private(&p)?, p, false));
    }
    let key = PrivateKey::random(&mut rand_core::OsRng, Algorithm::Ed25519).or_env("cannot generate a signing key")?;
    let dir = p.parent().expect("has a parent");
    std::fs::create_dir_all(dir).or_env(format!("cannot create {}", dir.display()))?;
    let pem = key.to_openssh(LineEnding::LF).or_env("cannot encode the key")?;
    write_private(&p, pem.as_bytes())?;
    let public = key.public_key().to_openssh().or_env("cannot encode the key")?;
    std::fs::write(p.with_extension("pub"), format!("{public} bench-workspace\n"))
        .or_env(format!("cannot write {}.pub", p.display()))?;
    Ok((key, p, true))
}

fn write_private(p: &Path, bytes: &[u8]) -> Result<()> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(p)
        .or_env(format!("cannot create {}", p.display()))?;
    f.write_all(bytes).and_then(|_| f.sync_all()).or_env(format!("cannot write {}", p.display()))
}

pub fn load_private(p: &Path) -> Result<PrivateKey> {
    let text = crate::fsutil::read_text(p)?;
    let key = PrivateKey::from_openssh(&text).map_err(|e| {
        BenchError::usage(format!("{} is not an OpenSSH private key", p.display()))
            .cause(e.to_string())
            .hint("make one with: ssh-keygen -t ed25519 -N '' -f KEY")
    })?;
    if key.is_encrypted() {
        return Err(BenchError::usage(format!("{} is encrypted", p.display()))
            .hint("bench signs unattended: use a key without a passphrase, kept for this purpose"));
    }
    Ok(key)
}

/// A public key from an OpenSSH `.pub` file or a private key file.
pub fn load_public(p: &Path) -> Result<PublicKey> {
    let text = crate::fsutil::read_text(p)?;
    if let Ok(k) = PublicKey::from_openssh(text.trim()) {
        return Ok(k);
    }
    Ok(load_private(p)?.public_key().clone())
}

pub fn fingerprint(key: &PublicKey) -> String {
    key.fingerprint(HashAlg::Sha256).to_string()
}

pub fn sign(key: &PrivateKey, message: &[u8]) -> Result<String> {
    let sig = key.sign(NAMESPACE, HashAlg::Sha512, message).or_env("signing failed")?;
    sig.to_pem(LineEnding::LF).or_env("cannot encode the signature")
}

/// Checks an armoured SSHSIG over `message` against `key`.
pub fn verify(key: &PublicKey, message: &[u8], armoured: &str) -> std::result::Result<(), String> {
    let sig = SshSig::from_pem(armoured).map_err(|e| format!("the signature is not an SSHSIG: {e}"))?;
    key.verify(NAMESPACE, message, &sig).map_err(|_| {
        format!(
            "the signature does not match key {} (it was made by {})",
            fingerprint(key),
            fingerprint(&PublicKey::from(sig.public_key().clone()))
        )
    })
}
