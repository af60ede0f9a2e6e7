//! `bench stage`, `rollback` and `target status|recover` against a local root and over a
//! real sshd on 127.0.0.1, with real kernel modules built from C fixtures against Debian's
//! headers, depmod against the target root, and SIGKILL at every step.

mod common;
use common::{sh, Ws};
use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::{Child, Command};
use std::sync::OnceLock;

/// The release of Debian's kernel headers the test modules are built against (their
/// vermagic): the targets run it, so staging them is not a kernel mismatch.
fn kver() -> String {
    let headers = headers();
    let name = headers.file_name().unwrap().to_string_lossy().into_owned();
    name.strip_prefix("linux-headers-").unwrap_or(&name).to_string()
}

fn headers() -> PathBuf {
    std::fs::read_dir("/usr/src")
        .unwrap()
        .filter_map(|e| e.ok().map(|e| e.path()))
        .find(|p| p.join("Module.symvers").is_file())
        .expect("Debian kernel headers in /usr/src")
}

/// Three builds of a module named bes2600 (MODULE_VERSION a, b, c: three srcversions).
fn modules() -> &'static BTreeMap3 {
    static M: OnceLock<BTreeMap3> = OnceLock::new();
    M.get_or_init(|| {
        let dir = std::env::temp_dir().join(format!("bench-target-modules-{}", std::process::id()));
        let headers = headers();
        let mut out = Vec::new();
        for v in ["a", "b", "c"] {
            let d = dir.join(v);
            std::fs::create_dir_all(&d).unwrap();
            std::fs::write(
                d.join("bes2600.c"),
                format!("#include <linux/module.h>\nstatic int __init m_init(void) {{ return 0; }}\nmodule_init(m_init);\nMODULE_LICENSE(\"GPL\");\nMODULE_VERSION(\"{v}\");\n"),
            )
            .unwrap();
            std::fs::write(d.join("Kbuild"), "obj-m := bes2600.o\n").unwrap();
            let make = Command::new("make").arg("-s").arg("-C").arg(&headers).arg(format!("M={}", d.display())).arg("modules").output().unwrap();
            assert!(make.status.success(), "{}", String::from_utf8_lossy(&make.stderr));
            out.push(d.join("bes2600.ko"));
        }
        BTreeMap3(out)
    })
}

struct BTreeMap3(Vec<PathBuf>);

fn ko(v: &str) -> String {
    let i = ["a", "b", "c"].iter().position(|x| *x == v).unwrap();
    modules().0[i].display().to_string()
}

fn sha(p: &Path) -> String {
    let out = Command::new("sha256sum").arg(p).output().unwrap();
    String::from_utf8(out.stdout).unwrap().split_whitespace().next().unwrap_or("").to_string()
}

/// A real sshd on 127.0.0.1 with temporary host and user keys.
struct Sshd {
    child: Child,
    port: u16,
    dir: tempfile::TempDir,
}

