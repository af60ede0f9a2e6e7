//! `bench build`, `verify`, `identify`, `sign-module` and `variants` as a user runs them, in
//! a temporary copy of the workspace (its own git history, HOME, dist/ and .bench/), checked
//! with Debian's real dkms, ssh-keygen, sign-file and modinfo.

mod common;
use common::{copy_tree, repo, sh, Ws};
use std::path::{Path, PathBuf};
use std::process::Command;

fn all_bytes(dir: &Path) -> Vec<(String, Vec<u8>)> {
    let mut v: Vec<(String, Vec<u8>)> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap())
        .filter(|e| e.file_type().unwrap().is_file())
        .map(|e| (e.file_name().to_string_lossy().into_owned(), std::fs::read(e.path()).unwrap()))
        .collect();
    v.sort();
    v
}

#[test]
fn build_writes_a_signed_package_that_dkms_and_ssh_keygen_accept() {
    let ws = Ws::new();
    let (code, out, err) = ws.bench(&["build", "--variant", "c-v2"]);
    assert_eq!(code, 0, "{err}");
    assert!(err.contains("generated a workspace signing key at"), "{err}");
    let pkg = ws.package();
    let name = pkg.file_name().unwrap().to_str().unwrap().to_string();
    assert!(name.starts_with("bes2600-0.1.0+c-v2."), "{name}");
    assert!(out.contains(&format!("c-v2: {}", pkg.display())), "{out}");
    assert!(out.contains("srcversion  "), "{out}");
    assert!(out.contains("signed by   SHA256:"), "{out}");
    let manifest: serde_json::Value =
        serde_json::from_slice(&std::fs::read(pkg.join("MANIFEST.json")).unwrap()).unwrap();
    let srcversion = manifest["predicted_srcversion"].as_str().unwrap().to_string();
    assert_eq!(srcversion.len(), 23);
    assert!(name.contains(&srcversion[..8]));
    assert_eq!(manifest["features"], serde_json::json!(["patch-b", "c-prep-atomic", "c-prep-pending", "c-direct-rx"]));
    assert_eq!(manifest["git_dirty"], false);
    assert_eq!(manifest["time"], "2026-05-07T17:50:37Z");
    for f in ["dkms.conf", "Kbuild", "Makefile", "bench-slots.sh", "RATIONALE.md", "bes2600.rs", "bh.rs", "SIGNER.pub"]
    {
        assert!(pkg.join(f).is_file(), "{f} missing");
    }
    let conf = std::fs::read_to_string(pkg.join("dkms.conf")).unwrap();
    assert!(conf.contains("BUILD_EXCLUSIVE_CONFIG=\"CONFIG_RUST\""));
    assert!(conf.contains(&format!("PACKAGE_VERSION=\"{}\"", &name["bes2600-".len()..])));

    // Same bytes on a rebuild with no change.
    let before = all_bytes(&pkg);
    let tarball = pkg.with_file_name(format!("{name}.dkms.tar.gz"));
    let tar_before = std::fs::read(&tarball).unwrap();
    let (code, out, _) = ws.bench(&["build", "--variant", "c-v2"]);
    assert_eq!(code, 0);
    assert!(out.contains("(unchanged)"), "{out}");
    assert_eq!(all_bytes(&pkg), before);
    assert_eq!(std::fs::read(&tarball).unwrap(), tar_before);

    // ssh-keygen accepts the signature.
    let signer = std::fs::read_to_string(pkg.join("SIGNER.pub")).unwrap();
    let allowed = ws.home.path().join("allowed");
    std::fs::write(&allowed, format!("bench {signer}")).unwrap();
    let verify = Command::new("ssh-keygen")
        .args(["-Y", "verify", "-f"])
        .arg(&allowed)
        .args(["-I", "bench", "-n", "bench-package", "-s"])
        .arg(pkg.join("MANIFEST.json.sig"))
        .stdin(std::fs::File::open(pkg.join("MANIFEST.json")).unwrap())
        .output()
        .unwrap();
    assert!(verify.status.success(), "{}", String::from_utf8_lossy(&verify.stderr));

    // Debian's dkms: ldtarball, build (77: headers without CONFIG_RUST), status; the
    // system's DKMS tree and MOK key are untouched (temporary trees and key paths).
    let t = tempfile::tempdir().unwrap();
    let (tree, src) = (t.path().join("tree"), t.path().join("src"));
    std::fs::create_dir_all(&tree).unwrap();
    std::fs::create_dir_all(&src).unwrap();
    let dkms = |args: &[&str]| {
        Command::new("dkms")
            .args(args)
            .arg("--dkmstree")
            .arg(&tree)
            .arg("--sourcetree")
            .arg(&src)
            .env("mok_signing_key", t.path().join("mok.key"))
            .env("mok_certificate", t.path().join("mok.pub"))
            .output()
            .unwrap()
    };
    let load = dkms(&["ldtarball", tarball.to_str().unwrap()]);
    assert!(load.status.success(), "ldtarball: {}", String::from_utf8_lossy(&load.stderr));
    let version = &name["bes2600-".len()..];
    let release = std::fs::read_dir("/usr/src")
        .unwrap()
        .filter_map(|e| e.ok())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| {
            n.starts_with("linux-headers-")
                && Path::new("/lib/modules").join(&n["linux-headers-".len()..]).join("build").exists()
        })
        .map(|n| n["linux-headers-".len()..].to_string())
        .next()
        .expect("Debian kernel headers installed");
    let build = dkms(&["build", "-m", "bes2600", "-v", version, "-k", &release]);
    assert_eq!(build.status.code(), Some(77), "dkms build: {}", String::from_utf8_lossy(&build.stderr));
    let status = dkms(&["status"]);
    assert!(String::from_utf8_lossy(&status.stdout).contains(&format!("bes2600/{version}: added")));

    // bench verify: passes, then names what differs.
    let (code, out, err) = ws.bench(&["verify", pkg.to_str().unwrap()]);
    assert_eq!(code, 0, "{err}");
    assert!(out.starts_with("verified: bes2600"), "{out}");
    let (code, _, _) = ws.bench(&["verify", tarball.to_str().unwrap()]);
    assert_eq!(code, 0);
    let tampered = t.path().join("tampered");
    copy_tree(&pkg, &tampered);
    let mut bh = std::fs::read(tampered.join("bh.rs")).unwrap();
    bh[100] ^= 1;
    std::fs::write(tampered.join("bh.rs"), bh).unwrap();
    let (code, _, err) = ws.bench(&["verify", tampered.to_str().unwrap()]);
    assert_eq!(code, 1);
    assert!(err.contains("bh.rs differs"), "{err}");
    copy_tree(&pkg, &tampered);
    let m = std::fs::read_to_string(tampered.join("MANIFEST.json")).unwrap().replace("\"c-v2\"", "\"c-v3\"");
    std::fs::write(tampered.join("MANIFEST.json"), m).unwrap();
    let (code, _, err) = ws.bench(&["verify", tampered.to_str().unwrap()]);
    assert_eq!(code, 1);
    assert!(err.contains("MANIFEST.json: the signature does not match"), "{err}");
    let other = t.path().join("other_ed25519");
    assert!(sh(t.path(), "ssh-keygen", &["-q", "-t", "ed25519", "-N", "", "-f", other.to_str().unwrap()])
        .status
        .success());
    let (code, _, err) = ws.bench(&["verify", pkg.to_str().unwrap(), "--key", &format!("{}.pub", other.display())]);
    assert_eq!(code, 1);
    assert!(err.contains("does not match key"), "{err}");

    // identify maps the srcversion prefix back to the builds.
    let (code, out, _) = ws.bench(&["identify", &srcversion[..8].to_lowercase()]);
    assert_eq!(code, 0);
    assert_eq!(out.lines().count(), 2, "two builds recorded: {out}");
    assert!(out.contains("variant c-v2"));
    let (code, _, err) = ws.bench(&["identify", "84239431"]);
    assert_eq!(code, 1);
    assert!(err.contains("no build with srcversion 84239431"), "{err}");

    // bench variants shows the last srcversion.
    let (_, out, _) = ws.bench(&["variants"]);
    assert!(out.contains(&srcversion), "{out}");
}

