//! Targets: a board over ssh (the system OpenSSH client, BatchMode) or a local root
//! directory. Every operation on a target is a POSIX shell script run there, made of the
//! functions of `dkms/bench-slots.sh`: the same library the package's DKMS install hook
//! runs, so a module staged by bench and one the board's DKMS installed land in the same
//! slots, per module and kernel release:
//!
//! ```text
//! STATE/MODULE/KVER/lock/holder        who holds the target (mkdir is the lock)
//! STATE/MODULE/KVER/journal            the operation in progress and its last finished step
//! STATE/MODULE/KVER/staging/           the module being staged (MODULE.ko + meta)
//! STATE/MODULE/KVER/slots/active/      what is installed in the module directory
//! STATE/MODULE/KVER/slots/rollback/    the last known good module
//! STATE/MODULE/KVER/forensics/V-SRCV/  modules taken out of service, never deleted
//! ```
//!
//! Every change is a write to a temporary file, `sync`, and a rename; the journal is
//! written before each step's effects and every step is idempotent, so `recover` can finish
//! (or, before the staged module was verified, undo) an interrupted operation, a stage or
//! rollback of bench's or an install of DKMS's.

pub mod journal;
use crate::error::ResultExt;
use crate::error::{BenchError, Kind, Result};
use crate::shell::q;
use journal::{Journal, Op, Step};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::path::Path;
use std::process::{Command, Stdio};

/// How bench reaches a target.
#[derive(Clone, Copy, Debug, Deserialize, Serialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum Transport {
    /// A board over ssh (`host`, `user`, `port`, ...).
    Ssh,
    /// A directory on this machine standing for the board's `/` (`root`).
    Local,
    /// The kernel lab's VM: its module tree is the lab disk; `root` names the lab directory.
    Lab,
}

/// How to stage.
#[derive(Clone, Copy, Debug, Default)]
pub struct StageOptions {
    /// The module being replaced is broken: it goes to forensics, not rollback.
    pub failed: bool,
    /// Stage a module built for another kernel release.
    pub force: bool,
    /// Test hook: damage the upload (BENCH_FAULT_CORRUPT_UPLOAD).
    pub corrupt_upload: bool,
}

/// A DKMS package as `bench stage --package` hands it over.
#[derive(Clone, Debug, Default)]
pub struct PackageId {
    pub version: String,
    pub variant: String,
    /// The manifest's prediction, checked against what the target's DKMS built (none for
    /// a package that was not verified).
    pub predicted_srcversion: Option<String>,
}

/// What a stage did.
#[derive(Clone, Debug)]
pub struct Staged {
    /// The active module now.
    pub meta: Meta,
    /// It was already active: nothing changed.
    pub unchanged: bool,
    /// The module it replaced (now in rollback, or in forensics with `failed`).
    pub previous: Option<Meta>,
    /// The rollback module it displaced into forensics.
    pub displaced: Option<Meta>,
}

#[derive(Clone, Debug, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct TargetConfig {
    pub transport: Transport,
    pub host: Option<String>,
    pub user: Option<String>,
    pub port: Option<u16>,
    /// Extra `ssh -F` configuration file and `-i` identity (otherwise ~/.ssh/config rules).
    pub ssh_config: Option<String>,
    pub identity: Option<String>,
    /// More `ssh -o` options.
    #[serde(default)]
    pub options: Vec<String>,
    /// Path prefix on the target ("/" on a board; a directory for a local root).
    pub root: Option<String>,
    /// Kernel release (default: `uname -r` on the target).
    pub kernel: Option<String>,
    /// Module directory under /lib/modules/KVER.
    pub module_dir: Option<String>,
    pub state_dir: Option<String>,
    /// Extra arguments for the target's own `dkms` (`bench stage --package`), e.g.
    /// `["--kernelsourcedir", "/usr/src/linux-headers-6.19.10"]`, or temporary trees.
    #[serde(default)]
    pub dkms_options: Vec<String>,
}

#[derive(Clone, Debug, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct BenchToml {
    pub module: Option<String>,
    /// The variant commands use when none is named (default: the variant tree's tip);
    /// read by `Variants::default_variant`, accepted here so the file validates.
    #[allow(dead_code)]
    pub default_variant: Option<String>,
    #[serde(default)]
    pub targets: BTreeMap<String, TargetConfig>,
    /// `bench patches`: the sender (default: git's user.name and user.email).
    pub patches: Option<PatchesConfig>,
}

#[derive(Clone, Debug, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct PatchesConfig {
    /// `Name <email>`: From and Signed-off-by of every patch.
    pub from: Option<String>,
}

pub fn load_config(root: &Path) -> Result<BenchToml> {
    let p = root.join("bench.toml");
    if !p.exists() {
        return Ok(BenchToml::default());
    }
    let text = crate::fsutil::read_text(&p)?;
    let conf: BenchToml = toml::from_str(&text).map_err(|e| {
        let (l, c) = e.span().map_or((0, 0), |s| crate::workspace::variant::line_col(&text, s.start));
        BenchError::usage(format!("{}:{l}:{c}: {}", p.display(), e.message().trim()))
    })?;
    validate(&conf, &text, &p.display().to_string())?;
    Ok(conf)
}

