//! Small file and digest helpers every room uses: a write that reaches the disk before it
//! returns, and a sha256 as lowercase hex.

use crate::error::Result;
use crate::error::ResultExt;
use sha2::{Digest, Sha256};
use std::path::Path;

/// The sha256 of `bytes` as 64 lowercase hex digits.
pub fn sha256_hex(bytes: &[u8]) -> String {
    Sha256::digest(bytes).iter().map(|b| format!("{b:02x}")).collect()
}

/// Writes `bytes` to `p` with mode 0755 or 0644 and fsyncs it (callers rename a temporary
/// into place, so a crash leaves either the old file or the new one).
pub fn write_synced(p: &Path, bytes: &[u8], executable: bool) -> Result<()> {
    use std::io::Write;
    use std::os::unix::fs::PermissionsExt;
    let mut f = std::fs::File::create(p).or_env(format!("cannot write {}", p.display()))?;
    f.write_all(bytes)
        .and_then(|_| f.set_permissions(std::fs::Permissions::from_mode(if executable { 0o755 } else { 0o644 })))
        .and_then(|_| f.sync_all())
        .or_env(format!("cannot write {}", p.display()))
}