#[test]
fn build_all_gives_every_variant_its_own_srcversion() {
    let ws = Ws::new();
    let (code, _, err) = ws.bench(&["build", "--all", "--json"]);
    assert_eq!(code, 1, "c has contract violations: {err}");
    assert!(err.contains("the contract audit of `c` found"), "{err}");
    let (code, out, err) = ws.bench(&["build", "--all", "--allow-violations", "--json"]);
    assert_eq!(code, 0, "{err}");
    let list: serde_json::Value = serde_json::from_str(&out).unwrap();
    let variants = std::fs::read_dir(ws.root.join("variants"))
        .unwrap()
        .filter(|e| e.as_ref().unwrap().path().extension().is_some_and(|x| x == "toml"))
        .count();
    let mut srcv: Vec<&str> = list.as_array().unwrap().iter().map(|b| b["srcversion"].as_str().unwrap()).collect();
    assert_eq!(srcv.len(), variants);
    srcv.sort();
    srcv.dedup();
    assert_eq!(srcv.len(), variants, "every variant has its own srcversion");
}

#[test]
fn own_key_and_refusals_leave_nothing_half_written() {
    let ws = Ws::new();
    let key = ws.home.path().join("id_ed25519");
    assert!(sh(ws.home.path(), "ssh-keygen", &["-q", "-t", "ed25519", "-N", "", "-f", key.to_str().unwrap()])
        .status
        .success());
    let (code, out, err) = ws.bench(&["build", "--variant", "b", "--key", key.to_str().unwrap()]);
    assert_eq!(code, 0, "{err}");
    assert!(!err.contains("generated"), "no workspace key with --key");
    let fp = sh(ws.home.path(), "ssh-keygen", &["-l", "-f", key.to_str().unwrap()]);
    let fp = String::from_utf8(fp.stdout).unwrap();
    assert!(out.contains(fp.split_whitespace().nth(1).unwrap()), "{out} vs {fp}");

    // A different package of the same version in the way: refused, untouched.
    let pkg = ws.package();
    std::fs::write(pkg.join("RATIONALE.md"), "someone else's\n").unwrap();
    let before = all_bytes(&pkg);
    let (code, _, err) = ws.bench(&["build", "--variant", "b", "--key", key.to_str().unwrap()]);
    assert_eq!(code, 2);
    assert!(err.contains("already holds a different package"), "{err}");
    assert_eq!(all_bytes(&pkg), before);

    // An output directory that cannot be written: an error, no temporary left behind.
    let blocker = ws.root.join("blocked");
    std::fs::write(&blocker, "a file, not a directory").unwrap();
    let (code, _, err) = ws.bench(&["build", "--variant", "c-prep", "--out", "blocked/dist"]);
    assert_eq!(code, 3, "{err}");
    assert!(err.contains("cannot write"), "{err}");
}

