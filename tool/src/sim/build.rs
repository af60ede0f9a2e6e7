//! Builds the simulator binary for one variant's feature set (a plain cargo feature build
//! of the driver crate, release mode) into its own target directory, so variants never
//! rebuild each other.

use crate::error::{BenchError, Result};
use crate::workspace::variant::Variant;
use std::path::{Path, PathBuf};
use std::process::Command;

pub fn build(workspace: &Path, variant: &Variant) -> Result<PathBuf> {
    build_in(workspace, variant, "bench-sim", false)
}

/// The same build with line tables (`debug = "line-tables-only"`, the optimised code
/// unchanged), so a profiler can say which source line each instruction came from; in a
/// target directory of its own so the plain build is not redone.
pub fn build_with_line_tables(workspace: &Path, variant: &Variant) -> Result<PathBuf> {
    build_in(workspace, variant, "bench-measure", true)
}

fn build_in(workspace: &Path, variant: &Variant, dir: &str, line_tables: bool) -> Result<PathBuf> {
    let target_dir = workspace.join("target").join(dir).join(&variant.name);
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let mut features = vec!["sim"];
    features.extend(variant.features.iter().map(String::as_str));
    let mut cmd = Command::new(&cargo);
    if line_tables {
        cmd.env("CARGO_PROFILE_RELEASE_DEBUG", "line-tables-only");
    }
    let output = cmd
        .current_dir(workspace)
        .args(["build", "--quiet", "--release", "-p", "bes2600", "--bin", "bes2600-sim", "--features"])
        .arg(features.join(","))
        .arg("--target-dir")
        .arg(&target_dir)
        .output()
        .map_err(|e| {
            BenchError::env(format!("cannot run {}", Path::new(&cargo).display()))
                .cause(e.to_string())
                .hint("install the Rust toolchain (cargo) or set CARGO to its path")
        })?;
    if !output.status.success() {
        return Err(BenchError::env(format!("building the simulator for variant `{}` failed", variant.name))
            .cause(String::from_utf8_lossy(&output.stderr).trim().to_string())
            .hint(format!("reproduce with: cargo build --release -p bes2600 --features {}", features.join(","))));
    }
    let exe = target_dir.join("release").join(format!("bes2600-sim{}", std::env::consts::EXE_SUFFIX));
    if !exe.is_file() {
        return Err(BenchError::env(format!("cargo reported success but {} is missing", exe.display())));
    }
    Ok(exe)
}