impl Drop for Sshd {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn sshd() -> Sshd {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    for (name, t) in [("host_key", "ed25519"), ("user_key", "ed25519"), ("other_key", "ed25519")] {
        assert!(sh(d, "ssh-keygen", &["-q", "-t", t, "-N", "", "-f", d.join(name).to_str().unwrap()]).status.success());
    }
    std::fs::copy(d.join("user_key.pub"), d.join("authorized_keys")).unwrap();
    let port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    std::fs::create_dir_all("/run/sshd").unwrap();
    std::fs::write(
        d.join("sshd_config"),
        format!(
            "Port {port}\nListenAddress 127.0.0.1\nHostKey {h}\nAuthorizedKeysFile {a}\nPidFile {p}\nUsePAM no\nStrictModes no\nPermitRootLogin prohibit-password\nPasswordAuthentication no\nKbdInteractiveAuthentication no\n",
            h = d.join("host_key").display(),
            a = d.join("authorized_keys").display(),
            p = d.join("sshd.pid").display()
        ),
    )
    .unwrap();
    let child = Command::new("/usr/sbin/sshd")
        .args(["-D", "-e", "-f"])
        .arg(d.join("sshd_config"))
        .stderr(std::fs::File::create(d.join("sshd.log")).unwrap())
        .spawn()
        .unwrap();
    for _ in 0..100 {
        if std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    Sshd { child, port, dir }
}

struct Env {
    ws: Ws,
    root: PathBuf,
    _sshd: Option<Sshd>,
}

fn env(ssh: bool) -> Env {
    let ws = Ws::new();
    let root = ws.root.join("target-root");
    std::fs::create_dir_all(&root).unwrap();
    let mut conf =
        format!("module = \"bes2600\"\n\n[targets.lab]\nkernel = \"{}\"\nroot = \"{}\"\n", kver(), root.display());
    let server = if ssh {
        let s = sshd();
        conf += &format!(
            "transport = \"ssh\"\nhost = \"127.0.0.1\"\nuser = \"root\"\nport = {}\nidentity = \"{}\"\noptions = [\"UserKnownHostsFile={}\", \"StrictHostKeyChecking=accept-new\"]\n",
            s.port,
            s.dir.path().join("user_key").display(),
            s.dir.path().join("known_hosts").display()
        );
        Some(s)
    } else {
        conf += "transport = \"local\"\n";
        None
    };
    std::fs::write(ws.root.join("bench.toml"), conf).unwrap();
    Env { ws, root, _sshd: server }
}

impl Env {
    fn bench(&self, args: &[&str]) -> (i32, String, String) {
        self.ws.bench(args)
    }
    fn bench_env(&self, args: &[&str], key: &str, val: &str) -> i32 {
        common::bench_command(&self.ws.root, self.ws.home.path())
            .args(args)
            .env("BENCH_STATE_DIR", self.ws.root.join(".bench"))
            .env(key, val)
            .output()
            .unwrap()
            .status
            .code()
            .unwrap_or(-9)
    }
    fn stage(&self, v: &str) {
        let (code, _, err) = self.bench(&["stage", "--target", "lab", "--ko", &ko(v), "--variant", v]);
        assert_eq!(code, 0, "stage {v}: {err}");
    }
    fn state(&self) -> PathBuf {
        self.root.join("var/lib/bench/bes2600").join(kver())
    }
    fn slot_sha(&self, slot: &str) -> Option<String> {
        let d = self.state().join(slot);
        d.is_dir().then(|| sha(&d.join("bes2600.ko")))
    }
    /// Every slot holds a complete module matching its record; returns all modules kept.
    fn check_invariants(&self) -> BTreeSet<String> {
        let mut all = BTreeSet::new();
        let mut dirs = vec![self.state().join("slots/active"), self.state().join("slots/rollback")];
        if let Ok(rd) = std::fs::read_dir(self.state().join("forensics")) {
            dirs.extend(rd.map(|e| e.unwrap().path()));
        }
        for d in dirs.iter().filter(|d| d.is_dir()) {
            let meta =
                std::fs::read_to_string(d.join("meta")).unwrap_or_else(|_| panic!("{} has no meta", d.display()));
            let s = sha(&d.join("bes2600.ko"));
            assert!(meta.contains(&format!("sha256={s}")), "{}: module does not match its record", d.display());
            all.insert(s);
        }
        let installed = self.root.join(format!("lib/modules/{}/updates/dkms/bes2600.ko", kver()));
        assert_eq!(Some(sha(&installed)), self.slot_sha("slots/active"), "installed = active");
        assert!(
            !self.state().join("journal").exists() && !self.state().join("lock").exists(),
            "journal and lock cleared"
        );
        all
    }
}

fn seed_sequence(ssh: bool) {
    let e = env(ssh);
    let (code, out, err) = e.bench(&["stage", "--target", "lab", "--ko", &ko("b"), "--variant", "b"]);
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("there was no active module: nothing to roll back to yet"), "{out}");
    // The same module again: a no-op that says so; the slots are untouched.
    let before = e.check_invariants();
    let (code, out, err) = e.bench(&["stage", "--target", "lab", "--ko", &ko("b"), "--variant", "b"]);
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("is already the active module on lab") && out.contains("nothing changed"), "{out}");
    assert_eq!(e.check_invariants(), before);
    assert_eq!(e.slot_sha("slots/rollback"), None, "no rollback made of the same module");
    let (code, out, err) = e.bench(&["stage", "--target", "lab", "--ko", &ko("c"), "--variant", "c"]);
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("the previous module, b (srcversion "), "{out}");
    assert_eq!(e.slot_sha("slots/rollback"), Some(sha(Path::new(&ko("b")))), "b moved to rollback");
    let (code, out, err) = e.bench(&["rollback", "--target", "lab"]);
    assert_eq!(code, 0, "{err}");
    assert!(out.starts_with("rolled back lab: active is now b"), "{out}");
    let (code, out, _) = e.bench(&["target", "status", "lab"]);
    assert_eq!(code, 0);
    assert!(out.contains("active ") && out.contains(" b "), "{out}");
    assert!(out.contains("forensics/c-"), "c kept in forensics: {out}");
    assert!(out.contains("installed: the active slot's module"), "{out}");
    let all = e.check_invariants();
    assert!(all.contains(&sha(Path::new(&ko("b")))) && all.contains(&sha(Path::new(&ko("c")))));
    assert!(
        e.root.join(format!("lib/modules/{}/modules.dep", kver())).is_file(),
        "depmod -b ran against the target root"
    );
    // Dry runs change nothing.
    let before = e.check_invariants();
    let (code, out, _) = e.bench(&["stage", "--target", "lab", "--ko", &ko("a"), "--variant", "a", "--dry-run"]);
    assert_eq!(code, 0);
    assert!(out.starts_with("dry run: would stage"), "{out}");
    assert_eq!(e.check_invariants(), before);
}