#[test]
fn a_variant_with_violations_builds_only_when_asked_and_says_so() {
    let ws = Ws::new();
    let (code, _, err) = ws.bench(&["build", "--variant", "c"]);
    assert_eq!(code, 1);
    assert!(err.contains("hw_bufs_used") && err.contains("--allow-violations"), "{err}");
    assert!(
        !ws.root.join("dist").exists() || std::fs::read_dir(ws.root.join("dist")).unwrap().next().is_none(),
        "nothing written"
    );
    let (code, _, err) = ws.bench(&["build", "--variant", "c", "--allow-violations"]);
    assert_eq!(code, 0, "{err}");
    assert!(err.contains("built with 9 contract violation(s)"), "{err}");
    let pkg = ws.package();
    let manifest: serde_json::Value =
        serde_json::from_slice(&std::fs::read(pkg.join("MANIFEST.json")).unwrap()).unwrap();
    assert_eq!(manifest["audit"]["clean"], false);
    assert!(manifest["audit"]["violations"]
        .as_array()
        .unwrap()
        .iter()
        .any(|v| v.as_str().unwrap().starts_with("Bes2600.hw_bufs_used shared-plain-rmw")));
    let rationale = std::fs::read_to_string(pkg.join("RATIONALE.md")).unwrap();
    assert!(rationale.contains("FAIL: built anyway with --allow-violations"));
    let audit_md = std::fs::read_to_string(pkg.join("AUDIT.md")).unwrap();
    assert!(
        audit_md.contains("**FAIL**")
            && audit_md.contains("Bes2600::sdio_rx_work at driver/src/sdio.rs:")
            && audit_md.contains("-> Bes2600::handle_rx_skb at driver/src/bh.rs:"),
        "{audit_md}"
    );
    let audit_json: serde_json::Value =
        serde_json::from_slice(&std::fs::read(pkg.join("audit.json")).unwrap()).unwrap();
    assert_eq!(audit_json["clean"], false);
    let (code, _, _) = ws.bench(&["verify", pkg.to_str().unwrap()]);
    assert_eq!(code, 0, "the forensics package is still a valid package");
}

fn with_variant_file(ws: &Ws, name: &str, text: &str) -> (i32, String) {
    std::fs::write(ws.root.join("variants").join(name), text).unwrap();
    let (code, _, err) = ws.bench(&["variants"]);
    std::fs::remove_file(ws.root.join("variants").join(name)).unwrap();
    (code, err)
}

