//! srcversion as modpost computes it (`scripts/mod/sumversion.c`), DESIGN.md section 6:
//! the kernel's MD4 over a tokenised stream of the module's sources, as uppercase hex
//! truncated to 23 digits. Files: `<mod>.mod` lists the objects; each object's `.o.cmd`
//! names its `source_` file and its `deps_`; which deps count depends on the kernel version
//! ([`DepsRule`]).

use crate::error::{BenchError, Result};
use std::path::{Path, PathBuf};

/// Which dependency lines of a `.o.cmd` modpost hashes, by kernel version. Used on real
/// module builds (tests against modinfo now; the kernel lab's builds next).
#[cfg_attr(not(test), allow(dead_code))]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DepsRule {
    /// Up to about 5.7, and from 6.8-rc5 (backported to 6.1.79 and 5.10.y): deps in the
    /// object's own directory (not subdirectories, not kernel headers).
    SameDirectory,
    /// About 5.8 to 6.8-rc5: the dependency lines were mis-parsed; only `source_` files.
    SourceOnly,
}

#[cfg_attr(not(test), allow(dead_code))]
impl DepsRule {
    /// The rule for a kernel release such as `6.1.0-56-amd64` or `6.19.10`.
    pub fn for_release(release: &str) -> DepsRule {
        let nums: Vec<u32> = release
            .split(|c: char| !c.is_ascii_digit())
            .filter(|s| !s.is_empty())
            .take(3)
            .map(|s| s.parse().unwrap_or(0))
            .collect();
        let (major, minor, patch) =
            (nums.first().copied().unwrap_or(0), nums.get(1).copied().unwrap_or(0), nums.get(2).copied().unwrap_or(0));
        let v = (major, minor);
        if v < (5, 8) || v >= (6, 8) {
            return DepsRule::SameDirectory;
        }
        // Debian's 6.1.0-N releases carry 6.1.y stable updates well past 6.1.79.
        if v == (6, 1) && (patch >= 79 || release.contains("-amd64") || release.contains("-arm64")) {
            return DepsRule::SameDirectory;
        }
        if v == (5, 10) {
            return DepsRule::SameDirectory;
        }
        DepsRule::SourceOnly
    }
}

#[cfg_attr(not(test), allow(dead_code))]
/// The srcversion of the module whose `.mod` file is `mod_file`; relative paths in the
/// build files are taken from `base_dir` (the directory modpost ran in).
pub fn module_srcversion(mod_file: &Path, base_dir: &Path, rule: DepsRule) -> Result<String> {
    let read = |p: &Path| {
        std::fs::read(p).map_err(|e| {
            BenchError::env(format!("cannot read {} (srcversion input)", p.display())).cause(e.to_string())
        })
    };
    let abs = |p: &str| -> PathBuf {
        let p = Path::new(p);
        if p.is_absolute() {
            p.to_path_buf()
        } else {
            base_dir.join(p)
        }
    };
    let mod_text = String::from_utf8_lossy(&read(mod_file)?).into_owned();
    let mut stream = Vec::new();
    for object in mod_text.lines().map(str::trim).filter(|l| !l.is_empty() && !l.ends_with(".a")) {
        let obj_path = abs(object);
        let dir = obj_path.parent().unwrap_or(Path::new("")).to_path_buf();
        let name = obj_path.file_name().and_then(|n| n.to_str()).unwrap_or("");
        let cmd_path = dir.join(format!(".{name}.cmd"));
        let cmd_text = String::from_utf8_lossy(&read(&cmd_path)?).into_owned();
        // The object's directory as written in the build files (modpost compares text).
        let obj_dir_text = match object.rfind('/') {
            Some(i) => &object[..i],
            None => "",
        };
        let mut in_deps = false;
        for line in cmd_text.lines() {
            if let Some(rest) = line.strip_prefix("source_") {
                let file = rest.rsplit(' ').next().unwrap_or("").trim();
                tokenize(&read(&abs(file))?, &mut stream);
                continue;
            }
            if line.starts_with("deps_") {
                in_deps = true;
                continue;
            }
            if !in_deps {
                continue;
            }
            if !line.ends_with('\\') {
                break;
            }
            if rule == DepsRule::SourceOnly {
                continue;
            }
            let dep = line.trim_start().split_whitespace().next().unwrap_or("");
            // A dep without a slash (6.13+ records same-directory deps relative) is
            // dropped, as modpost drops it.
            let Some(slash) = dep.rfind('/') else { continue };
            if &dep[..slash] == obj_dir_text && !obj_dir_text.is_empty() {
                tokenize(&read(&abs(dep))?, &mut stream);
            }
        }
    }
    Ok(kernel_md4_hex(&stream))
}