/// Values that reach a command line, a shell on a target or a path: a name never starts
/// with `-` (ssh would read an option) and never holds a path separator or `..`.
fn validate(conf: &BenchToml, text: &str, file: &str) -> Result<()> {
    let at = |key: &str, value: &str| crate::workspace::variant::locate(Path::new(file), text, key, value);
    let word = |what: &str, v: &str, allow: &dyn Fn(char) -> bool, right: &str| -> Result<()> {
        if v.is_empty() || v.starts_with('-') || !v.chars().all(allow) {
            // The key is the label's last word (`target name` is a table header).
            let key = if what.contains(' ') { "" } else { what };
            return Err(
                BenchError::usage(format!("{}: {what} `{v}` is not allowed", at(key, v))).hint(right.to_string())
            );
        }
        Ok(())
    };
    let name_char = |c: char| c.is_ascii_alphanumeric() || c == '_' || c == '-';
    if let Some(m) = &conf.module {
        word("module", m, &name_char, "a module name is letters, digits, `_` and `-`, e.g. module = \"bes2600\"")?;
    }
    for (name, t) in &conf.targets {
        word("target name", name, &name_char, "a target name is letters, digits, `_` and `-`")?;
        if let Some(h) = &t.host {
            let host_char = |c: char| c.is_ascii_alphanumeric() || ".-_:[]".contains(c);
            word(
                "host",
                h,
                &host_char,
                "a host name or address, e.g. host = \"ohm.local\"; ssh options go in `options`",
            )?;
        }
        if let Some(u) = &t.user {
            word("user", u, &|c: char| name_char(c) || c == '.', "a login name, e.g. user = \"root\"")?;
        }
        if let Some(k) = &t.kernel {
            word(
                "kernel",
                k,
                &|c: char| c.is_ascii_alphanumeric() || "._+-".contains(c),
                "a kernel release as `uname -r` prints it",
            )?;
        }
        if let Some(d) = &t.module_dir {
            if d.starts_with('/') || d.split('/').any(|p| p == "..") || d.starts_with('-') {
                return Err(BenchError::usage(format!("{}: module_dir `{d}` is not allowed", at("module_dir", d)))
                    .hint("a directory under /lib/modules/KVER without `..`, e.g. module_dir = \"updates/dkms\""));
            }
        }
        for o in &t.dkms_options {
            if o.is_empty() || o.contains('\n') {
                return Err(BenchError::usage(format!("{}: dkms option `{o}` is not allowed", at("dkms_options", o)))
                    .hint("dkms arguments one per string, e.g. dkms_options = [\"--kernelsourcedir\", \"/usr/src/linux-headers-6.19.10\"]"));
            }
        }
        for o in &t.options {
            if o.starts_with('-') {
                return Err(BenchError::usage(format!("{}: ssh option `{o}` is not allowed", at("options", o)))
                    .hint("options are `-o` values: KEY=VALUE, e.g. options = [\"StrictHostKeyChecking=no\"]"));
            }
        }
    }
    Ok(())
}

/// One slot's metadata.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct Meta {
    pub sha256: String,
    pub srcversion: String,
    pub variant: String,
    /// The package version (modinfo's `version` of a package's module).
    pub version: String,
    pub build: String,
    pub time: String,
    /// How the module arrived: `stage` (bench stage), `dkms` (the board's DKMS installed a
    /// package), `found` (installed by other means, kept when something replaced it).
    pub arrived: String,
}

impl Meta {
    fn parse(text: &str) -> Meta {
        let mut m = Meta::default();
        for line in text.lines() {
            if let Some((k, v)) = line.split_once('=') {
                let v = v.to_string();
                match k {
                    "sha256" => m.sha256 = v,
                    "srcversion" => m.srcversion = v,
                    "variant" => m.variant = v,
                    "version" => m.version = v,
                    "arrived" => m.arrived = v,
                    "build" => m.build = v,
                    "time" => m.time = v,
                    _ => {}
                }
            }
        }
        m
    }
    fn render(&self) -> String {
        format!(
            "sha256={}\nsrcversion={}\nvariant={}\nversion={}\nbuild={}\ntime={}\narrived={}\n",
            self.sha256, self.srcversion, self.variant, self.version, self.build, self.time, self.arrived
        )
    }
}

pub struct Target {
    pub name: String,
    cfg: TargetConfig,
    pub module: String,
    /// Absolute paths on the target.
    pub root: String,
    pub kver: String,
    pub state: String,
    pub moddir: String,
    pub dry_run: bool,
    pub log: Vec<String>,
    /// `dkms/bench-slots.sh`: the slot functions every script here calls.
    slots_lib: String,
    /// A `lab` target: the kernel lab whose chroot has the DKMS that builds for its kernel.
    lab: Option<crate::lab::Lab>,
}

/// The slot library as this bench was built with it, for a workspace without its own.
const SLOTS_LIB: &str = include_str!("../../../dkms/bench-slots.sh");

fn now() -> String {
    let secs =
        std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_secs() as i64).unwrap_or(0);
    crate::workspace::git::rfc3339(secs)
}

/// The test hook: `BENCH_FAULT_AFTER=STEP` kills bench with SIGKILL right after STEP.
fn fault_point(step: &str) {
    if std::env::var("BENCH_FAULT_AFTER").ok().as_deref() == Some(step) {
        let _ = Command::new("kill").args(["-KILL", &std::process::id().to_string()]).status();
        std::thread::sleep(std::time::Duration::from_secs(10));
    }
}