#[test]
fn bad_variants_are_clear_errors() {
    let ws = Ws::new();
    let (code, _, err) = ws.bench(&["build", "--variant", "c-v3"]);
    assert_eq!(code, 2);
    assert!(err.contains("unknown variant `c-v3`") && err.contains("did you mean `c-v2`?"), "{err}");
    let base = "status = \"proposed\"\n[rationale]\ntext = \"t\"\n";
    let cases = [
        ("x.toml", format!("name = \"x\"\nparent = \"b\"\nfeatures = [\"patch-b\", \"patch-q\"]\n{base}"), "unknown feature `patch-q`"),
        ("x.toml", format!("name = \"x\"\nparent = \"y\"\nfeatures = []\n{base}"), "parent `y` does not exist"),
        ("x.toml", format!("name = \"x\"\nparent = \"b\"\nfeatures = []\n{base}"), "drops the parent's feature `patch-b` without saying why"),
        ("x.toml", format!("name = \"x\"\nfeatures = []\nstatus = \"proposed\"\n[rationale]\ntext = \"t\"\nnotes = [\"notes/nope.md\"]\n"), "rationale note `notes/nope.md` does not exist"),
        ("x.toml", "name = \"x\"\nfeatures = [\n".to_string(), "x.toml:3:1"),
    ];
    for (file, text, needle) in cases {
        let (code, err) = with_variant_file(&ws, file, &text);
        assert_eq!(code, 2, "{needle}: {err}");
        assert!(err.contains(needle), "wanted `{needle}` in: {err}");
    }
    std::fs::write(ws.root.join("variants/x.toml"), format!("name = \"x\"\nparent = \"z\"\nfeatures = []\n{base}"))
        .unwrap();
    let (code, err) = with_variant_file(&ws, "z.toml", &format!("name = \"z\"\nparent = \"x\"\nfeatures = []\n{base}"));
    assert_eq!(code, 2);
    assert!(err.contains("parent cycle: "), "{err}");
}