#[test]
fn seed_sequence_on_a_local_root() {
    seed_sequence(false);
}

#[test]
fn seed_sequence_over_ssh() {
    seed_sequence(true);
}

const STAGE_POINTS: &[&str] = &[
    "lock",
    "journal-begin",
    "upload",
    "prepared",
    "rollback-displaced",
    "active-demoted",
    "promoted",
    "install",
    "depmod",
];
const ROLLBACK_POINTS: &[&str] = &["rollback-begin", "active-retired", "rollback-promoted", "install", "depmod"];

fn kill_at_every_step(ssh: bool) {
    let (a, b, c) = (sha(Path::new(&ko("a"))), sha(Path::new(&ko("b"))), sha(Path::new(&ko("c"))));
    for point in STAGE_POINTS {
        let e = env(ssh);
        e.stage("a");
        e.stage("b");
        let code =
            e.bench_env(&["stage", "--target", "lab", "--ko", &ko("c"), "--variant", "c"], "BENCH_FAULT_AFTER", point);
        assert_eq!(code, -9, "stage killed after {point}");
        let (code, out, err) = e.bench(&["target", "recover", "lab"]);
        assert_eq!(code, 0, "recover after {point}: {err}");
        let all = e.check_invariants();
        assert!(all.contains(&a) && all.contains(&b), "after {point}: a module was lost ({out})");
        let undone = ["lock", "journal-begin", "upload"].contains(point);
        let want_active = if undone { &b } else { &c };
        assert_eq!(e.slot_sha("slots/active").as_ref(), Some(want_active), "after {point}: {out}");
        assert_eq!(e.slot_sha("slots/rollback").as_ref(), Some(if undone { &a } else { &b }), "after {point}");
    }
    for point in ROLLBACK_POINTS {
        let e = env(ssh);
        e.stage("a");
        e.stage("b");
        e.stage("c");
        let code = e.bench_env(&["rollback", "--target", "lab"], "BENCH_FAULT_AFTER", point);
        assert_eq!(code, -9, "rollback killed after {point}");
        let (code, _, err) = e.bench(&["target", "recover", "lab"]);
        assert_eq!(code, 0, "recover after {point}: {err}");
        let all = e.check_invariants();
        assert!(all.contains(&a) && all.contains(&b) && all.contains(&c), "after rollback {point}: a module was lost");
        assert_eq!(e.slot_sha("slots/active"), Some(b.clone()), "after rollback {point}");
    }
}

#[test]
fn killed_at_every_step_then_recovered_on_a_local_root() {
    kill_at_every_step(false);
}

#[test]
fn killed_at_every_step_then_recovered_over_ssh() {
    kill_at_every_step(true);
}

#[test]
fn a_second_stage_is_refused_naming_the_holder() {
    let e = env(false);
    e.stage("a");
    assert_eq!(
        e.bench_env(&["stage", "--target", "lab", "--ko", &ko("b"), "--variant", "b"], "BENCH_FAULT_AFTER", "prepared"),
        -9
    );
    let (code, _, err) = e.bench(&["stage", "--target", "lab", "--ko", &ko("c"), "--variant", "c"]);
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("target `lab` is busy: pid ") && err.contains("bench stage --variant b"), "{err}");
    let (code, out, _) = e.bench(&["target", "status", "lab"]);
    assert_eq!(code, 0);
    assert!(out.contains("INTERRUPTED: stage at step prepared"), "{out}");
}