impl Target {
    /// Opens a target from bench.toml, checks its tools and reads its kernel and module
    /// directory. Long because each check names what is wrong and how to fix it.
    pub fn open(root: &Path, name: &str, dry_run: bool) -> Result<Target> {
        let conf = load_config(root)?;
        let Some(cfg) = conf.targets.get(name).cloned() else {
            let known: Vec<&str> = conf.targets.keys().map(String::as_str).collect();
            let mut e = BenchError::usage(format!("unknown target `{name}`"));
            e = match crate::workspace::variant::nearest(name, &known) {
                Some(n) => e.hint(format!("did you mean `{n}`? Targets are [targets.NAME] tables in bench.toml")),
                None => e.hint(format!(
                    "targets in bench.toml: {}",
                    if known.is_empty() { "(none)".into() } else { known.join(", ") }
                )),
            };
            return Err(e);
        };
        let mut cfg = cfg;
        let mut lab_of = None;
        if cfg.transport == Transport::Lab {
            // The kernel lab's VM: its module tree is the lab disk, packed into the
            // initramfs at every `bench lab boot`; `root` names the lab directory.
            let lab = crate::lab::Lab::at(cfg.root.as_deref().map(Path::new), root);
            cfg.kernel = Some(lab.kernel_release()?);
            let disk = lab.disk();
            std::fs::create_dir_all(&disk).or_env(format!("cannot create {}", disk.display()))?;
            cfg.root = Some(disk.display().to_string());
            cfg.transport = Transport::Local;
            lab_of = Some(lab);
        }
        if cfg.transport == Transport::Ssh && cfg.host.is_none() {
            return Err(BenchError::usage(format!("target `{name}`: transport ssh needs host")));
        }
        if cfg.transport == Transport::Local && cfg.root.is_none() {
            return Err(BenchError::usage(format!("target `{name}`: transport local needs root (a directory)")));
        }
        let module = conf.module.clone().unwrap_or_else(|| "bes2600".into());
        let troot = cfg.root.clone().unwrap_or_else(|| "/".into()).trim_end_matches('/').to_string();
        // The workspace's own library (the one its packages ship), else bench's.
        let lib_path = root.join("dkms").join("bench-slots.sh");
        let slots_lib = match lib_path.is_file() {
            true => crate::fsutil::read_text(&lib_path)?,
            false => SLOTS_LIB.to_string(),
        };
        let mut t = Target {
            name: name.into(),
            module: module.clone(),
            root: troot.clone(),
            kver: String::new(),
            state: String::new(),
            moddir: String::new(),
            cfg,
            dry_run,
            log: Vec::new(),
            slots_lib,
            lab: lab_of,
        };
        if t.cfg.transport == Transport::Ssh {
            t.start_master()?;
        }
        // Reach the target and check its tools before anything changes.
        let probe = t.sh_read(
            "for c in sha256sum modinfo depmod sync; do command -v $c >/dev/null || echo missing:$c; done; uname -r",
            None,
        )?;
        if let Some(m) = probe.lines().find_map(|l| l.strip_prefix("missing:")) {
            return Err(BenchError::env(format!("target `{name}` has no `{m}`")).hint(
                if m == "modinfo" || m == "depmod" {
                    "install kmod on the target"
                } else {
                    "install coreutils on the target"
                },
            ));
        }
        let uname = probe.lines().last().unwrap_or("").trim().to_string();
        t.kver = t.cfg.kernel.clone().unwrap_or(uname);
        t.moddir = format!(
            "{}/lib/modules/{}/{}",
            t.root,
            t.kver,
            t.cfg.module_dir.clone().unwrap_or_else(|| "updates/dkms".into())
        );
        // Slots per module and kernel release, as the DKMS hook keeps them.
        t.state = format!(
            "{}{}/{}/{}",
            t.root,
            t.cfg.state_dir.clone().unwrap_or_else(|| "/var/lib/bench".into()),
            t.module,
            t.kver
        );
        Ok(t)
    }

    fn control_path(&self) -> String {
        format!(
            "/tmp/bench-ssh-{}-{}",
            std::process::id(),
            self.name.chars().filter(|c| c.is_ascii_alphanumeric()).collect::<String>()
        )
    }

    /// Opens the shared ssh connection: a master with no terminal and no inherited output,
    /// closed on drop (and by ssh itself after a minute idle, should bench be killed).
    fn start_master(&self) -> Result<()> {
        let c = self.command("true");
        let args: Vec<std::ffi::OsString> = c.get_args().map(|a| a.to_os_string()).collect();
        let mut m = Command::new("ssh");
        m.args(["-M", "-N", "-f", "-o", "ControlPersist=60s"]);
        // Everything but the remote command.
        m.args(&args[..args.len() - 1]);
        let out = m.stdin(Stdio::null()).stdout(Stdio::null()).stderr(Stdio::piped()).output().map_err(|e| {
            BenchError::env(format!("cannot start ssh for target `{}`", self.name)).cause(e.to_string())
        })?;
        let _ = c.get_program();
        if out.status.success() {
            return Ok(());
        }
        Err(self.unreachable(String::from_utf8_lossy(&out.stderr).trim()))
    }

    /// The error for an ssh connection that failed, with what to check.
    fn unreachable(&self, stderr: &str) -> BenchError {
        let hint = if stderr.contains("Permission denied") {
            "authentication failed: check the user, the key (identity) and the target's authorized_keys"
        } else if stderr.contains("Could not resolve") {
            "the host name does not resolve"
        } else {
            "the host is unreachable: check host, port and that sshd runs"
        };
        BenchError::env(format!("cannot reach target `{}` over ssh", self.name)).cause(stderr.to_string()).hint(hint)
    }

    fn command(&self, script: &str) -> Command {
        if self.cfg.transport == Transport::Local {
            let mut c = Command::new("sh");
            c.arg("-c").arg(script);
            c
        } else {
            let mut c = Command::new("ssh");
            c.args(["-o", "BatchMode=yes", "-o", "ConnectTimeout=10"]);
            if let Some(f) = &self.cfg.ssh_config {
                c.arg("-F").arg(f);
            }
            if let Some(i) = &self.cfg.identity {
                c.arg("-i").arg(i);
            }
            // The user's options first: for ssh the first setting of an option wins.
            for o in &self.cfg.options {
                c.arg("-o").arg(o);
            }
            // One connection for all the steps of an operation (see `start_master`).
            c.arg("-o").arg(format!("ControlPath={}", self.control_path()));
            if let Some(p) = self.cfg.port {
                c.arg("-p").arg(p.to_string());
            }
            let host = self.cfg.host.clone().unwrap_or_default();
            // `--`: whatever the destination is, ssh never reads it as an option.
            c.arg("--");
            c.arg(match &self.cfg.user {
                Some(u) => format!("{u}@{host}"),
                None => host,
            });
            c.arg(format!("sh -c {}", q(script)));
            c
        }
    }

    /// Runs a script that only reads (also in a dry run).
    fn sh_read(&self, script: &str, stdin: Option<&[u8]>) -> Result<String> {
        self.exec(script, stdin)
    }

    /// Runs a script that changes the target (printed, not run, in a dry run).
    fn sh(&mut self, what: &str, script: &str, stdin: Option<&[u8]>) -> Result<String> {
        self.log.push(format!("{what}: {script}"));
        if self.dry_run {
            return Ok(String::new());
        }
        self.exec(script, stdin)
    }

    /// Runs calls of the slot library (`slots_*` functions) on the target; the dry run
    /// prints the calls, not the library.
    fn slots(&mut self, what: &str, calls: &str) -> Result<String> {
        self.slots_in(what, calls, None)
    }

    /// The same, with `stdin` for the calls.
    fn slots_in(&mut self, what: &str, calls: &str, stdin: Option<&[u8]>) -> Result<String> {
        self.log.push(format!("{what}: {calls}"));
        if self.dry_run {
            return Ok(String::new());
        }
        let script = format!("BENCH_SLOTS_LIB=1\n{}\nset -e\n{calls}", self.slots_lib);
        self.exec(&script, stdin)
    }