/// Feeds the bytes of one source file to `out` the way modpost's `parse_file` does:
/// backslash-newline dropped, C whitespace dropped, `"` strings verbatim up to a `"` not
/// preceded by a backslash, `/* ... */` skipped (`/*/` is a whole comment), the rest kept
/// (`//` comments included).
pub fn tokenize(file: &[u8], out: &mut Vec<u8>) {
    let len = file.len();
    let mut i = 0;
    while i < len {
        let c = file[i];
        if c == b'\\' && i + 1 < len && file[i + 1] == b'\n' {
            i += 2;
            continue;
        }
        if matches!(c, b' ' | b'\t' | b'\n' | b'\x0b' | b'\x0c' | b'\r') {
            i += 1;
            continue;
        }
        if c == b'"' {
            out.push(c);
            let mut j = i + 1;
            while j < len {
                out.push(file[j]);
                if file[j] == b'"' && file[j - 1] != b'\\' {
                    break;
                }
                j += 1;
            }
            i = j + 1;
            continue;
        }
        if c == b'/' && i + 1 < len && file[i + 1] == b'*' {
            let mut j = i + 2;
            while j < len && !(file[j - 1] == b'*' && file[j] == b'/') {
                j += 1;
            }
            i = j + 1;
            continue;
        }
        out.push(c);
        i += 1;
    }
}

/// The kernel's MD4 as sumversion.c uses it, as uppercase hex of the digest truncated to
/// 23 digits. Equal to: pad as MD4 does, reverse the bytes of every 4-byte group of the
/// padded body, append the bit length little-endian, run standard MD4.
pub fn kernel_md4_hex(data: &[u8]) -> String {
    let mut body = data.to_vec();
    body.push(0x80);
    while body.len() % 64 != 56 {
        body.push(0);
    }
    for group in body.chunks_exact_mut(4) {
        group.reverse();
    }
    body.extend_from_slice(&((data.len() as u64).wrapping_mul(8)).to_le_bytes());
    let mut state: [u32; 4] = [0x6745_2301, 0xefcd_ab89, 0x98ba_dcfe, 0x1032_5476];
    for block in body.chunks_exact(64) {
        md4_compress(&mut state, block);
    }
    let mut hex = String::with_capacity(32);
    for word in state {
        for byte in word.to_le_bytes() {
            hex.push_str(&format!("{byte:02X}"));
        }
    }
    hex.truncate(23);
    hex
}