#[test]
fn bad_input_and_faults_change_nothing() {
    let e = env(false);
    e.stage("a");
    let before = e.check_invariants();
    let (code, _, err) = e.bench(&["stage", "--target", "lap", "--ko", &ko("b")]);
    assert_eq!(code, 2);
    assert!(err.contains("unknown target `lap`") && err.contains("did you mean `lab`?"), "{err}");
    // The copy arrives damaged: never activated.
    let code = e.bench_env(
        &["stage", "--target", "lab", "--ko", &ko("b"), "--variant", "b"],
        "BENCH_FAULT_CORRUPT_UPLOAD",
        "1",
    );
    assert_eq!(code, 3);
    assert_eq!(e.check_invariants(), before);
    assert!(!e.state().join("staging").exists());
    // A target without modinfo.
    let bin = e.ws.home.path().join("bin");
    std::fs::create_dir_all(&bin).unwrap();
    for tool in [
        "sh",
        "uname",
        "sha256sum",
        "sync",
        "cat",
        "mkdir",
        "rm",
        "mv",
        "cp",
        "depmod",
        "cut",
        "dirname",
        "basename",
        "ls",
    ] {
        if let Ok(p) = which(tool) {
            let _ = std::os::unix::fs::symlink(p, bin.join(tool));
        }
    }
    let out = common::bench_command(&e.ws.root, e.ws.home.path())
        .args(["stage", "--target", "lab", "--ko", &ko("b"), "--variant", "b"])
        .env("PATH", &bin)
        .env("BENCH_STATE_DIR", e.ws.root.join(".bench"))
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(3));
    assert!(String::from_utf8_lossy(&out.stderr).contains("target `lab` has no `modinfo`"));
    assert_eq!(e.check_invariants(), before);
}

fn which(tool: &str) -> Result<PathBuf, ()> {
    for d in ["/usr/bin", "/bin", "/usr/sbin", "/sbin"] {
        let p = Path::new(d).join(tool);
        if p.exists() {
            return Ok(p);
        }
    }
    Err(())
}

#[test]
fn a_full_target_disk_changes_nothing() {
    let e = env(false);
    let state = e.root.join("var/lib/bench");
    std::fs::create_dir_all(&state).unwrap();
    assert!(
        Command::new("mount").args(["-t", "tmpfs", "-o", "size=1m", "tmpfs"]).arg(&state).status().unwrap().success(),
        "mount a small tmpfs"
    );
    struct Unmount(PathBuf);
    impl Drop for Unmount {
        fn drop(&mut self) {
            let _ = Command::new("umount").arg(&self.0).status();
        }
    }
    let _u = Unmount(state.clone());
    e.stage("a");
    let before = e.check_invariants();
    // Fill the disk, then try to stage.
    let filler = state.join("filler");
    let _ =
        Command::new("dd").args(["if=/dev/zero", &format!("of={}", filler.display()), "bs=1k", "count=4096"]).output();
    let (code, _, err) = e.bench(&["stage", "--target", "lab", "--ko", &ko("b"), "--variant", "b"]);
    assert_eq!(code, 3, "{err}");
    assert!(err.contains("No space left") || err.contains("disk is full"), "{err}");
    std::fs::remove_file(&filler).unwrap();
    assert_eq!(e.check_invariants(), before);
}

#[test]
fn unreachable_host_and_failed_authentication_are_named() {
    let e = env(true);
    let conf = std::fs::read_to_string(e.ws.root.join("bench.toml")).unwrap();
    // A port where nothing listens.
    let dead = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let port_line = conf.lines().find(|l| l.starts_with("port = ")).unwrap().to_string();
    std::fs::write(e.ws.root.join("bench.toml"), conf.replace(&port_line, &format!("port = {dead}"))).unwrap();
    let (code, _, err) = e.bench(&["stage", "--target", "lab", "--ko", &ko("a"), "--variant", "a"]);
    assert_eq!(code, 3);
    assert!(err.contains("cannot reach target `lab` over ssh") && err.contains("unreachable"), "{err}");
    let key_line = conf.lines().find(|l| l.starts_with("identity = ")).unwrap().to_string();
    std::fs::write(e.ws.root.join("bench.toml"), conf.replace(&key_line, &key_line.replace("user_key", "other_key")))
        .unwrap();
    let (code, _, err) = e.bench(&["stage", "--target", "lab", "--ko", &ko("a"), "--variant", "a"]);
    assert_eq!(code, 3);
    assert!(err.contains("authentication failed"), "{err}");
    assert!(!e.root.join("var").exists(), "nothing written on the target");
}