    fn exec(&self, script: &str, stdin: Option<&[u8]>) -> Result<String> {
        use std::io::Write;
        let mut cmd = self.command(script);
        cmd.stdin(if stdin.is_some() { Stdio::piped() } else { Stdio::null() })
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let mut child = cmd.spawn().map_err(|e| {
            BenchError::env(format!(
                "cannot start {} for target `{}`",
                if self.cfg.transport == Transport::Ssh { "ssh" } else { "sh" },
                self.name
            ))
            .cause(e.to_string())
        })?;
        if let (Some(data), Some(mut pipe)) = (stdin, child.stdin.take()) {
            let _ = pipe.write_all(data);
        }
        let out = child.wait_with_output().or_env("the target command did not finish")?;
        let stderr = String::from_utf8_lossy(&out.stderr).trim().to_string();
        if out.status.success() {
            return Ok(String::from_utf8_lossy(&out.stdout).into_owned());
        }
        if self.cfg.transport == Transport::Ssh && out.status.code() == Some(255) {
            return Err(self.unreachable(&stderr));
        }
        let e = BenchError::env(format!("a command failed on target `{}`", self.name)).cause(stderr.clone());
        Err(if stderr.contains("No space left") {
            e.hint("the target's disk is full: nothing was activated; free space and stage again")
        } else {
            e
        })
    }

    fn put(&mut self, what: &str, path: &str, bytes: &[u8]) -> Result<()> {
        let calls = format!("mkdir -p \"$(dirname {p})\"; slots_write {p}", p = q(path));
        self.slots_in(what, &calls, Some(bytes)).map(|_| ())
    }

    fn read_file(&self, path: &str) -> Result<Option<String>> {
        let out = self.sh_read(&format!("if [ -f {p} ]; then echo y; cat {p}; else echo n; fi", p = q(path)), None)?;
        Ok(out.strip_prefix("y\n").map(str::to_string))
    }

    // ----- lock and journal

    fn lock(&mut self, what: &str) -> Result<()> {
        let holder = format!(
            "pid {} on {}: {what} (since {})",
            std::process::id(),
            std::env::var("HOSTNAME")
                .ok()
                .or_else(|| std::fs::read_to_string("/etc/hostname").ok())
                .unwrap_or_default()
                .trim(),
            now()
        );
        let lock = format!("{}/lock", self.state);
        let out = self.slots("lock", &format!("slots_lock {} {}", q(&self.state), q(&holder)))?;
        if self.dry_run {
            return Ok(());
        }
        match out.trim() {
            "ok" => {}
            "full" => {
                return Err(BenchError::env(format!(
                    "No space left on target `{}`: cannot even take its lock",
                    self.name
                ))
                .hint("the target's disk is full: nothing was changed; free space and stage again"))
            }
            _ => {
                let who = self.read_file(&format!("{lock}/holder"))?.unwrap_or_else(|| "unknown".into());
                return Err(BenchError::new(Kind::Usage, format!("target `{}` is busy: {}", self.name, who.trim()))
                    .hint("wait for it; if that bench was killed, run `bench target recover` first"));
            }
        }
        Ok(())
    }

    fn unlock(&mut self) -> Result<()> {
        let s = format!("slots_unlock {}", q(&self.state));
        self.slots("unlock", &s).map(|_| ())
    }

    fn journal(&mut self, j: &Journal) -> Result<()> {
        let p = format!("{}/journal", self.state);
        self.put(&format!("journal step={}", j.step), &p, j.render().as_bytes())
    }

    pub fn read_journal(&self) -> Result<Option<Journal>> {
        let p = format!("{}/journal", self.state);
        let Some(text) = self.read_file(&p)? else { return Ok(None) };
        Journal::parse(&text).map(Some).map_err(|why| {
            BenchError::env(format!("the journal {p} on target `{}` is not one bench writes", self.name))
                .cause(why)
                .hint("look at it: bench never leaves such a file; remove it by hand once the slots are checked")
        })
    }

    // ----- slots

    fn slot(&self, name: &str) -> String {
        format!("{}/slots/{name}", self.state)
    }

    pub fn read_meta(&self, dir: &str) -> Result<Option<Meta>> {
        Ok(self.read_file(&format!("{dir}/meta"))?.map(|t| Meta::parse(&t)))
    }

    /// sha256 of a file on the target, if it exists.
    fn sha256_of(&self, path: &str) -> Result<Option<String>> {
        let out = self.sh_read(&format!("[ -f {p} ] && sha256sum {p} | cut -d' ' -f1 || true", p = q(path)), None)?;
        let s = out.trim();
        Ok(if s.is_empty() { None } else { Some(s.to_string()) })
    }

    /// Moves a slot directory to forensics under a name that does not exist yet.
    fn retire(&mut self, what: &str, dir: &str) -> Result<()> {
        let calls = format!("slots_retire {} {}", q(&self.state), q(dir));
        self.slots(what, &calls).map(|_| ())
    }

    fn exists(&self, dir: &str) -> Result<bool> {
        Ok(self.sh_read(&format!("[ -d {} ] && echo y || echo n", q(dir)), None)?.trim() == "y")
    }

    /// Installs the active slot's module, runs depmod and checks the installed file.
    fn install_active(&mut self) -> Result<Meta> {
        let active = self.slot("active");
        let meta = self.read_meta(&active)?.unwrap_or_default();
        let target = format!("{}/{}.ko", self.moddir, self.module);
        let calls = format!("slots_install {} {} {}", q(&self.state), q(&self.moddir), q(&self.module));
        self.slots("install", &calls)?;
        fault_point("install");
        let depmod = if self.root.is_empty() {
            format!("depmod {}", q(&self.kver))
        } else {
            format!("depmod -b {} {}", q(&self.root), q(&self.kver))
        };
        self.sh("depmod", &depmod, None)?;
        fault_point("depmod");
        if !self.dry_run {
            let got = self.sha256_of(&target)?.unwrap_or_default();
            let srcv = self.sh_read(&format!("modinfo -F srcversion {}", q(&target)), None)?.trim().to_string();
            if got != meta.sha256 || srcv != meta.srcversion {
                return Err(BenchError::env(format!(
                    "the installed {} does not match the active slot (sha256 {got}, srcversion {srcv})",
                    target
                )));
            }
        }
        Ok(meta)
    }

    // ----- operations