#[test]
fn sign_module_is_byte_identical_to_sign_file() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    std::fs::write(
        d.join("m.c"),
        "#include <linux/module.h>\nstatic int __init m_init(void) { return 0; }\nmodule_init(m_init);\nMODULE_LICENSE(\"GPL\");\n",
    )
    .unwrap();
    std::fs::write(d.join("Kbuild"), "obj-m := m.o\n").unwrap();
    let headers = std::fs::read_dir("/usr/src")
        .unwrap()
        .filter_map(|e| e.ok().map(|e| e.path()))
        .find(|p| p.join("Module.symvers").is_file())
        .expect("Debian kernel headers");
    let make = Command::new("make")
        .arg("-s")
        .arg("-C")
        .arg(&headers)
        .arg(format!("M={}", d.display()))
        .arg("modules")
        .output()
        .unwrap();
    assert!(make.status.success(), "{}", String::from_utf8_lossy(&make.stderr));
    let openssl = sh(
        d,
        "openssl",
        &[
            "req",
            "-new",
            "-x509",
            "-nodes",
            "-days",
            "30",
            "-subj",
            "/CN=bench test/O=bench",
            "-newkey",
            "rsa:2048",
            "-keyout",
            "key.pem",
            "-out",
            "cert.pem",
        ],
    );
    assert!(openssl.status.success());
    let sign_file = headers.join("scripts/sign-file");
    let sign_file = if sign_file.is_file() {
        sign_file
    } else {
        std::fs::read_dir("/usr/lib")
            .unwrap()
            .filter_map(|e| e.ok().map(|e| e.path().join("scripts/sign-file")))
            .find(|p| p.is_file())
            .expect("sign-file")
    };
    let theirs = Command::new(&sign_file)
        .current_dir(d)
        .args(["sha256", "key.pem", "cert.pem", "m.ko", "theirs.ko"])
        .output()
        .unwrap();
    assert!(theirs.status.success(), "{}", String::from_utf8_lossy(&theirs.stderr));
    let out = common::bench_command(d, d)
        .args(["sign-module", "m.ko", "--key", "key.pem", "--cert", "cert.pem", "--out", "ours.ko"])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(
        std::fs::read(d.join("ours.ko")).unwrap() == std::fs::read(d.join("theirs.ko")).unwrap(),
        "not byte-identical"
    );
    let info = String::from_utf8(sh(d, "modinfo", &["ours.ko"]).stdout).unwrap();
    assert!(info.contains("signer:         bench test"), "{info}");
    assert!(info.contains("sig_key:"));
    assert!(info.contains("sig_hashalgo:   sha256"));
    // Signing twice is refused.
    let again = common::bench_command(d, d)
        .args(["sign-module", "ours.ko", "--key", "key.pem", "--cert", "cert.pem"])
        .output()
        .unwrap();
    assert_eq!(again.status.code(), Some(2));

    // The kernel's combined key + certificate file (certs/signing_key.pem), given once.
    let combined = [std::fs::read(d.join("key.pem")).unwrap(), std::fs::read(d.join("cert.pem")).unwrap()].concat();
    std::fs::write(d.join("signing_key.pem"), combined).unwrap();
    let bench_sign = |args: &[&str], pin: Option<&str>| {
        let mut c = common::bench_command(d, d);
        c.arg("sign-module").args(args);
        if let Some(p) = pin {
            c.env("KBUILD_SIGN_PIN", p);
        }
        c.output().unwrap()
    };
    let out = bench_sign(&["m.ko", "--key", "signing_key.pem", "--out", "combined.ko"], None);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert_eq!(std::fs::read(d.join("combined.ko")).unwrap(), std::fs::read(d.join("theirs.ko")).unwrap());

    // An encrypted PKCS#8 key with its passphrase in KBUILD_SIGN_PIN, as sign-file reads it.
    let enc = sh(
        d,
        "openssl",
        &["pkcs8", "-topk8", "-v2", "aes-256-cbc", "-in", "key.pem", "-out", "enc.pem", "-passout", "pass:s3cret"],
    );
    assert!(enc.status.success(), "{}", String::from_utf8_lossy(&enc.stderr));
    let theirs_enc = Command::new(&sign_file)
        .current_dir(d)
        .env("KBUILD_SIGN_PIN", "s3cret")
        .args(["sha256", "enc.pem", "cert.pem", "m.ko", "theirs-enc.ko"])
        .output()
        .unwrap();
    assert!(theirs_enc.status.success(), "{}", String::from_utf8_lossy(&theirs_enc.stderr));
    let out = bench_sign(&["m.ko", "--key", "enc.pem", "--cert", "cert.pem", "--out", "enc.ko"], Some("s3cret"));
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert_eq!(std::fs::read(d.join("enc.ko")).unwrap(), std::fs::read(d.join("theirs-enc.ko")).unwrap());
    for (args, pin, needle) in [
        (vec!["m.ko", "--key", "enc.pem", "--cert", "cert.pem", "--out", "x.ko"], None, "KBUILD_SIGN_PIN is not set"),
        (vec!["m.ko", "--key", "enc.pem", "--cert", "cert.pem", "--out", "x.ko"], Some("wrong"), "cannot decrypt"),
        (vec!["m.ko", "--key", "key.pem", "--out", "x.ko"], None, "no certificate"),
    ] {
        let out = bench_sign(&args, pin);
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{needle}: {err}");
        assert!(err.contains(needle), "{needle}: {err}");
    }
    // A key that is not the certificate's: refused (a kernel would refuse the module).
    let other = sh(d, "openssl", &["genrsa", "-out", "other.pem", "2048"]);
    assert!(other.status.success());
    let out = bench_sign(&["m.ko", "--key", "other.pem", "--cert", "cert.pem", "--out", "x.ko"], None);
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(err.contains("the private key does not match the certificate"), "{err}");
    assert!(!d.join("x.ko").exists(), "nothing written");
}

#[test]
fn install_hook_keeps_the_replaced_module_in_the_rollback_slot() {
    let root = tempfile::tempdir().unwrap();
    let moddir = root.path().join("lib/modules/6.1.0-test/updates/dkms");
    std::fs::create_dir_all(&moddir).unwrap();
    std::fs::write(moddir.join("bes2600.ko"), b"old module bytes").unwrap();
    let hook = repo().join("dkms/bench-slots.sh");
    let run = |phase: &str| {
        Command::new("sh")
            .arg(&hook)
            .args([phase, "6.1.0-test", "/updates/dkms", "bes2600"])
            .env("BENCH_SLOT_ROOT", root.path())
            .output()
            .unwrap()
    };
    assert!(run("pre").status.success());
    let state = root.path().join("var/lib/bench/bes2600/6.1.0-test");
    let slot = state.join("slots");
    assert_eq!(std::fs::read(slot.join("rollback/bes2600.ko")).unwrap(), b"old module bytes");
    let meta = std::fs::read_to_string(slot.join("rollback/meta")).unwrap();
    assert!(meta.contains("arrived=found\n"), "a module bench did not install is kept as found: {meta}");
    assert!(state.join("lock").is_dir() && state.join("journal").is_file(), "held from pre to post");
    let sha = {
        use std::fmt::Write;
        let out = sh(root.path(), "sha256sum", &[moddir.join("bes2600.ko").to_str().unwrap()]);
        let mut s = String::new();
        write!(s, "{}", String::from_utf8(out.stdout).unwrap().split_whitespace().next().unwrap()).unwrap();
        s
    };
    assert!(meta.contains(&format!("sha256={sha}")), "{meta}");
    std::fs::write(moddir.join("bes2600.ko"), b"new module bytes").unwrap();
    assert!(run("post").status.success());
    assert_eq!(std::fs::read(slot.join("active/bes2600.ko")).unwrap(), b"new module bytes");
    assert_eq!(std::fs::read(slot.join("rollback/bes2600.ko")).unwrap(), b"old module bytes", "rollback kept");
    let leftovers: Vec<_> = std::fs::read_dir(slot.join("rollback")).unwrap().map(|e| e.unwrap().file_name()).collect();
    assert_eq!(leftovers.len(), 2, "no temporary files left: {leftovers:?}");
    assert!(!state.join("lock").exists() && !state.join("journal").exists(), "released after post");
    assert!(std::fs::read_to_string(slot.join("active/meta")).unwrap().contains("arrived=dkms\n"));
    assert_eq!(run("sideways").status.code(), Some(2));
}