#[test]
fn a_module_for_another_kernel_is_refused_unless_forced() {
    let e = env(false);
    let conf = std::fs::read_to_string(e.ws.root.join("bench.toml")).unwrap().replace(&kver(), "6.19.10");
    std::fs::write(e.ws.root.join("bench.toml"), conf).unwrap();
    let (code, out, err) = e.bench(&["stage", "--target", "lab", "--ko", &ko("b"), "--variant", "b"]);
    assert_eq!(code, 2, "{out}{err}");
    assert!(
        err.contains(&format!("the module was built for kernel {}, target `lab` runs 6.19.10", kver()))
            && err.contains("--force"),
        "{err}"
    );
    assert_eq!(e.slot_sha("slots/active"), None, "nothing staged");
    assert!(!e.state().join("staging").exists(), "no staging copy left behind");
    assert!(!e.state().join("journal").exists() && !e.state().join("lock").exists());
    let (code, out, err) = e.bench(&["stage", "--target", "lab", "--ko", &ko("b"), "--variant", "b", "--force"]);
    assert_eq!(code, 0, "{err}");
    assert!(out.starts_with("staged b on lab (kernel 6.19.10)"), "{out}");
    assert_eq!(e.bench(&["stage", "--target", "lab", "--ko", &ko("c"), "--variant", "c", "--force"]).0, 0);
    // --target alike on every target command, --json on each.
    let (code, out, err) = e.bench(&["rollback", "--target", "lab", "--json"]);
    assert_eq!(code, 0, "{err}");
    let j: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(j["active"]["variant"], "b", "{out}");
    let (code, out, err) = e.bench(&["target", "status", "--target", "lab", "--json"]);
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("\"slot\""), "{out}");
    let (code, _, err) = e.bench(&["target", "status", "lab", "--target", "lab"]);
    assert_eq!(code, 2, "one way to name it: {err}");
}

/// The board's own DKMS installing packages into the target root, with the package's
/// hook (`dkms/bench-slots.sh` and the hook lines of its dkms.conf template) filling the
/// slots bench stage keeps: a small C module named bes2600 per version, real `dkms` with
/// temporary trees.
struct Dkms {
    tree: PathBuf,
    src: PathBuf,
    _dir: tempfile::TempDir,
}

impl Dkms {
    fn new() -> Dkms {
        let dir = tempfile::tempdir().unwrap();
        let (tree, src) = (dir.path().join("tree"), dir.path().join("src"));
        std::fs::create_dir_all(&tree).unwrap();
        Dkms { tree, src, _dir: dir }
    }

    /// `dkms install` of package VERSION (variant VARIANT) into the target root; the
    /// hook may be killed after `fault` (BENCH_FAULT_AFTER). Returns whether dkms succeeded.
    fn install(&self, e: &Env, variant: &str, version: &str, fault: Option<&str>) -> bool {
        self.install_with(e, variant, version, fault, &[])
    }

    /// The same with more `dkms install` arguments.
    fn install_with(&self, e: &Env, variant: &str, version: &str, fault: Option<&str>, extra: &[&str]) -> bool {
        self.source(&self.src, variant, version);
        std::fs::create_dir_all(e.root.join("lib/modules").join(kver())).unwrap();
        let mut c = Command::new("dkms");
        c.args(["--dkmstree", self.tree.to_str().unwrap(), "--sourcetree", self.src.to_str().unwrap()])
            .args(["--installtree", e.root.join("lib/modules").to_str().unwrap()])
            .args(["install", "-m", "bes2600", "-v", version, "-k", &kver(), "--kernelsourcedir"])
            .arg(headers())
            .args(extra)
            .env("BENCH_SLOT_ROOT", &e.root);
        if let Some(f) = fault {
            c.env("BENCH_FAULT_AFTER", f);
        }
        let out = c.output().unwrap();
        if fault.is_none() {
            assert!(
                out.status.success(),
                "dkms install {version}: {}{}",
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            );
        }
        out.status.success()
    }

    /// The package's sources for VERSION in `under/bes2600-VERSION` (as DKMS's source tree
    /// holds them).
    fn source(&self, under: &Path, variant: &str, version: &str) -> PathBuf {
        let d = under.join(format!("bes2600-{version}"));
        if !d.exists() {
            common::c_module_dkms_source(&d, variant, version);
        }
        d
    }

    /// The package as a .dkms.tar.gz in the layout `dkms ldtarball` loads.
    fn tarball(&self, variant: &str, version: &str) -> PathBuf {
        self.tarball_with(variant, version, |_| {})
    }

    /// The same, with the sources changed by `edit` first.
    fn tarball_with(&self, variant: &str, version: &str, edit: impl Fn(&Path)) -> PathBuf {
        let pkg = self._dir.path().join(format!("pkg-{version}"));
        let d = self.source(&pkg, variant, version);
        edit(&d);
        std::fs::rename(&d, pkg.join("dkms_source_tree")).unwrap();
        let out = pkg.join(format!("bes2600-{version}.dkms.tar.gz"));
        let tar = Command::new("tar")
            .args(["--owner=0", "--group=0", "-czf"])
            .arg(&out)
            .arg("-C")
            .arg(&pkg)
            .arg("dkms_source_tree")
            .output()
            .unwrap();
        assert!(tar.status.success(), "{}", String::from_utf8_lossy(&tar.stderr));
        out
    }