    /// Stages `ko` as the active module; the previous active goes to rollback (or to
    /// forensics when `failed`), a displaced rollback to forensics. The module already
    /// active is a no-op; a module built for another kernel release is refused unless
    /// `force`.
    pub fn stage(&mut self, ko: &[u8], variant: &str, build: &str, opts: StageOptions) -> Result<Staged> {
        let sha = crate::fsutil::sha256_hex(ko);
        self.lock(&format!("bench stage --variant {variant}"))?;
        fault_point("lock");
        let before = (self.read_meta(&self.slot("active"))?, self.read_meta(&self.slot("rollback"))?);
        if let Some(active) = before.0.as_ref().filter(|a| a.sha256 == sha) {
            let active = active.clone();
            self.unlock()?;
            return Ok(Staged { meta: active, unchanged: true, previous: None, displaced: None });
        }
        let result = self.stage_locked(ko, &sha, variant, build, opts);
        let result = result.map(|meta| Staged {
            meta,
            unchanged: false,
            previous: before.0,
            displaced: if opts.failed { None } else { before.1 },
        });
        if result.is_err() && !self.dry_run {
            match self.read_journal() {
                // Before the staged module was verified nothing changed: undo and unlock.
                Ok(Some(j)) if j.step == Step::Begin => {
                    let _ = self.undo_unverified_stage();
                }
                Ok(None) => {
                    let _ = self.unlock();
                }
                // Later, the journal and lock stay for `bench target recover`.
                _ => {
                    return result.map_err(|e| {
                        e.hint(format!("run `bench target recover {}` to complete the operation", self.name))
                    });
                }
            }
        }
        result
    }

    fn stage_locked(&mut self, ko: &[u8], sha: &str, variant: &str, build: &str, opts: StageOptions) -> Result<Meta> {
        let (failed, corrupt) = (opts.failed, opts.corrupt_upload);
        let mut j = Journal { variant: variant.into(), sha256: sha.into(), failed, ..Journal::new(Op::Stage) };
        self.journal(&j)?;
        fault_point("journal-begin");
        let staging = format!("{}/staging", self.state);
        let mut bytes = ko.to_vec();
        if corrupt && !bytes.is_empty() {
            let mid = bytes.len() / 2;
            bytes[mid] ^= 0xff;
        }
        self.sh("clear staging", &format!("rm -rf {s}; mkdir -p {s}", s = q(&staging)), None)?;
        self.put("upload", &format!("{staging}/{}.ko", self.module), &bytes)?;
        fault_point("upload");
        let meta = if self.dry_run {
            Meta {
                sha256: sha.into(),
                variant: variant.into(),
                build: build.into(),
                time: now(),
                arrived: "stage".into(),
                ..Default::default()
            }
        } else {
            let got = self.sha256_of(&format!("{staging}/{}.ko", self.module))?.unwrap_or_default();
            if got != sha {
                return Err(BenchError::env(format!(
                    "the module's sha256 on target `{}` is {got}, not {sha}: the copy is damaged",
                    self.name
                ))
                .hint("nothing was activated; stage again"));
            }
            let staged_ko = q(&format!("{staging}/{}.ko", self.module));
            let srcv = self.sh_read(&format!("modinfo -F srcversion {staged_ko}"), None)?.trim().to_string();
            // vermagic starts with the kernel release the module was built for; the
            // target's kernel refuses another one at the next boot.
            let vermagic = self.sh_read(&format!("modinfo -F vermagic {staged_ko}"), None)?;
            let built_for = vermagic.split_whitespace().next().unwrap_or("").to_string();
            if built_for != self.kver && !opts.force {
                return Err(BenchError::usage(format!(
                    "the module was built for kernel {}, target `{}` runs {}: it would not load",
                    if built_for.is_empty() { "(no vermagic)" } else { &built_for },
                    self.name,
                    self.kver
                ))
                .hint("build for the target's kernel (its DKMS, or --kernel), or pass --force to stage it anyway; nothing was changed"));
            }
            // A package's module carries the package version in modinfo.
            let version = self.sh_read(&format!("modinfo -F version {staged_ko} || true"), None)?.trim().to_string();
            Meta {
                sha256: sha.into(),
                srcversion: srcv,
                variant: variant.into(),
                version,
                build: build.into(),
                time: now(),
                arrived: "stage".into(),
            }
        };
        self.put("staging meta", &format!("{staging}/meta"), meta.render().as_bytes())?;
        j.step = Step::Prepared;
        j.srcversion = meta.srcversion.clone();
        self.journal(&j)?;
        fault_point("prepared");
        self.stage_forward(&mut j)?;
        Ok(meta)
    }