#[test]
fn a_dirty_tree_builds_its_own_version_and_an_unrelated_edit_just_works() {
    let ws = Ws::new();
    let version = |out: &str| -> String {
        let v: serde_json::Value = serde_json::from_str(out).unwrap();
        let dir = v[0]["package"].as_str().unwrap().to_string();
        let m: serde_json::Value =
            serde_json::from_slice(&std::fs::read(Path::new(&dir).join("MANIFEST.json")).unwrap()).unwrap();
        m["version"].as_str().unwrap().to_string()
    };
    let (code, out, err) = ws.bench(&["build", "--variant", "b", "--json"]);
    assert_eq!(code, 0, "{err}");
    let clean = version(&out);
    assert!(!clean.contains("dirty"), "{clean}");

    // A comment in bench.toml: the sources are the same, the tree is not.
    let toml = ws.root.join("bench.toml");
    let before = std::fs::read_to_string(&toml).unwrap_or_default();
    std::fs::write(&toml, format!("{before}# a comment nobody committed\n")).unwrap();
    let (code, out, err) = ws.bench(&["build", "--variant", "b", "--json"]);
    assert_eq!(code, 0, "a rebuild after an unrelated edit just works: {err}");
    let dirty = version(&out);
    assert!(dirty.starts_with(&clean) && dirty.contains(".dirty."), "{clean} -> {dirty}");
    let (code, out, err) = ws.bench(&["build", "--variant", "b", "--json"]);
    assert_eq!(code, 0, "{err}");
    assert_eq!(version(&out), dirty, "the same edit gives the same version");

    // A different edit: a different version again.
    std::fs::write(&toml, format!("{before}# another comment\n")).unwrap();
    let (code, out, err) = ws.bench(&["build", "--variant", "b", "--json"]);
    assert_eq!(code, 0, "{err}");
    let other = version(&out);
    assert!(other.contains(".dirty.") && other != dirty, "{dirty} vs {other}");
}