fn md4_compress(state: &mut [u32; 4], block: &[u8]) {
    let x: Vec<u32> = block.chunks_exact(4).map(|w| u32::from_le_bytes([w[0], w[1], w[2], w[3]])).collect();
    let [mut a, mut b, mut c, mut d] = *state;
    let f = |x: u32, y: u32, z: u32| (x & y) | (!x & z);
    let g = |x: u32, y: u32, z: u32| (x & y) | (x & z) | (y & z);
    let h = |x: u32, y: u32, z: u32| x ^ y ^ z;
    for i in [0, 4, 8, 12] {
        a = a.wrapping_add(f(b, c, d)).wrapping_add(x[i]).rotate_left(3);
        d = d.wrapping_add(f(a, b, c)).wrapping_add(x[i + 1]).rotate_left(7);
        c = c.wrapping_add(f(d, a, b)).wrapping_add(x[i + 2]).rotate_left(11);
        b = b.wrapping_add(f(c, d, a)).wrapping_add(x[i + 3]).rotate_left(19);
    }
    const K2: u32 = 0x5a82_7999;
    for i in 0..4 {
        a = a.wrapping_add(g(b, c, d)).wrapping_add(x[i]).wrapping_add(K2).rotate_left(3);
        d = d.wrapping_add(g(a, b, c)).wrapping_add(x[i + 4]).wrapping_add(K2).rotate_left(5);
        c = c.wrapping_add(g(d, a, b)).wrapping_add(x[i + 8]).wrapping_add(K2).rotate_left(9);
        b = b.wrapping_add(g(c, d, a)).wrapping_add(x[i + 12]).wrapping_add(K2).rotate_left(13);
    }
    const K3: u32 = 0x6ed9_eba1;
    for i in [0, 2, 1, 3] {
        a = a.wrapping_add(h(b, c, d)).wrapping_add(x[i]).wrapping_add(K3).rotate_left(3);
        d = d.wrapping_add(h(a, b, c)).wrapping_add(x[i + 8]).wrapping_add(K3).rotate_left(9);
        c = c.wrapping_add(h(d, a, b)).wrapping_add(x[i + 4]).wrapping_add(K3).rotate_left(11);
        b = b.wrapping_add(h(c, d, a)).wrapping_add(x[i + 12]).wrapping_add(K3).rotate_left(15);
    }
    state[0] = state[0].wrapping_add(a);
    state[1] = state[1].wrapping_add(b);
    state[2] = state[2].wrapping_add(c);
    state[3] = state[3].wrapping_add(d);
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Debian's installed kernel headers (linux-headers-amd64), which the README's test
    /// command installs.
    fn headers() -> (PathBuf, String) {
        let mut found: Vec<PathBuf> = std::fs::read_dir("/usr/src")
            .expect("/usr/src")
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| p.join("Module.symvers").is_file())
            .collect();
        found.sort();
        let dir = found.pop().expect("no kernel headers in /usr/src: apt-get install linux-headers-amd64");
        let release = dir.file_name().unwrap().to_str().unwrap().trim_start_matches("linux-headers-").to_string();
        (dir, release)
    }

    fn build_fixture(files: &[(&str, &str)], kbuild: &str) -> tempfile::TempDir {
        let dir = tempfile::tempdir().unwrap();
        for (name, text) in files {
            let p = dir.path().join(name);
            std::fs::create_dir_all(p.parent().unwrap()).unwrap();
            std::fs::write(p, text).unwrap();
        }
        std::fs::write(dir.path().join("Kbuild"), kbuild).unwrap();
        let (kdir, _) = headers();
        let out = std::process::Command::new("make")
            .arg("-s")
            .arg("-C")
            .arg(&kdir)
            .arg(format!("M={}", dir.path().display()))
            .arg("modules")
            .output()
            .unwrap();
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        dir
    }

    fn modinfo_srcversion(ko: &Path) -> String {
        let out = std::process::Command::new("modinfo").args(["-F", "srcversion"]).arg(ko).output().unwrap();
        assert!(out.status.success());
        String::from_utf8(out.stdout).unwrap().trim().to_string()
    }

    #[test]
    fn prediction_equals_modinfo_for_c_fixture_modules() {
        let (_, release) = headers();
        let rule = DepsRule::for_release(&release);
        let main = "#include <linux/module.h>\n#include \"local.h\"\n#include \"sub/deep.h\"\n\
            static int __init fx_init(void) { return LOCAL + DEEP; }\nstatic void __exit fx_exit(void) { }\n\
            module_init(fx_init);\nmodule_exit(fx_exit);\nMODULE_LICENSE(\"GPL\");\nMODULE_VERSION(\"1.0\"); /* c */\n";
        let helper = "#include <linux/kernel.h>\n#include \"local.h\"\nint fx_helper(void) { return LOCAL; } // kept\n";
        let one = build_fixture(
            &[("main.c", main), ("local.h", "#define LOCAL 0\n"), ("sub/deep.h", "#define DEEP 0\n")],
            "obj-m := fx.o\nfx-y := main.o\n",
        );
        let two = build_fixture(
            &[
                ("main.c", main),
                ("helper.c", helper),
                ("local.h", "#define LOCAL 0 /* x */\n"),
                ("sub/deep.h", "#define DEEP 0\n"),
            ],
            "obj-m := fx.o\nfx-y := main.o helper.o\n",
        );
        for dir in [&one, &two] {
            let predicted = module_srcversion(&dir.path().join("fx.mod"), dir.path(), rule).unwrap();
            assert_eq!(predicted, modinfo_srcversion(&dir.path().join("fx.ko")), "{release} {rule:?}");
        }
        // What each file contributes: a same-directory header counts, a subdirectory one
        // does not (under the rule of this kernel).
        let mut local_changed = one.path().to_path_buf();
        std::fs::write(local_changed.join("local.h"), "#define LOCAL 1\n").unwrap();
        let a = module_srcversion(&local_changed.join("fx.mod"), &local_changed, rule).unwrap();
        local_changed = two.path().to_path_buf();
        std::fs::write(local_changed.join("sub/deep.h"), "#define DEEP 1\n").unwrap();
        let b = module_srcversion(&local_changed.join("fx.mod"), &local_changed, rule).unwrap();
        assert_eq!(b, modinfo_srcversion(&two.path().join("fx.ko")), "subdirectory headers are not hashed");
        if rule == DepsRule::SameDirectory {
            assert_ne!(a, modinfo_srcversion(&one.path().join("fx.ko")), "same-directory headers are hashed");
        }
    }

    /// An external Rust module as a 7.2 kernel builds it with `M=`: `.mod` names `./rmod.o`,
    /// the `.o.cmd` names the crate root and a sibling module relative. The expected value
    /// is what `modinfo -F srcversion` printed for this crate root on a 7.2 kernel built
    /// from Debian's linux-source-7.2 (CONFIG_MODULE_SRCVERSION_ALL); editing the sibling
    /// left it unchanged there too.
    #[test]
    fn rust_module_srcversion_hashes_the_crate_root_only() {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        std::fs::write(d.join("rmod.rs"), include_str!("../../tests/fixtures/srcversion/rmod.rs")).unwrap();
        std::fs::write(d.join("helper.rs"), "pub(crate) const VALUE: u32 = 1;\n").unwrap();
        std::fs::write(d.join("rmod.mod"), "./rmod.o\n").unwrap();
        std::fs::write(
            d.join(".rmod.o.cmd"),
            "savedcmd_rmod.o := rustc ... rmod.rs\n\nsource_rmod.o := rmod.rs\n\ndeps_rmod.o := \\\n  helper.rs \\\n  /build/linux/rust/libkernel.rmeta \\\n\nrmod.o: $(deps_rmod.o)\n",
        )
        .unwrap();
        let rule = DepsRule::for_release("7.2.0");
        let got = module_srcversion(&d.join("rmod.mod"), d, rule).unwrap();
        assert_eq!(got, "FD491213FEB6557C0303264");
        std::fs::write(d.join("helper.rs"), "pub(crate) const VALUE: u32 = 2;\n").unwrap();
        assert_eq!(module_srcversion(&d.join("rmod.mod"), d, rule).unwrap(), got, "a sibling module does not count");
    }

    #[test]
    fn deps_rule_follows_the_kernel_version() {
        assert_eq!(DepsRule::for_release("5.4.0"), DepsRule::SameDirectory);
        assert_eq!(DepsRule::for_release("5.15.0"), DepsRule::SourceOnly);
        assert_eq!(DepsRule::for_release("6.1.50"), DepsRule::SourceOnly);
        assert_eq!(DepsRule::for_release("6.1.79"), DepsRule::SameDirectory);
        assert_eq!(DepsRule::for_release("6.6.10"), DepsRule::SourceOnly);
        assert_eq!(DepsRule::for_release("6.19.10"), DepsRule::SameDirectory);
    }

    #[test]
    fn design_vectors_hold() {
        assert_eq!(kernel_md4_hex(b""), "533BB7E5866E52F63B9ACCB");
        assert_eq!(kernel_md4_hex(b"abc"), "C719445509BC140AF62F422");
    }

    #[test]
    fn md4_spans_several_blocks() {
        // 56 bytes force a second padding block; the result must differ from 55 bytes'.
        assert_ne!(kernel_md4_hex(&[b'a'; 55]), kernel_md4_hex(&[b'a'; 56]));
        assert_eq!(kernel_md4_hex(&[b'a'; 200]).len(), 23);
    }

    fn tok(s: &str) -> String {
        let mut out = Vec::new();
        tokenize(s.as_bytes(), &mut out);
        String::from_utf8(out).unwrap()
    }

    #[test]
    fn tokenizer_follows_modpost() {
        assert_eq!(tok("int  x =\t1;\n"), "intx=1;");
        assert_eq!(tok("a\\\nb"), "ab", "backslash-newline dropped");
        assert_eq!(tok("s = \"a b\\\" c\";"), "s=\"a b\\\" c\";", "strings verbatim");
        assert_eq!(tok("x /* gone */ y"), "xy");
        assert_eq!(tok("x /*/ y"), "xy", "`/*/` is a whole comment");
        assert_eq!(tok("x /*/ y */ z"), "xy*/z");
        assert_eq!(tok("x // kept\ny"), "x//kepty", "line comments are hashed");
    }
}
