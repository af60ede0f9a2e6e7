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

/// A text file a user writes (a variant, a note, bench.toml, a key): its contents, with a
/// UTF-8 byte order mark dropped. Errors name the file and say what is wrong: missing, a
/// directory, or not UTF-8 at a byte offset with its line and column.
pub fn read_text(p: &Path) -> Result<String> {
    use crate::error::BenchError;
    let bytes = std::fs::read(p).map_err(|e| {
        let what = if p.is_dir() { "is a directory, not a file".to_string() } else { e.to_string() };
        BenchError::usage(format!("cannot read {}: {what}", p.display()))
    })?;
    let bytes = bytes.strip_prefix(b"\xef\xbb\xbf").unwrap_or(&bytes);
    match std::str::from_utf8(bytes) {
        Ok(s) => Ok(s.to_string()),
        Err(e) => {
            let at = e.valid_up_to();
            // The valid prefix gives the line and column of the first bad byte.
            let before = std::str::from_utf8(&bytes[..at]).unwrap_or("");
            let (line, col) = crate::workspace::variant::line_col(before, before.len());
            Err(BenchError::usage(format!(
                "{}:{line}:{col}: not UTF-8: byte {:#04x} at byte offset {at}",
                p.display(),
                bytes[at]
            ))
            .hint("save the file as UTF-8 (iconv -f LATIN1 -t UTF-8, or your editor's encoding menu)"))
        }
    }
}

#[cfg(test)]
mod read_text_tests {
    use super::*;

    #[test]
    fn bad_bytes_are_named_by_offset_line_and_column_and_a_bom_is_dropped() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("v.toml");
        std::fs::write(&p, b"a = 1\nb = \"\xff\"\n").unwrap();
        let e = read_text(&p).unwrap_err();
        assert!(e.message.ends_with("v.toml:2:6: not UTF-8: byte 0xff at byte offset 11"), "{}", e.message);
        std::fs::write(&p, b"\xef\xbb\xbfa = 1\n").unwrap();
        assert_eq!(read_text(&p).unwrap(), "a = 1\n");
        let e = read_text(d.path()).unwrap_err();
        assert!(e.message.contains("is a directory"), "{}", e.message);
    }
}