    /// The target's dkms options: these temporary trees and Debian's headers.
    fn target_options(&self) -> String {
        format!(
            "dkms_options = [\"--dkmstree\", \"{}\", \"--sourcetree\", \"{}\", \"--kernelsourcedir\", \"{}\"]\n",
            self.tree.display(),
            self.src.display(),
            headers().display()
        )
    }

    /// The module dkms built for VERSION (what it installs).
    fn built(&self, version: &str) -> PathBuf {
        let d = self.tree.join("bes2600").join(version).join(kver());
        let found = std::fs::read_dir(&d).unwrap().find_map(|a| {
            let m = a.ok()?.path().join("module/bes2600.ko");
            m.is_file().then_some(m)
        });
        found.unwrap_or_else(|| panic!("dkms built no bes2600.ko under {}", d.display()))
    }
}

#[test]
fn dkms_installs_and_bench_share_one_set_of_slots() {
    let e = env(false);
    let dkms = Dkms::new();
    dkms.install(&e, "c-prep", "1.0", None);
    dkms.install(&e, "c-v2", "2.0", None);
    let (v1, v2) = (sha(&dkms.built("1.0")), sha(&dkms.built("2.0")));
    assert_eq!(e.slot_sha("slots/active"), Some(v2.clone()), "DKMS's install is the active slot");
    assert_eq!(e.slot_sha("slots/rollback"), Some(v1.clone()), "the one it replaced is the rollback");
    e.check_invariants();
    let (code, out, err) = e.bench(&["target", "status", "lab", "--json"]);
    assert_eq!(code, 0, "{err}");
    let j: serde_json::Value = serde_json::from_str(&out).unwrap();
    let slot = |name: &str| j["slots"].as_array().unwrap().iter().find(|s| s["slot"] == name).unwrap()["meta"].clone();
    assert_eq!((slot("active")["arrived"].as_str(), slot("active")["variant"].as_str()), (Some("dkms"), Some("c-v2")));
    assert_eq!(slot("active")["version"], "2.0");
    assert_eq!(
        (slot("rollback")["arrived"].as_str(), slot("rollback")["version"].as_str()),
        (Some("dkms"), Some("1.0"))
    );
    let srcv = |p: &Path| {
        String::from_utf8(sh(p.parent().unwrap(), "modinfo", &["-F", "srcversion", p.to_str().unwrap()]).stdout)
            .unwrap()
            .trim()
            .to_string()
    };
    assert_eq!(slot("active")["srcversion"], srcv(&dkms.built("2.0")), "srcversion recorded under the real dkms");
    // bench rollback after a DKMS install goes back to what DKMS replaced.
    let (code, out, err) = e.bench(&["rollback", "--target", "lab"]);
    assert_eq!(code, 0, "{err}");
    assert!(out.starts_with("rolled back lab: active is now c-prep"), "{out}");
    assert_eq!(e.slot_sha("slots/active"), Some(v1.clone()));
    let all = e.check_invariants();
    assert!(all.contains(&v2), "2.0 kept in forensics");
    // Then a module by bench stage: DKMS's becomes its rollback; status says how each came.
    e.stage("a");
    assert_eq!(e.slot_sha("slots/rollback"), Some(v1));
    let (code, out, _) = e.bench(&["target", "status", "lab"]);
    assert_eq!(code, 0);
    let line = |prefix: &str| out.lines().find(|l| l.trim_start().starts_with(prefix)).unwrap_or_default().to_string();
    assert!(line("active ").contains("via stage") && line("rollback ").contains("via dkms"), "{out}");
    assert!(line("forensics/c-v2-").contains("via dkms"), "{out}");
    // A DKMS install while bench holds the target is refused by the hook: nothing changes.
    assert_eq!(
        e.bench_env(&["stage", "--target", "lab", "--ko", &ko("b"), "--variant", "b"], "BENCH_FAULT_AFTER", "prepared"),
        -9
    );
    // (The installed module, a, has MODULE_VERSION "a", which DKMS's own version check
    // ranks above "3.0": override that check so the hook is what refuses.)
    let refused = !dkms.install_with(&e, "c-v2", "3.0", Some("none"), &["--force-version-override"]);
    assert!(refused, "DKMS stops: its pre-install hook found the lock");
    let (code, _, err) = e.bench(&["target", "recover", "lab"]);
    assert_eq!(code, 0, "{err}");
    assert_eq!(e.slot_sha("slots/active"), Some(sha(Path::new(&ko("b")))), "bench's stage completed");
    let before = e.check_invariants();
    // DKMS's autoinstall for another kernel release: that kernel gets its own slots (no
    // depmod: DKMS runs it on this machine's /lib/modules, which has no such kernel).
    let other = "6.1.0-bench-other";
    std::fs::create_dir_all(e.root.join("lib/modules").join(other)).unwrap();
    let out = Command::new("dkms")
        .args(["--dkmstree", dkms.tree.to_str().unwrap(), "--sourcetree", dkms.src.to_str().unwrap()])
        .args(["--installtree", e.root.join("lib/modules").to_str().unwrap()])
        .args(["install", "--no-depmod", "-m", "bes2600", "-v", "2.0", "-k", other, "--kernelsourcedir"])
        .arg(headers())
        .env("BENCH_SLOT_ROOT", &e.root)
        .output()
        .unwrap();
    assert!(out.status.success(), "{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    let theirs = e.root.join("var/lib/bench/bes2600").join(other).join("slots/active/meta");
    assert!(std::fs::read_to_string(&theirs).unwrap().contains("version=2.0\n"), "slots of {other}");
    assert_eq!(e.check_invariants(), before, "the slots of {} are untouched", kver());
}

#[test]
fn a_dkms_install_killed_at_each_hook_step_is_recovered() {
    for point in ["lock", "begin", "rollback-displaced", "active-demoted", "kept", "promoted"] {
        let e = env(false);
        let dkms = Dkms::new();
        dkms.install(&e, "b", "0.9", None);
        dkms.install(&e, "c-prep", "1.0", None);
        let installed = dkms.install(&e, "c-v2", "2.0", Some(point));
        let (v09, v1, v2) = (sha(&dkms.built("0.9")), sha(&dkms.built("1.0")), sha(&dkms.built("2.0")));
        // Killed in the pre-install hook, DKMS stops; in the post-install one it has
        // installed 2.0 already (and says it succeeded).
        assert_eq!(installed, ["kept", "promoted"].contains(&point), "dkms after a kill at {point}");
        let (code, out, _) = e.bench(&["target", "status", "lab"]);
        assert_eq!(code, 0);
        if point == "lock" {
            assert!(out.contains("LOCKED by pid ") && out.contains("dkms install c-v2 2.0"), "{out}");
        } else {
            assert!(out.contains("INTERRUPTED: dkms at step"), "after {point}: {out}");
        }
        let (code, out, err) = e.bench(&["target", "recover", "lab"]);
        assert_eq!(code, 0, "recover after {point}: {err}");
        let all = e.check_invariants();
        let (active, rollback) = if installed { (&v2, &v1) } else { (&v1, &v09) };
        assert_eq!(e.slot_sha("slots/active").as_ref(), Some(active), "after {point}: {out}");
        let rb = e.slot_sha("slots/rollback");
        assert!(rb.as_ref() == Some(rollback) || (rb.is_none() && all.contains(rollback)), "after {point}: {out}");
        assert!(all.contains(&v09) && all.contains(&v1), "after {point}: a module was lost ({out})");
    }
}

fn package_path(ssh: bool) {
    let e = env(ssh);
    let dkms = Dkms::new();
    let conf = std::fs::read_to_string(e.ws.root.join("bench.toml")).unwrap();
    std::fs::write(e.ws.root.join("bench.toml"), conf + &dkms.target_options()).unwrap();
    e.stage("a");
    let pkg = dkms.tarball("c-v2", "2.0");
    let pkg = pkg.to_str().unwrap();
    // A dry run changes nothing and names the DKMS steps.
    let before = e.check_invariants();
    let (code, out, err) = e.bench(&["stage", "--target", "lab", "--package", pkg, "--no-verify", "--dry-run"]);
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("dkms build: ") && out.contains("ldtarball") && out.contains("dkms install: "), "{out}");
    assert_eq!(e.check_invariants(), before);
    // Unverified without saying so: refused, nothing staged.
    let (code, _, err) = e.bench(&["stage", "--target", "lab", "--package", pkg]);
    assert!(code == 1 || code == 2, "{err}");
    assert_eq!(e.check_invariants(), before);
    let (code, out, err) = e.bench(&["stage", "--target", "lab", "--package", pkg, "--no-verify", "--json"]);
    assert_eq!(code, 0, "{out}{err}");
    let j: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(
        (j["active"]["arrived"].as_str(), j["active"]["version"].as_str()),
        (Some("dkms"), Some("2.0")),
        "{out}"
    );
    assert_eq!(j["previous"]["variant"], "a", "{out}");
    let built = dkms.built("2.0");
    assert_eq!(e.slot_sha("slots/active"), Some(sha(&built)), "the module the target's DKMS built is active");
    assert_eq!(e.slot_sha("slots/rollback"), Some(sha(Path::new(&ko("a")))), "the staged one is the rollback");
    e.check_invariants();
    let (code, out, err) = e.bench(&["rollback", "--target", "lab"]);
    assert_eq!(code, 0, "{err}");
    assert!(out.starts_with("rolled back lab: active is now a"), "{out}");
    e.check_invariants();
    if ssh {
        return;
    }
    // The same package again after the rollback: DKMS still lists it as installed; it is
    // installed again, with a (active now) kept for rollback.
    let (code, out, err) = e.bench(&["stage", "--target", "lab", "--package", pkg, "--no-verify"]);
    assert_eq!(code, 0, "{out}{err}");
    assert_eq!(e.slot_sha("slots/active"), Some(sha(&built)), "{out}");
    assert_eq!(e.slot_sha("slots/rollback"), Some(sha(Path::new(&ko("a")))), "{out}");
    e.check_invariants();
    // bench killed while the target's DKMS works: after the build nothing is installed
    // and a second stage goes through; after the install the hook has filled the slots.
    let pkg3 = dkms.tarball("c-v2", "3.0");
    let pkg3 = pkg3.to_str().unwrap();
    let before = e.check_invariants();
    let args = ["stage", "--target", "lab", "--package", pkg3, "--no-verify"];
    assert_eq!(e.bench_env(&args, "BENCH_FAULT_AFTER", "dkms-built"), -9);
    assert_eq!(e.check_invariants(), before, "killed after the build: nothing installed");
    assert_eq!(e.bench_env(&args, "BENCH_FAULT_AFTER", "dkms-installed"), -9);
    e.check_invariants();
    assert_eq!(e.slot_sha("slots/active"), Some(sha(&dkms.built("3.0"))), "the hook completed the slots");
    let (code, out, err) = e.bench(&args);
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("is already the active module on lab: nothing changed"), "{out}");
    // A module modinfo finds no srcversion in (no MODULE_VERSION) does not stay active.
    let pkg4 = dkms.tarball_with("c-v2", "4.0", |d| {
        let c = std::fs::read_to_string(d.join("bes2600.c")).unwrap();
        let without: String =
            c.lines().filter(|l| !l.starts_with("MODULE_VERSION")).map(|l| format!("{l}\n")).collect();
        std::fs::write(d.join("bes2600.c"), without).unwrap();
    });
    let before = e.slot_sha("slots/active");
    let (code, _, err) = e.bench(&["stage", "--target", "lab", "--package", pkg4.to_str().unwrap(), "--no-verify"]);
    assert_eq!(code, 1, "{err}");
    assert!(err.contains("cannot read a srcversion") && err.contains("rolled back"), "{err}");
    assert_eq!(e.slot_sha("slots/active"), before, "the previous module is active again");
    assert!(e.check_invariants().contains(&sha(&dkms.built("4.0"))), "kept in forensics");
}