/// Every way to slip something into a package fails `verify`, in the directory and in the
/// tarball: the signed manifest names each file with its sha256 and mode, and nothing else
/// may be there.
#[test]
fn verify_refuses_every_tampering_class_in_directory_and_tarball() {
    use std::os::unix::fs::PermissionsExt;
    let ws = Ws::new();
    let (code, out, err) = ws.bench(&["build", "--variant", "b", "--json"]);
    assert_eq!(code, 0, "{err}");
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    let pkg = Path::new(v[0]["package"].as_str().unwrap()).to_path_buf();
    let tarball = Path::new(v[0]["tarball"].as_str().unwrap()).to_path_buf();
    let t = tempfile::tempdir().unwrap();
    let verify = |p: &Path| -> (i32, String) {
        let (code, _, err) = ws.bench(&["verify", p.to_str().unwrap()]);
        (code, err)
    };
    assert_eq!(verify(&pkg).0, 0);
    assert_eq!(verify(&tarball).0, 0);

    // The directory.
    type Tamper = Box<dyn Fn(&Path)>;
    let other = t.path().join("other_ed25519");
    assert!(sh(t.path(), "ssh-keygen", &["-q", "-t", "ed25519", "-N", "", "-f", other.to_str().unwrap()])
        .status
        .success());
    let other_pub = std::fs::read(format!("{}.pub", other.display())).unwrap();
    let cases: Vec<(&str, Tamper, &str)> = vec![
        (
            "hook not executable",
            Box::new(|d: &Path| {
                std::fs::set_permissions(d.join("bench-slots.sh"), std::fs::Permissions::from_mode(0o644)).unwrap()
            }),
            "bench-slots.sh has mode 0644, the manifest says 0755",
        ),
        (
            "setuid",
            Box::new(|d: &Path| {
                std::fs::set_permissions(d.join("bh.rs"), std::fs::Permissions::from_mode(0o4644)).unwrap()
            }),
            "bh.rs has mode 4644",
        ),
        (
            "symlink",
            Box::new(|d: &Path| std::os::unix::fs::symlink("/etc/passwd", d.join("evil.rs")).unwrap()),
            "evil.rs is a symbolic link",
        ),
        (
            "hard link",
            Box::new(|d: &Path| std::fs::hard_link(d.join("bh.rs"), d.join("bh2.rs")).unwrap()),
            "is hard-linked",
        ),
        ("subdirectory", Box::new(|d: &Path| std::fs::create_dir(d.join("extra")).unwrap()), "extra/ is a directory"),
        (
            "extra file",
            Box::new(|d: &Path| std::fs::write(d.join("evil.rs"), "x").unwrap()),
            "evil.rs is not in the manifest",
        ),
        (
            "shipped key swapped",
            Box::new(move |d: &Path| std::fs::write(d.join("SIGNER.pub"), &other_pub).unwrap()),
            "SIGNER.pub names key",
        ),
    ];
    for (what, tamper, needle) in &cases {
        let d = t.path().join(what.replace(' ', "-"));
        copy_tree(&pkg, &d);
        tamper(&d);
        let (code, err) = verify(&d);
        assert_eq!(code, 1, "{what}: {err}");
        assert!(err.contains(needle), "{what}: wanted `{needle}` in {err}");
    }

    // The tarball, rebuilt with GNU tar around one change each.
    let unpacked = t.path().join("unpacked");
    std::fs::create_dir_all(&unpacked).unwrap();
    assert!(sh(&unpacked, "tar", &["-xzf", tarball.to_str().unwrap()]).status.success());
    let repack = |name: &str, extra: &[&str], prepare: &dyn Fn(&Path)| -> PathBuf {
        let d = t.path().join(format!("tar-{name}"));
        copy_tree(&unpacked, &d);
        prepare(&d);
        let out = t.path().join(format!("{name}.dkms.tar.gz"));
        let mut args = vec!["-czf", out.to_str().unwrap(), "--owner=0", "--group=0"];
        args.extend(extra);
        args.extend(["dkms_main_tree", "dkms_source_tree"]);
        let r = sh(&d, "tar", &args);
        assert!(r.status.success(), "{}", String::from_utf8_lossy(&r.stderr));
        out
    };
    let same = repack("same", &[], &|_| {});
    assert_eq!(verify(&same).0, 0, "GNU tar's own packing of the same files verifies");
    for (name, extra, prepare, needle) in [
        (
            "prebuilt",
            vec![],
            Box::new(|d: &Path| {
                std::fs::create_dir_all(d.join("dkms_main_tree/6.1.0/x86_64/module")).unwrap();
                std::fs::write(d.join("dkms_main_tree/6.1.0/x86_64/module/bes2600.ko"), "ELF").unwrap();
            }) as Box<dyn Fn(&Path)>,
            "is a directory no package has",
        ),
        ("owner", vec!["--owner=1000"], Box::new(|_: &Path| {}), "owned by 1000:0"),
        (
            "symlink",
            vec![],
            Box::new(|d: &Path| std::os::unix::fs::symlink("/etc/shadow", d.join("dkms_source_tree/x.rs")).unwrap()),
            "dkms_source_tree/x.rs is a link",
        ),
        (
            "mode",
            vec![],
            Box::new(|d: &Path| {
                std::fs::set_permissions(
                    d.join("dkms_source_tree/bench-slots.sh"),
                    std::fs::Permissions::from_mode(0o4755),
                )
                .unwrap()
            }),
            "bench-slots.sh has mode 4755",
        ),
    ] {
        let p = repack(name, &extra, &*prepare);
        let (code, err) = verify(&p);
        assert_eq!(code, 1, "{name}: {err}");
        assert!(err.contains(needle), "{name}: wanted `{needle}` in {err}");
    }
    // A `..` entry, written by the tar crate (GNU tar strips it).
    let dotdot = t.path().join("dotdot.dkms.tar.gz");
    {
        let gz = flate2::write::GzEncoder::new(std::fs::File::create(&dotdot).unwrap(), flate2::Compression::default());
        let mut b = tar::Builder::new(gz);
        let mut h = tar::Header::new_gnu();
        h.set_size(1);
        h.set_mode(0o644);
        h.set_uid(0);
        h.set_gid(0);
        h.as_gnu_mut().unwrap().name[..14].copy_from_slice(b"../evil.rs\0\0\0\0");
        h.set_cksum();
        b.append(&h, &b"x"[..]).unwrap();
        b.into_inner().unwrap().finish().unwrap();
    }
    let (code, err) = verify(&dotdot);
    assert_eq!(code, 1, "{err}");
    assert!(err.contains("../evil.rs is outside dkms_source_tree/"), "{err}");
    // Not a package at all: bad input, named.
    let junk = t.path().join("junk.tar.gz");
    std::fs::write(&junk, "not gzip").unwrap();
    let (code, err) = verify(&junk);
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("is not a package"), "{err}");
}