    /// Hands the target a DKMS package and lets the target's own DKMS build and install it
    /// for its kernel (`ldtarball` unless that version is known, `build`, `install`); the
    /// package's hook fills the slots. Returns the active slot after, which must be the
    /// package's version as DKMS installed it.
    pub fn stage_package(&mut self, tarball: &[u8], pkg: &PackageId) -> Result<Staged> {
        if self.lab.is_none() {
            let probe = self.sh_read("command -v dkms >/dev/null && echo yes || echo no", None)?;
            if probe.trim() != "yes" {
                return Err(BenchError::env(format!("target `{}` has no `dkms`", self.name))
                    .hint("install dkms on the target, or build the module here and stage it with --ko"));
            }
        }
        let before = (self.read_meta(&self.slot("active"))?, self.read_meta(&self.slot("rollback"))?);
        let name = format!("{}-{}.dkms.tar.gz", self.module, pkg.version);
        let (file, slot_root) = self.upload_for_dkms(&name, tarball)?;
        let _bound = match &self.lab {
            Some(lab) if !self.dry_run => Some(crate::lab::bind_disk(lab)?),
            _ => None,
        };
        let dkms = self.dkms_command(&slot_root);
        let (m, v, k) = (q(&self.module), q(&pkg.version), q(&self.kver));
        if !slot_root.is_empty() {
            self.dkms_step(
                "module directory",
                &format!("mkdir -p {}", q(&format!("{slot_root}/lib/modules/{}", self.kver))),
                pkg,
            )?;
        }
        let add = format!(
            "if [ -z \"$({dkms} status -m {m} -v {v} 2>/dev/null)\" ]; then {dkms} ldtarball {f}; fi",
            f = q(&file)
        );
        self.dkms_step("dkms add", &add, pkg)?;
        fault_point("dkms-added");
        let mut built = false;
        if !self.dry_run {
            let status = self.dkms_step("dkms status", &format!("{dkms} status -m {m} -v {v} -k {k}"), pkg)?;
            built = status.contains(": built") || status.contains(": installed");
            if status.contains(": installed") {
                // DKMS installs a version once per kernel; the slots say whether it is
                // still what is active.
                let active = self.read_meta(&self.slot("active"))?.unwrap_or_default();
                if active.version == pkg.version {
                    self.dkms_step("remove upload", &format!("rm -f {}", q(&file)), pkg)?;
                    return Ok(Staged { meta: active, unchanged: true, previous: None, displaced: None });
                }
                // A rollback or a stage replaced it since: DKMS forgets that install (it
                // removes the installed file, or puts back a module it once saved as the
                // original), the active slot's module goes back in place, and DKMS
                // installs again, so its hook keeps the active one for rollback.
                self.dkms_step("dkms uninstall", &format!("{dkms} uninstall -m {m} -v {v} -k {k}"), pkg)?;
                if self.exists(&self.slot("active"))? {
                    let calls = format!("slots_install {} {} {}", q(&self.state), q(&self.moddir), q(&self.module));
                    self.slots("reinstall the active module", &calls)?;
                }
            }
        }
        if !built {
            self.dkms_step("dkms build", &format!("{dkms} build -m {m} -v {v} -k {k}"), pkg)?;
        }
        fault_point("dkms-built");
        // The developer chose this build: DKMS's "not newer than installed" check (module
        // versions of development builds have no order) must not keep it out. Not
        // `--force`, which would also override a refusing pre-install hook.
        let install = format!("{dkms} install --force-version-override -m {m} -v {v} -k {k}");
        let said = self.dkms_step("dkms install", &install, pkg)?;
        fault_point("dkms-installed");
        self.dkms_step("remove upload", &format!("rm -f {}", q(&file)), pkg)?;
        if !slot_root.is_empty() {
            self.sh("depmod", &format!("depmod -b {} {}", q(&self.root), q(&self.kver)), None)?;
        }
        if self.dry_run {
            let meta = Meta { variant: pkg.variant.clone(), version: pkg.version.clone(), ..Default::default() };
            return Ok(Staged { meta, unchanged: false, previous: before.0, displaced: before.1 });
        }
        if let Some(j) = self.read_journal()? {
            return Err(BenchError::env(format!(
                "DKMS installed {} {} on target `{}` but its slot hook stopped at step {}",
                self.module, pkg.version, self.name, j.step
            ))
            .hint(format!("run `bench target recover {}`", self.name)));
        }
        let active = self.read_meta(&self.slot("active"))?.unwrap_or_default();
        if active.version != pkg.version || active.arrived != "dkms" {
            let unchanged = before.0.as_ref().is_some_and(|b| b.version == pkg.version);
            if unchanged && active.version == pkg.version {
                return Ok(Staged { meta: active, unchanged: true, previous: None, displaced: None });
            }
            return Err(BenchError::env(format!(
                "DKMS ran on target `{}` but the active slot holds {} (version `{}`, arrived `{}`), not the package's {}",
                self.name, active.variant, active.version, active.arrived, pkg.version
            ))
            .cause(said)
            .hint("the package's dkms.conf must keep its PRE_INSTALL/POST_INSTALL lines (bench-slots.sh)"));
        }
        if active.srcversion.is_empty() || active.srcversion == "unknown" {
            // An unidentifiable module is not left active: the previous one comes back.
            let back = match &before.0 {
                Some(prev) => {
                    self.rollback()?;
                    format!("rolled back: {} (srcversion {}) is active again", prev.variant, prev.srcversion)
                }
                None => "there is no previous module to go back to: it stays installed".to_string(),
            };
            return Err(BenchError::new(
                Kind::Failed,
                format!(
                    "modinfo cannot read a srcversion in the module DKMS built on target `{}` ({} {}): {back}",
                    self.name, self.module, pkg.version
                ),
            )
            .hint("a module needs MODULE_VERSION (or CONFIG_MODULE_SRCVERSION_ALL) for modpost to give it a srcversion; the module is kept in forensics"));
        }
        if let Some(want) = &pkg.predicted_srcversion {
            if !want.is_empty() && active.srcversion != *want {
                return Err(BenchError::new(
                    Kind::Failed,
                    format!(
                        "the module DKMS built on target `{}` has srcversion {}, the package predicted {want}",
                        self.name, active.srcversion
                    ),
                )
                .hint(format!(
                    "it is installed and active; the previous module is in the rollback slot: `bench rollback --target {}`",
                    self.name
                )));
            }
        }
        let displaced = before.1.filter(|_| before.0.is_some());
        Ok(Staged { meta: active, unchanged: false, previous: before.0, displaced })
    }

    /// Puts the package where the target's DKMS reads it; returns that path and the root
    /// the hook keeps its slots under, both as DKMS sees them. In the kernel lab its
    /// chroot's DKMS builds for the lab kernel and installs into the lab disk, bound into
    /// the chroot at /lab/disk.
    fn upload_for_dkms(&mut self, name: &str, tarball: &[u8]) -> Result<(String, String)> {
        let Some(lab) = &self.lab else {
            let file = format!("{}/incoming/{name}", self.state);
            self.put("upload package", &file, tarball)?;
            return Ok((file, self.root.clone()));
        };
        let local = lab.chroot.join("lab/stage").join(name);
        if !self.dry_run {
            std::fs::create_dir_all(local.parent().expect("has a parent"))
                .or_env("cannot create /lab/stage in the lab")?;
            crate::fsutil::write_synced(&local, tarball, false)?;
            // The lab kernel loads only modules signed with the lab key: the chroot's DKMS
            // signs what it builds with it.
            let conf = lab.chroot.join("etc/dkms/framework.conf.d/bench-lab.conf");
            std::fs::create_dir_all(conf.parent().expect("has a parent"))
                .or_env("cannot create the lab's DKMS configuration directory")?;
            crate::fsutil::write_synced(&conf, crate::lab::DKMS_SIGNING_CONF.as_bytes(), false)?;
        }
        self.log.push(format!("upload package: {}", local.display()));
        Ok((format!("/lab/stage/{name}"), "/lab/disk".to_string()))
    }

