//! Quoting for the POSIX shell commands bench runs on targets and in the lab.

/// Single-quotes a string for sh.
pub fn q(s: &str) -> String {
    format!("'{}'", s.replace('\'', "'\\''"))
}