/// Builds at once on a fresh workspace: one makes the key, the other waits for the
/// workspace lock; both succeed, each record has its own id.
#[test]
fn parallel_builds_on_a_fresh_workspace_both_succeed() {
    let ws = Ws::new();
    let spawn = |v: &str| {
        common::bench_command(&ws.root, ws.home.path())
            .args(["build", "--variant", v, "--json"])
            .env("BENCH_STATE_DIR", ws.root.join(".bench"))
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap()
    };
    let children: Vec<_> = ["b", "c-prep", "c-v2"].iter().map(|v| spawn(v)).collect();
    for c in children {
        let out = c.wait_with_output().unwrap();
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    }
    let ledger = std::fs::read_to_string(ws.root.join(".bench/builds.jsonl")).unwrap();
    let mut ids: Vec<u64> =
        ledger.lines().map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap()["id"].as_u64().unwrap()).collect();
    ids.sort_unstable();
    assert_eq!(ids, [1, 2, 3]);
    let (code, _, err) = ws.bench(&["build", "--all", "--allow-violations"]);
    assert_eq!(code, 0, "{err}");
}

/// The package's own DKMS hook under the real `dkms install`, in temporary trees: a small
/// C module packaged with the hook, version 1 then version 2; the slots hold both with
/// the srcversions modinfo reads (the hook once recorded an empty one: modinfo refused
/// its temporary file's name).
#[test]
fn the_install_hook_records_srcversions_under_real_dkms() {
    let headers = std::fs::read_dir("/usr/src")
        .unwrap()
        .filter_map(|e| e.ok().map(|e| e.path()))
        .find(|p| p.join("Module.symvers").is_file())
        .expect("Debian kernel headers in /usr/src");
    let kver = headers.file_name().unwrap().to_string_lossy().trim_start_matches("linux-headers-").to_string();
    let t = tempfile::tempdir().unwrap();
    let (src, tree, root) = (t.path().join("src"), t.path().join("tree"), t.path().join("root"));
    std::fs::create_dir_all(root.join("lib/modules").join(&kver)).unwrap();
    std::fs::create_dir_all(&tree).unwrap();
    let dkms = |args: &[&str]| {
        Command::new("dkms")
            .args(["--dkmstree", tree.to_str().unwrap(), "--sourcetree", src.to_str().unwrap()])
            .args(["--installtree", root.join("lib/modules").to_str().unwrap()])
            .args(args)
            .env("BENCH_SLOT_ROOT", &root)
            .output()
            .unwrap()
    };
    let mut srcversions = Vec::new();
    for version in ["1.0", "2.0"] {
        common::c_module_dkms_source(&src.join(format!("bes2600-{version}")), "c-v2", version);
        let out = dkms(&[
            "install",
            "-m",
            "bes2600",
            "-v",
            version,
            "-k",
            &kver,
            "--kernelsourcedir",
            headers.to_str().unwrap(),
        ]);
        assert!(
            out.status.success(),
            "dkms install {version}: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        let installed = root.join("lib/modules").join(&kver).join("updates/dkms/bes2600.ko");
        let s = String::from_utf8(sh(t.path(), "modinfo", &["-F", "srcversion", installed.to_str().unwrap()]).stdout)
            .unwrap();
        srcversions.push(s.trim().to_string());
    }
    assert_ne!(srcversions[0], srcversions[1]);
    let slots = root.join("var/lib/bench/bes2600").join(&kver).join("slots");
    let meta = |slot: &str| std::fs::read_to_string(slots.join(slot).join("meta")).unwrap();
    assert!(meta("active").contains(&format!("srcversion={}\n", srcversions[1])), "{}", meta("active"));
    assert!(
        meta("rollback").contains(&format!("srcversion={}\n", srcversions[0])),
        "v1 kept for rollback: {}",
        meta("rollback")
    );
}