    /// The target's `dkms` with what it needs here: the hook's slot root and state
    /// directory, the target's dkms_options, and on a root directory its module tree.
    fn dkms_command(&self, slot_root: &str) -> String {
        let mut dkms = String::new();
        if !slot_root.is_empty() {
            dkms += &format!("BENCH_SLOT_ROOT={} ", q(slot_root));
        }
        if let Some(d) = &self.cfg.state_dir {
            dkms += &format!("BENCH_SLOT_STATE_DIR={} ", q(d));
        }
        dkms += "dkms";
        if self.lab.is_some() {
            dkms += " --kernelsourcedir /build/linux";
        }
        for o in &self.cfg.dkms_options {
            dkms += &format!(" {}", q(o));
        }
        if !slot_root.is_empty() {
            // DKMS's own depmod works on this machine's /lib/modules, not on a root
            // directory: bench runs `depmod -b` there after the install instead.
            dkms += &format!(" --no-depmod --installtree {}", q(&format!("{slot_root}/lib/modules")));
        }
        dkms
    }

    /// One DKMS command on the target; a refusal names DKMS's reason (exit 77: the
    /// package's BUILD_EXCLUSIVE, such as CONFIG_RUST, does not hold for the kernel).
    fn dkms_step(&mut self, what: &str, script: &str, pkg: &PackageId) -> Result<String> {
        let wrapped = format!("{script} > /tmp/.bench-dkms.$$ 2>&1; rc=$?; cat /tmp/.bench-dkms.$$; rm -f /tmp/.bench-dkms.$$; echo \"rc=$rc\"");
        let out = match &self.lab {
            Some(lab) => {
                self.log.push(format!("{what} (in the lab's chroot): {script}"));
                if self.dry_run {
                    return Ok(String::new());
                }
                lab.sh_out(&wrapped)?
            }
            None => self.sh(what, &wrapped, None)?,
        };
        if self.dry_run {
            return Ok(String::new());
        }
        let rc = out.lines().last().and_then(|l| l.strip_prefix("rc=")).and_then(|c| c.parse::<i32>().ok());
        let text: Vec<&str> = out.lines().filter(|l| !l.starts_with("rc=")).collect();
        let tail = text[text.len().saturating_sub(12)..].join("\n");
        match rc {
            Some(0) => Ok(tail),
            Some(77) => Err(BenchError::env(format!(
                "the target's DKMS refused to build {} {} for kernel {} (exit 77: the kernel lacks what the package's BUILD_EXCLUSIVE needs)",
                self.module, pkg.version, self.kver
            ))
            .cause(tail)
            .hint("the package needs a kernel with CONFIG_RUST; nothing was installed and the active module is unchanged")),
            _ => Err(BenchError::env(format!(
                "`{what}` of {} {} failed on target `{}` (exit {})",
                self.module,
                pkg.version,
                self.name,
                rc.map_or("?".into(), |c| c.to_string())
            ))
            .cause(tail)
            .hint("nothing was activated unless the DKMS install itself ran: see `bench target status`")),
        }
    }

    /// Undoes a stage whose module was not verified yet: no slot had changed, so only the
    /// staging copy and the journal go, then the lock.
    fn undo_unverified_stage(&mut self) -> Result<()> {
        let undo =
            format!("rm -rf {} {}", q(&format!("{}/staging", self.state)), q(&format!("{}/journal", self.state)));
        self.sh("undo", &undo, None)?;
        self.unlock()
    }

    /// The steps after `prepared`, each idempotent.
    fn stage_forward(&mut self, j: &mut Journal) -> Result<()> {
        let failed = j.failed;
        if j.step < Step::RollbackDisplaced {
            if !failed {
                let rb = self.slot("rollback");
                self.retire("displace rollback", &rb)?;
            }
            fault_point("rollback-displaced");
            j.step = Step::RollbackDisplaced;
            self.journal(j)?;
        }
        if j.step < Step::ActiveDemoted {
            let active = self.slot("active");
            if failed {
                self.retire("retire failed active", &active)?;
            } else {
                self.slots("demote active", &format!("slots_demote {}", q(&self.state)))?;
            }
            fault_point("active-demoted");
            j.step = Step::ActiveDemoted;
            self.journal(j)?;
        }
        if j.step < Step::Promoted {
            self.slots("promote staged", &format!("slots_promote {} staging", q(&self.state)))?;
            fault_point("promoted");
            j.step = Step::Promoted;
            self.journal(j)?;
        }
        self.install_active()?;
        self.finish()
    }

    fn finish(&mut self) -> Result<()> {
        self.slots("finish", &format!("slots_finish {}", q(&self.state))).map(|_| ())
    }

    /// Restores the rollback slot; the replaced module is kept in forensics.
    pub fn rollback(&mut self) -> Result<Meta> {
        if !self.dry_run && !self.exists(&self.slot("rollback"))? {
            return Err(BenchError::usage(format!("target `{}` has no rollback module", self.name))
                .hint("stage a module first; the one it replaces becomes the rollback"));
        }
        self.lock("bench rollback")?;
        let mut j = Journal::new(Op::Rollback);
        let r = self.journal(&j).and_then(|_| {
            fault_point("rollback-begin");
            self.rollback_forward(&mut j)
        });
        // On an error the journal and lock stay: `recover` completes the rollback.
        r?;
        Ok(self.read_meta(&self.slot("active"))?.unwrap_or_default())
    }

    fn rollback_forward(&mut self, j: &mut Journal) -> Result<()> {
        if j.step == Step::Begin {
            let (a, r) = (self.slot("active"), self.slot("rollback"));
            // Retire active only while the rollback is still waiting to be promoted.
            if self.dry_run || (self.exists(&a)? && self.exists(&r)?) {
                self.retire("retire active", &a)?;
            }
            fault_point("active-retired");
            j.step = Step::ActiveRetired;
            self.journal(j)?;
        }
        if j.step == Step::ActiveRetired {
            self.slots("promote rollback", &format!("slots_promote {} slots/rollback", q(&self.state)))?;
            fault_point("rollback-promoted");
            j.step = Step::Promoted;
            self.journal(j)?;
        }
        self.install_active()?;
        self.finish()
    }

