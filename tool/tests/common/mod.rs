//! Helpers shared by the CLI tests: a temporary, committed copy of the workspace.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::Command;

pub fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap().to_path_buf()
}

pub fn copy_tree(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for e in std::fs::read_dir(from).unwrap() {
        let e = e.unwrap();
        let (src, dst) = (e.path(), to.join(e.file_name()));
        if e.file_type().unwrap().is_dir() {
            copy_tree(&src, &dst);
        } else {
            std::fs::copy(&src, &dst).unwrap();
        }
    }
}

/// `bench` as every CLI test runs it: a cleared environment holding only what cargo and
/// rustup need to find the toolchain (the tool runs cargo for the audit and the
/// simulator), PATH, a fixed locale and time zone, no colour, and the given HOME (ssh and
/// the workspace key look there). Add `.env(..)` for what a test sets on purpose.
pub fn bench_command(cwd: &Path, home: &Path) -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_bench"));
    c.current_dir(cwd).env_clear();
    for k in ["PATH", "CARGO_HOME", "RUSTUP_HOME", "RUSTUP_TOOLCHAIN", "CARGO", "TMPDIR"] {
        if let Some(v) = std::env::var_os(k) {
            c.env(k, v);
        }
    }
    c.env("HOME", home).env("LANG", "C.UTF-8").env("TZ", "UTC").env("NO_COLOR", "1");
    c
}

/// `bench` in the repository itself, with a temporary HOME and a state directory of its
/// own (run records, caches): exit code, stdout, stderr.
pub fn bench_in_repo(args: &[&str]) -> (i32, String, String) {
    let home = tempfile::tempdir().expect("temp HOME");
    let out = bench_command(&repo(), home.path())
        .env("BENCH_STATE_DIR", home.path().join("state"))
        .args(args)
        .output()
        .expect("bench runs");
    (
        out.status.code().expect("exit code"),
        String::from_utf8(out.stdout).expect("utf-8 stdout"),
        String::from_utf8(out.stderr).expect("utf-8 stderr"),
    )
}

pub fn sh(dir: &Path, cmd: &str, args: &[&str]) -> std::process::Output {
    let out = Command::new(cmd).args(args).current_dir(dir).output().unwrap_or_else(|e| panic!("{cmd}: {e}"));
    out
}

/// Runs git in `dir` with a fixed author, committer and date.
pub fn git(dir: &Path, args: &[&str]) {
    let out = Command::new("git")
        .args(args)
        .current_dir(dir)
        .env("GIT_AUTHOR_DATE", "2026-05-07T17:50:37Z")
        .env("GIT_COMMITTER_DATE", "2026-05-07T17:50:37Z")
        .env("GIT_AUTHOR_NAME", "t")
        .env("GIT_AUTHOR_EMAIL", "t@t")
        .env("GIT_COMMITTER_NAME", "t")
        .env("GIT_COMMITTER_EMAIL", "t@t")
        .output()
        .unwrap();
    assert!(out.status.success(), "git {args:?}: {}", String::from_utf8_lossy(&out.stderr));
}

/// A workspace with the driver, variants, dkms templates and manifests, committed.
pub struct Ws {
    _dir: tempfile::TempDir,
    pub root: PathBuf,
    pub home: tempfile::TempDir,
}

impl Ws {
    pub fn new() -> Ws {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().join("ws");
        for d in ["driver", "variants", "dkms", "notes", "patches", "tool/templates"] {
            copy_tree(&repo().join(d), &root.join(d));
        }
        std::fs::create_dir_all(root.join("tool/src")).unwrap();
        std::fs::copy(repo().join("tool/Cargo.toml"), root.join("tool/Cargo.toml")).unwrap();
        std::fs::write(root.join("tool/src/main.rs"), "fn main() {}\n").unwrap();
        for f in ["Cargo.toml", "Cargo.lock", ".gitignore", "bench.toml"] {
            std::fs::copy(repo().join(f), root.join(f)).unwrap();
        }
        git(&root, &["init", "-q", "-b", "main"]);
        git(&root, &["add", "-A"]);
        git(&root, &["commit", "-q", "-m", "fixture"]);
        Ws { _dir: dir, root, home: tempfile::tempdir().unwrap() }
    }

    /// Commits everything with a fixed date.
    pub fn commit(&self, message: &str) {
        git(&self.root, &["add", "-A"]);
        git(&self.root, &["commit", "-q", "-m", message]);
    }

    pub fn bench(&self, args: &[&str]) -> (i32, String, String) {
        let out = bench_command(&self.root, self.home.path())
            .args(args)
            .env("BENCH_STATE_DIR", self.root.join(".bench"))
            .output()
            .unwrap();
        (out.status.code().unwrap(), String::from_utf8(out.stdout).unwrap(), String::from_utf8(out.stderr).unwrap())
    }

    pub fn package(&self) -> PathBuf {
        let dist = self.root.join("dist");
        let mut dirs: Vec<PathBuf> =
            std::fs::read_dir(&dist).unwrap().map(|e| e.unwrap().path()).filter(|p| p.is_dir()).collect();
        dirs.sort();
        dirs.pop().expect("a package directory")
    }
}

/// A small C module named bes2600 (MODULE_VERSION `version`) packaged as a bench package's
/// DKMS source: Kbuild, the package's `bench-slots.sh`, and a dkms.conf with the hook lines
/// of the package's own template (for `variant` and `version`). Written to `dir`.
#[allow(dead_code)]
pub fn c_module_dkms_source(dir: &Path, variant: &str, version: &str) {
    std::fs::create_dir_all(dir).unwrap();
    std::fs::write(
        dir.join("bes2600.c"),
        format!("#include <linux/module.h>\nstatic int __init m_init(void) {{ return 0; }}\nmodule_init(m_init);\nMODULE_LICENSE(\"GPL\");\nMODULE_VERSION(\"{version}\");\n"),
    )
    .unwrap();
    std::fs::write(dir.join("Kbuild"), "obj-m := bes2600.o\n").unwrap();
    std::fs::copy(repo().join("dkms/bench-slots.sh"), dir.join("bench-slots.sh")).unwrap();
    let template = std::fs::read_to_string(repo().join("dkms/dkms.conf.j2")).unwrap();
    let hooks: String = template
        .lines()
        .filter(|l| l.starts_with("PRE_INSTALL=") || l.starts_with("POST_INSTALL="))
        .map(|l| {
            l.replace("{{ dest_module_location }}", "/updates/dkms")
                .replace("{{ module }}", "bes2600")
                .replace("{{ variant }}", variant)
                .replace("{{ version }}", version)
                + "\n"
        })
        .collect();
    assert_eq!(hooks.lines().count(), 2, "{template}");
    std::fs::write(
        dir.join("dkms.conf"),
        format!("PACKAGE_NAME=\"bes2600\"\nPACKAGE_VERSION=\"{version}\"\nBUILT_MODULE_NAME[0]=\"bes2600\"\nDEST_MODULE_LOCATION[0]=\"/updates/dkms\"\nMAKE[0]=\"make -C ${{kernel_source_dir}} M=${{dkms_tree}}/bes2600/{version}/build modules\"\n{hooks}"),
    )
    .unwrap();
}