#[test]
fn a_package_built_by_the_targets_dkms_on_a_local_root() {
    package_path(false);
}

#[test]
fn a_package_built_by_the_targets_dkms_over_ssh() {
    package_path(true);
}

/// The real Rust package on a kernel without CONFIG_RUST: DKMS refuses with exit 77, and
/// the active module stays.
#[test]
fn a_package_dkms_refuses_leaves_the_active_module() {
    let e = env(false);
    let dkms = Dkms::new();
    let conf = std::fs::read_to_string(e.ws.root.join("bench.toml")).unwrap();
    std::fs::write(e.ws.root.join("bench.toml"), conf + &dkms.target_options()).unwrap();
    e.stage("a");
    let before = e.check_invariants();
    let (code, out, err) = e.bench(&["build", "--variant", "c-v2", "--json"]);
    assert_eq!(code, 0, "{err}");
    let j: serde_json::Value = serde_json::from_str(&out).unwrap();
    let tarball = j[0]["tarball"].as_str().unwrap_or_else(|| panic!("no tarball in {out}")).to_string();
    let (code, _, err) = e.bench(&["stage", "--target", "lab", "--package", &tarball]);
    assert_eq!(code, 3, "{err}");
    assert!(err.contains("exit 77") && err.contains("CONFIG_RUST"), "{err}");
    assert_eq!(e.check_invariants(), before, "the active module stays");
}