    /// Completes or undoes an interrupted operation. Returns what was done.
    pub fn recover(&mut self) -> Result<String> {
        let Some(mut j) = self.read_journal()? else {
            let lock = format!("{}/lock", self.state);
            if self.exists(&lock)? {
                self.unlock()?;
                return Ok("no interrupted operation; removed a stale lock".into());
            }
            return Ok("nothing to recover".into());
        };
        let step = j.step;
        match (j.op, step) {
            (Op::Stage, Step::Begin) => {
                self.undo_unverified_stage()?;
                Ok("undid an interrupted stage (the module was not verified yet; nothing had changed)".into())
            }
            (Op::Stage, _) => {
                self.stage_forward(&mut j)?;
                Ok(format!("completed an interrupted stage of {} (from step {step})", j.variant))
            }
            (Op::Rollback, _) => {
                self.rollback_forward(&mut j)?;
                Ok(format!("completed an interrupted rollback (from step {step})"))
            }
            (Op::Dkms, _) => {
                // The library makes the active slot what DKMS left installed (or puts
                // the previous module back when DKMS had not installed the new one).
                let calls = format!("slots_dkms_recover {} {} {}", q(&self.state), q(&self.moddir), q(&self.module));
                let did = self.slots("recover dkms install", &calls)?.trim().to_string();
                if self.exists(&self.slot("active"))? {
                    self.install_active()?;
                }
                self.finish()?;
                Ok(format!("interrupted DKMS install of {} {} (at step {step}): {did}", j.variant, j.version))
            }
        }
    }

    /// Slots and the loaded module.
    pub fn status(&self) -> Result<Status> {
        let mut slots = Vec::new();
        for s in ["active", "rollback"] {
            if let Some(m) = self.read_meta(&self.slot(s))? {
                let ok = self.sha256_of(&format!("{}/{}.ko", self.slot(s), self.module))?.as_deref()
                    == Some(m.sha256.as_str());
                slots.push((s.to_string(), m, ok));
            }
        }
        let list =
            self.sh_read(&format!("ls {} 2>/dev/null || true", q(&format!("{}/forensics", self.state))), None)?;
        for d in list.lines().filter(|l| !l.is_empty()) {
            let dir = format!("{}/forensics/{d}", self.state);
            if let Some(m) = self.read_meta(&dir)? {
                let ok = self.sha256_of(&format!("{dir}/{}.ko", self.module))?.as_deref() == Some(m.sha256.as_str());
                slots.push((format!("forensics/{d}"), m, ok));
            }
        }
        let loaded = self
            .sh_read(
                &format!(
                    "cat {} 2>/dev/null || true",
                    q(&format!("{}/sys/module/{}/srcversion", self.root, self.module))
                ),
                None,
            )?
            .trim()
            .to_string();
        let installed = self.sha256_of(&format!("{}/{}.ko", self.moddir, self.module))?;
        Ok(Status {
            slots,
            loaded_srcversion: if loaded.is_empty() { None } else { Some(loaded) },
            installed_sha256: installed,
            journal: self.read_journal()?,
            lock_holder: self.read_file(&format!("{}/lock/holder", self.state))?.map(|h| h.trim().to_string()),
        })
    }

    /// `rmmod` then `modprobe`, and the loaded srcversion.
    pub fn reload(&mut self) -> Result<String> {
        if !self.root.is_empty() {
            return Err(BenchError::usage(format!(
                "--reload needs a live kernel: target `{}` is a root directory",
                self.name
            )));
        }
        self.sh("reload", &format!("rmmod {m} 2>/dev/null || true; modprobe {m}", m = self.module), None)?;
        Ok(self.sh_read(&format!("cat /sys/module/{}/srcversion", self.module), None)?.trim().to_string())
    }
}

impl Drop for Target {
    fn drop(&mut self) {
        if self.cfg.transport == Transport::Ssh {
            let _ = Command::new("ssh")
                .args(["-o", &format!("ControlPath={}", self.control_path()), "-O", "exit", "x"])
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .status();
        }
    }
}

pub struct Status {
    pub slots: Vec<(String, Meta, bool)>,
    pub loaded_srcversion: Option<String>,
    pub installed_sha256: Option<String>,
    pub journal: Option<Journal>,
    /// Who holds the target's lock, if anyone (a bench command, or a DKMS install).
    pub lock_holder: Option<String>,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(toml_text: &str) -> Result<BenchToml> {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("bench.toml"), toml_text).unwrap();
        load_config(dir.path())
    }

    #[test]
    fn values_that_reach_ssh_or_paths_are_validated() {
        let cases = [
            ("[targets.t]\ntransport = \"ssh\"\nhost = \"-V\"\n", "bench.toml:3: host `-V` is not allowed"),
            ("[targets.t]\ntransport = \"ssh\"\nhost = \"-oProxyCommand=x\"\n", "host `-oProxyCommand=x`"),
            ("[targets.t]\ntransport = \"ssh\"\nhost = \"a b\"\n", "host `a b`"),
            ("module = \"../../evil\"\n", "bench.toml:1: module `../../evil` is not allowed"),
            ("module = \"-x\"\n", "module `-x`"),
            ("[targets.t]\ntransport = \"ssh\"\nhost = \"h\"\nuser = \"-l\"\n", "user `-l`"),
            ("[targets.t]\ntransport = \"ssh\"\nhost = \"h\"\nmodule_dir = \"../x\"\n", "module_dir `../x`"),
            ("[targets.t]\ntransport = \"ssh\"\nhost = \"h\"\noptions = [\"-F/tmp/x\"]\n", "ssh option `-F/tmp/x`"),
            ("[targets.t]\ntransport = \"ssh\"\nhost = \"h\"\nkernel = \"6.1;rm\"\n", "kernel `6.1;rm`"),
        ];
        for e in crate::error::assert_each_fails(&cases, Kind::Usage, check) {
            assert!(e.hint.is_some(), "{}: says what would be right", e.message);
        }
        let ok = check("module = \"bes2600\"\n[targets.ohm]\ntransport = \"ssh\"\nhost = \"ohm.local\"\nuser = \"root\"\nmodule_dir = \"updates/dkms\"\nkernel = \"6.19.10\"\n");
        assert!(ok.is_ok(), "{:?}", ok.err().map(|e| e.message));
    }
}
