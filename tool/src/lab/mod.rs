//! The kernel lab (DESIGN.md section 9): a Debian unstable chroot made with debootstrap,
//! holding the kernel source and Debian's Rust toolchain; a small Rust-enabled kernel
//! that enforces module signatures with the lab's own key; a busybox initramfs; QEMU.
//!
//! Layout of the lab directory: `chroot/` (everything runs in there: `/build/linux` is the
//! kernel tree, `/lab` the lab's work area), `stamps/` (one file per setup step holding
//! the hash of its inputs: a step whose stamp matches is not run again), `disk/` (the
//! VM's module tree, a `lab` target's root, packed into the initramfs at every boot),
//! `runs/` (console logs).

pub mod console;
pub mod kcsan;
pub mod mirror;
use crate::error::ResultExt;
use crate::error::{BenchError, Kind, Result};
use crate::ui::Ui;
use sha2::{Digest, Sha256};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Instant;

const PACKAGES: &str = "linux-source-7.2 rustc rust-src bindgen libclang-dev clang lld llvm gcc make bc flex bison \
libelf-dev libssl-dev dwarves python3 kmod cpio xz-utils busybox-static dkms openssl qemu-system-x86";

/// The lab kernel: tinyconfig plus what a Rust module, signatures and the VM need. ACPI
/// brings up QEMU's second CPU (its MADT lists every CPU; the BIOS's MP table lists only
/// the CPUs that answered it in time, which under TCG was one).
const KERNEL_SCRIPT: &str = r#"set -e
mkdir -p /build && cd /build
[ -d linux ] || { tar -xf /usr/src/linux-source-7.2.tar.xz; mv linux-source-7.2 linux; }
cd linux
mkdir -p certs
if [ ! -f certs/lab_key.pem ]; then
  openssl req -new -nodes -utf8 -sha256 -days 36500 -batch -x509 -subj "/CN=bench lab key/" \
    -newkey rsa:2048 -keyout certs/lab_key.pem -out certs/lab_key.x509.pem 2>/dev/null
  cat certs/lab_key.pem certs/lab_key.x509.pem > certs/lab_signing.pem
fi
make LLVM=1 tinyconfig >/dev/null
./scripts/config -e 64BIT -e MODULES -e MODULE_UNLOAD -e PRINTK -e TTY -e SERIAL_8250 -e SERIAL_8250_CONSOLE \
  -e BLK_DEV_INITRD -e RD_GZIP -e BINFMT_ELF -e BINFMT_SCRIPT -e DEVTMPFS -e DEVTMPFS_MOUNT -e PROC_FS -e SYSFS \
  -e DEBUG_FS -e SMP -e RUST -e MODULE_SIG -e MODULE_SIG_FORCE -e MODULE_SIG_SHA256 -e MODULE_SIG_ALL \
  -e MODULE_SRCVERSION_ALL -e EARLY_PRINTK -e BUG -e ACPI -d X86_MPPARSE --set-str MODULE_SIG_KEY certs/lab_signing.pem
make LLVM=1 olddefconfig >/dev/null
for c in RUST MODULE_SIG_FORCE MODULE_SRCVERSION_ALL SMP ACPI; do
  grep -q "^CONFIG_$c=y" .config || { echo "CONFIG_$c did not stick in .config" >&2; exit 1; }
done
make LLVM=1 -j"$(nproc)" bzImage modules_prepare
make LLVM=1 -j"$(nproc)" modules
make -s kernelrelease > /lab/kernel.release
"#;

/// The KCSAN flavour: the lab kernel's own configuration plus KCSAN, in a second tree that
/// trusts the same key; with kallsyms and the frame-pointer unwinder, so that a report's
/// stacks have names and no stale entries (the driver's context is read from them). Its
/// selftest is off: it would add a minute to every boot under TCG.
const KCSAN_KERNEL_SCRIPT: &str = r#"set -e
cd /build
[ -d linux-kcsan ] || { rm -rf linux-source-7.2; tar -xf /usr/src/linux-source-7.2.tar.xz; mv linux-source-7.2 linux-kcsan; }
cd linux-kcsan
mkdir -p certs
cp /build/linux/certs/lab_key.pem /build/linux/certs/lab_key.x509.pem /build/linux/certs/lab_signing.pem certs/
cp /build/linux/.config .config
./scripts/config -e DEBUG_KERNEL -e KCSAN -d KCSAN_SELFTEST -e KALLSYMS -e STACKTRACE \
  -d UNWINDER_GUESS -e UNWINDER_FRAME_POINTER
make LLVM=1 olddefconfig >/dev/null
for c in RUST MODULE_SIG_FORCE MODULE_SRCVERSION_ALL SMP ACPI KCSAN KALLSYMS UNWINDER_FRAME_POINTER; do
  grep -q "^CONFIG_$c=y" .config || { echo "CONFIG_$c did not stick in .config" >&2; exit 1; }
done
make LLVM=1 -j"$(nproc)" bzImage modules_prepare
make LLVM=1 -j"$(nproc)" modules
make -s kernelrelease > /lab/kernel-kcsan.release
"#;

/// Which lab kernel: the plain one, or the same with KCSAN (`bench lab setup --kcsan`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Flavour {
    Plain,
    Kcsan,
}

impl Flavour {
    /// The kernel tree in the chroot.
    pub fn tree(self) -> &'static str {
        match self {
            Flavour::Plain => "/build/linux",
            Flavour::Kcsan => "/build/linux-kcsan",
        }
    }
    fn release_file(self) -> &'static str {
        match self {
            Flavour::Plain => "lab/kernel.release",
            Flavour::Kcsan => "lab/kernel-kcsan.release",
        }
    }
    /// The setup step whose stamp says this kernel is ready.
    fn ready_stamp(self) -> &'static str {
        match self {
            Flavour::Plain => "initramfs",
            Flavour::Kcsan => "kernel-kcsan",
        }
    }
    /// Kernel parameters of this flavour's boots. KCSAN sets a watchpoint on one plain
    /// access in `skip_watch` (4000 by default), mostly the kernel's own, and holds it
    /// `udelay_task` microseconds (80). The driver's checked accesses are a small share, and
    /// its racing writes come a few hundred per second, so by default a 20 s run of `c` set
    /// 6,000 watchpoints and caught nothing; 100 and 500 us caught 9 races in 20 s at about
    /// twice the boot time.
    fn cmdline(self) -> &'static str {
        match self {
            Flavour::Plain => "",
            Flavour::Kcsan => " kcsan.skip_watch=100 kcsan.udelay_task=500",
        }
    }
    /// Appended to the names of what is built for this kernel (`DIR.lab`, `DIR.lab-kcsan`).
    pub fn suffix(self) -> &'static str {
        match self {
            Flavour::Plain => "",
            Flavour::Kcsan => "-kcsan",
        }
    }
}

/// `/init` of the VM: loads the module named in /lab.conf (or the one installed in the
/// disk's module tree), reports, optionally tries a tampered copy, and powers off.
const INIT_SCRIPT: &str = r#"#!/bin/busybox sh
/bin/busybox --install -s /bin
mount -t proc proc /proc
mount -t sysfs sys /sys
mount -t devtmpfs dev /dev 2>/dev/null
mount -t debugfs none /sys/kernel/debug 2>/dev/null
MODULE=installed
PARAMS=
TAMPERED=
[ -f /lab.conf ] && . /lab.conf
echo "bench-lab: booted $(uname -r) cpus $(grep -c ^processor /proc/cpuinfo)"
if [ -n "$TAMPERED" ]; then
  insmod "$TAMPERED" 2>&1 | sed 's/^/bench-lab: tampered: /'
  [ -e /sys/module/bes2600 ] && echo "bench-lab: tampered loaded" || echo "bench-lab: tampered refused"
fi
if [ "$MODULE" = installed ]; then
  MODULE=$(find /lib/modules -name bes2600.ko | head -n 1)
fi
if [ -z "$MODULE" ]; then
  echo "bench-lab: no module"
else
  echo "bench-lab: insmod $MODULE $PARAMS"
  insmod "$MODULE" $PARAMS
  echo "bench-lab: insmod rc=$?"
  [ -e /sys/module/bes2600/srcversion ] && echo "bench-lab: srcversion $(cat /sys/module/bes2600/srcversion)"
fi
[ -r /sys/kernel/debug/kcsan ] && sed -n 's/^\([a-z_]*\): *\([0-9-]*\)$/bench-lab: kcsan \1=\2/p' /sys/kernel/debug/kcsan
echo "bench-lab: done"
reboot -f
"#;

const INITRAMFS_SCRIPT: &str = r#"set -e
rm -rf /lab/base && mkdir -p /lab/base/bin /lab/base/proc /lab/base/sys /lab/base/dev /lab/base/lib/modules
cp /usr/bin/busybox /lab/base/bin/busybox
cp /lab/init /lab/base/init && chmod 755 /lab/base/init
cd /lab/base && find . | cpio -o -H newc 2>/dev/null | gzip -9 > /lab/base.cpio.gz
"#;

pub struct Lab {
    pub dir: PathBuf,
    pub chroot: PathBuf,
}

/// One setup step as it ran.
#[derive(Clone, Debug, serde::Serialize)]
pub struct StepReport {
    pub step: &'static str,
    pub seconds: f64,
    pub cached: bool,
}

/// Unmounts the chroot's /proc when the command is done with the chroot.
struct ProcMount(Option<PathBuf>);

impl Drop for ProcMount {
    fn drop(&mut self) {
        if let Some(p) = &self.0 {
            let _ = Command::new("umount").arg("-l").arg(p).status();
        }
    }
}

fn hash(parts: &[&str]) -> String {
    let mut h = Sha256::new();
    for p in parts {
        h.update(p.as_bytes());
        h.update([0]);
    }
    h.finalize().iter().map(|b| format!("{b:02x}")).collect()
}

fn tail(text: &str, lines: usize) -> String {
    let all: Vec<&str> = text.lines().collect();
    all[all.len().saturating_sub(lines)..].join("\n")
}

impl Lab {
    /// The lab at `dir`, else `BENCH_LAB_DIR`, else `<state dir>/lab`.
    pub fn at(dir: Option<&Path>, root: &Path) -> Lab {
        let dir = dir
            .map(Path::to_path_buf)
            .or_else(|| std::env::var_os("BENCH_LAB_DIR").map(PathBuf::from))
            .unwrap_or_else(|| crate::workspace::ledger::state_dir(root).join("lab"));
        let dir = if dir.is_absolute() { dir } else { root.join(dir) };
        Lab { chroot: dir.join("chroot"), dir }
    }

    pub fn disk(&self) -> PathBuf {
        self.dir.join("disk")
    }

    /// The lab kernel's release, or an error saying how to set the lab up.
    pub fn kernel_release(&self) -> Result<String> {
        self.release_of(Flavour::Plain)
    }

    /// The release of the lab kernel of `flavour`, or an error saying how to make it.
    pub fn release_of(&self, flavour: Flavour) -> Result<String> {
        let p = self.chroot.join(flavour.release_file());
        let ok = self.dir.join("stamps/initramfs").is_file()
            && self.dir.join("stamps").join(flavour.ready_stamp()).is_file();
        match std::fs::read_to_string(&p) {
            Ok(t) if ok && !t.trim().is_empty() => Ok(t.trim().to_string()),
            _ if flavour == Flavour::Kcsan => {
                Err(BenchError::env(format!("the kernel lab at {} has no KCSAN kernel", self.dir.display()))
                    .hint("run `bench lab setup --kcsan` (about 10 more minutes: a second kernel build)"))
            }
            _ => Err(BenchError::env(format!("the kernel lab at {} is not set up", self.dir.display())).hint(
                "run `bench lab setup` (about 6 minutes from nothing; needs root and Debian's package registry)",
            )),
        }
    }

    fn mount_proc(&self) -> Result<ProcMount> {
        let proc_dir = self.chroot.join("proc");
        if is_mounted(&proc_dir) {
            return Ok(ProcMount(None));
        }
        let st = Command::new("mount").args(["-t", "proc", "proc"]).arg(&proc_dir).status();
        match st {
            Ok(s) if s.success() => Ok(ProcMount(Some(proc_dir))),
            _ => Err(BenchError::env(format!("cannot mount proc on {}", proc_dir.display()))
                .hint("the lab needs root (chroot and mount)")),
        }
    }

    /// Runs `script` with bash in the chroot; its output goes to `log`. On failure the
    /// error names the log and shows its last lines.
    pub fn sh(&self, script: &str, log: &Path) -> Result<()> {
        let _proc = self.mount_proc()?;
        if let Some(parent) = log.parent() {
            let _ = std::fs::create_dir_all(parent);
        }
        let out = std::fs::File::create(log).or_env(format!("cannot write {}", log.display()))?;
        let err = out.try_clone().or_env("cannot duplicate a log handle")?;
        let status = Command::new("chroot")
            .arg(&self.chroot)
            .args(["/usr/bin/env", "-i", "PATH=/usr/sbin:/usr/bin:/sbin:/bin", "HOME=/root", "LC_ALL=C.UTF-8"])
            .args(["/bin/bash", "-ec", script])
            .stdin(Stdio::null())
            .stdout(out)
            .stderr(err)
            .status()
            .map_err(|e| BenchError::env("cannot run chroot").cause(e.to_string()).hint("the lab needs root"))?;
        if !status.success() {
            let text = std::fs::read_to_string(log).unwrap_or_default();
            return Err(
                BenchError::env(format!("a lab step failed ({status}); log: {}", log.display())).cause(tail(&text, 12))
            );
        }
        Ok(())
    }

    /// Runs `script` in the chroot and returns its stdout.
    pub fn sh_out(&self, script: &str) -> Result<String> {
        let log = self.dir.join("runs/last-command.log");
        self.sh(&format!("{{ {script}\n}} > /lab/.out"), &log)?;
        std::fs::read_to_string(self.chroot.join("lab/.out")).or_env("cannot read a lab command's output")
    }
}

/// DKMS in the lab's chroot signs the modules it builds with the lab key (the only key
/// the lab kernel trusts), with the kernel's own sign-file.
pub const DKMS_SIGNING_CONF: &str = "# Written by bench: modules DKMS builds here are signed with the lab key.
sign_file=/build/linux/scripts/sign-file
mok_signing_key=/build/linux/certs/lab_key.pem
mok_certificate=/build/linux/certs/lab_key.x509.pem
";

/// The lab disk bound into the chroot at /lab/disk while this lives (the chroot's DKMS
/// installs there for `bench stage --target vm --package`).
pub struct DiskBinding(PathBuf);

impl Drop for DiskBinding {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg(&self.0).status();
    }
}

/// Binds the lab disk at /lab/disk in the chroot.
pub fn bind_disk(lab: &Lab) -> Result<DiskBinding> {
    need_root()?;
    let at = lab.chroot.join("lab/disk");
    std::fs::create_dir_all(&at).or_env(format!("cannot create {}", at.display()))?;
    std::fs::create_dir_all(lab.disk()).or_env(format!("cannot create {}", lab.disk().display()))?;
    if is_mounted(&at) {
        let _ = Command::new("umount").arg(&at).status();
    }
    let ok = Command::new("mount").arg("--bind").arg(lab.disk()).arg(&at).status();
    match ok {
        Ok(s) if s.success() => Ok(DiskBinding(at)),
        _ => Err(BenchError::env(format!("cannot bind {} at {}", lab.disk().display(), at.display()))
            .hint("the lab needs root (mount)")),
    }
}

/// Whether something is mounted at `at` (this process's view of the mounts).
fn is_mounted(at: &Path) -> bool {
    let mounts = std::fs::read_to_string("/proc/self/mounts").unwrap_or_default();
    let at = at.display().to_string();
    mounts.lines().any(|l| l.split_whitespace().nth(1) == Some(at.as_str()))
}

fn need_root() -> Result<()> {
    let out = Command::new("id").arg("-u").output().or_env("cannot run id")?;
    if String::from_utf8_lossy(&out.stdout).trim() != "0" {
        return Err(BenchError::env("the kernel lab needs root (debootstrap, chroot, mount)")
            .hint("run bench lab as root, e.g. with sudo"));
    }
    Ok(())
}

/// Builds (or finds cached) every part of the lab, and the KCSAN kernel when `kcsan`. Each
/// step's stamp hashes its inputs and the stamp of the step it builds on, so a changed step
/// redoes what depends on it (the KCSAN kernel builds on the plain kernel's configuration).
pub fn setup(lab: &Lab, kcsan: bool, ui: &Ui) -> Result<Vec<StepReport>> {
    need_root()?;
    std::fs::create_dir_all(lab.dir.join("stamps")).or_env(format!("cannot create {}", lab.dir.display()))?;
    let mirror = mirror::mirror()?;
    // (step, the step it builds on, its inputs). The KCSAN kernel builds on the plain
    // kernel, not on the initramfs.
    let mut steps: Vec<(&'static str, &'static str, String)> = vec![
        ("chroot", "", hash(&["debootstrap --variant=minbase sid", &mirror])),
        ("packages", "chroot", hash(&[PACKAGES])),
        ("kernel", "packages", hash(&[KERNEL_SCRIPT])),
        ("initramfs", "kernel", hash(&[INITRAMFS_SCRIPT, INIT_SCRIPT])),
    ];
    if kcsan {
        steps.push(("kernel-kcsan", "kernel", hash(&[KCSAN_KERNEL_SCRIPT])));
    }
    let mut reports = Vec::new();
    let mut chains: std::collections::BTreeMap<&str, String> = std::collections::BTreeMap::new();
    for (step, after, inputs) in steps {
        let base = chains.get(after).cloned().unwrap_or_default();
        let chain = hash(&[&base, &inputs]);
        chains.insert(step, chain.clone());
        let stamp = lab.dir.join("stamps").join(step);
        let started = Instant::now();
        if std::fs::read_to_string(&stamp).ok().as_deref() == Some(chain.as_str()) {
            reports.push(StepReport { step, seconds: started.elapsed().as_secs_f64(), cached: true });
            ui.status(format!("lab setup: {step:<12} cached"));
            continue;
        }
        let _ = std::fs::remove_file(&stamp);
        let spinner = ui.spinner(format!("lab setup: {step}"));
        let log = lab.dir.join("runs").join(format!("setup-{step}.log"));
        let result = match step {
            "chroot" => debootstrap(lab, &mirror, &log),
            "packages" => lab.sh(
                &format!(
                    "export DEBIAN_FRONTEND=noninteractive\n\
                     apt-get -o Acquire::Check-Valid-Until=false update\n\
                     apt-get -o Acquire::Check-Valid-Until=false install -y --no-install-recommends {PACKAGES}\n\
                     mkdir -p /lab"
                ),
                &log,
            ),
            "kernel" => lab.sh(KERNEL_SCRIPT, &log),
            "kernel-kcsan" => lab.sh(KCSAN_KERNEL_SCRIPT, &log),
            _ => std::fs::write(lab.chroot.join("lab/init"), INIT_SCRIPT)
                .or_env("cannot write the lab's /init")
                .and_then(|()| lab.sh(INITRAMFS_SCRIPT, &log)),
        };
        spinner.finish_and_clear();
        result?;
        std::fs::write(&stamp, &chain).or_env(format!("cannot write {}", stamp.display()))?;
        let seconds = started.elapsed().as_secs_f64();
        ui.status(format!("lab setup: {step:<12} {seconds:.1} s"));
        reports.push(StepReport { step, seconds, cached: false });
    }
    std::fs::create_dir_all(lab.disk().join("lib/modules")).or_env("cannot create the lab disk")?;
    Ok(reports)
}

fn debootstrap(lab: &Lab, mirror: &str, log: &Path) -> Result<()> {
    if Command::new("debootstrap").arg("--version").stdout(Stdio::null()).stderr(Stdio::null()).status().is_err() {
        return Err(BenchError::env("debootstrap is not installed").hint("apt-get install -y debootstrap"));
    }
    // A half-made chroot from an interrupted run is started over.
    let _ = std::fs::remove_dir_all(&lab.chroot);
    let _ = std::fs::create_dir_all(lab.dir.join("runs"));
    let out = std::fs::File::create(log).or_env(format!("cannot write {}", log.display()))?;
    let err = out.try_clone().or_env("cannot duplicate a log handle")?;
    let status = Command::new("debootstrap")
        .args(["--variant=minbase", "sid"])
        .arg(&lab.chroot)
        .arg(mirror)
        .stdout(out)
        .stderr(err)
        .status()
        .or_env("cannot run debootstrap")?;
    if !status.success() {
        let text = std::fs::read_to_string(log).unwrap_or_default();
        return Err(BenchError::env(format!("debootstrap failed; log: {}", log.display())).cause(tail(&text, 8)));
    }
    std::fs::create_dir_all(lab.chroot.join("lab")).or_env("cannot create /lab in the chroot")
}

/// A package built into a module for the lab kernel.
#[derive(Clone, Debug, serde::Serialize)]
pub struct LabModule {
    pub kernel_release: String,
    /// The lab kernel it was built for.
    pub flavour: Flavour,
    /// The signed module (host path).
    pub ko: PathBuf,
    pub srcversion: String,
    pub predicted_srcversion: String,
    pub signer: String,
    pub sha256: String,
    /// `modinfo -F version`: the package version.
    pub version: String,
    /// `warning:` lines of the DKMS build's make.log, as the compiler printed them.
    pub compiler_warnings: Vec<String>,
}

/// Builds the package with dkms inside the lab against the lab kernel of `flavour`, signs
/// the module with `bench sign-module`'s code and the lab key, and checks srcversion
/// against the prediction. Output goes to `out_dir`.
pub fn build_module(
    lab: &Lab,
    flavour: Flavour,
    tarball: &Path,
    version: &str,
    predicted: &str,
    out_dir: &Path,
) -> Result<LabModule> {
    need_root()?;
    let kver = lab.release_of(flavour)?;
    let work = lab.chroot.join("lab/pkg");
    let _ = std::fs::remove_dir_all(&work);
    std::fs::create_dir_all(&work).or_env("cannot create /lab/pkg")?;
    std::fs::copy(tarball, work.join("package.dkms.tar.gz")).or_env(format!("cannot copy {}", tarball.display()))?;
    let q = crate::shell::q;
    // Whatever happens, the build's make.log is kept and the version leaves dkms's tree (a
    // failed build would otherwise stay registered there).
    let script = format!(
        "done_() {{ cat /var/lib/dkms/bes2600/{v}/{k}/*/log/make.log > /lab/pkg/make.log 2>/dev/null \
           || cat /var/lib/dkms/bes2600/{v}/build/make.log > /lab/pkg/make.log 2>/dev/null || : > /lab/pkg/make.log\n\
           dkms remove -m bes2600 -v {v} --all >/dev/null 2>&1 || true\n\
           rm -rf /var/lib/dkms/bes2600/{v} /usr/src/bes2600-{v}; }}\n\
         trap done_ EXIT\n\
         dkms remove -m bes2600 -v {v} --all >/dev/null 2>&1 || true\n\
         rm -rf /var/lib/dkms/bes2600/{v} /usr/src/bes2600-{v}\n\
         dkms ldtarball /lab/pkg/package.dkms.tar.gz\n\
         dkms build -m bes2600 -v {v} -k {k} --kernelsourcedir {tree}\n\
         cp /var/lib/dkms/bes2600/{v}/{k}/*/module/bes2600.ko /lab/pkg/bes2600.built.ko",
        v = q(version),
        k = q(&kver),
        tree = flavour.tree()
    );
    let log = lab.dir.join("runs").join(format!("dkms-{version}{}.log", flavour.suffix()));
    lab.sh(&script, &log).map_err(|failed| {
        let make_log = std::fs::read_to_string(work.join("make.log")).unwrap_or_default();
        let errors = compiler_errors(&make_log);
        let e = BenchError::new(Kind::Environment, format!("dkms could not build {version} for the lab kernel {kver}"));
        if errors.is_empty() {
            e.cause(failed.message).hint(format!("see {}", log.display()))
        } else {
            let kept = lab.dir.join("runs").join(format!("make-{version}{}.log", flavour.suffix()));
            let _ = std::fs::write(&kept, &make_log);
            e.cause(errors.join("; ")).hint(format!("the compiler's whole output: {}", kept.display()))
        }
    })?;
    // dkms signs modules itself when it finds a key and sign-file; the lab's signature
    // replaces any it appended.
    let built = std::fs::read(work.join("bes2600.built.ko")).or_env("cannot read the module dkms built")?;
    std::fs::write(work.join("bes2600.unsigned.ko"), strip_signature(&built))
        .or_env("cannot write the unsigned module")?;
    let certs = lab.chroot.join("build/linux/certs");
    let signed = crate::modsign::sign_files(
        &work.join("bes2600.unsigned.ko"),
        &certs.join("lab_key.pem"),
        &certs.join("lab_key.x509.pem"),
    )?;
    std::fs::create_dir_all(out_dir).or_env(format!("cannot create {}", out_dir.display()))?;
    let ko = out_dir.join("bes2600.ko");
    crate::fsutil::write_synced(&ko, &signed, false)?;
    std::fs::copy(&ko, work.join("bes2600.ko")).or_env("cannot copy the signed module into the lab")?;
    let info = lab.sh_out(
        "modinfo -F srcversion /lab/pkg/bes2600.ko; modinfo -F signer /lab/pkg/bes2600.ko; modinfo -F version /lab/pkg/bes2600.ko",
    )?;
    let mut lines = info.lines();
    let srcversion = lines.next().unwrap_or("").trim().to_string();
    let signer = lines.next().unwrap_or("").trim().to_string();
    let modinfo_version = lines.next().unwrap_or("").trim().to_string();
    let make_log = std::fs::read_to_string(work.join("make.log")).unwrap_or_default();
    let compiler_warnings: Vec<String> =
        make_log.lines().filter(|l| l.contains("warning:")).map(|l| l.trim().to_string()).collect();
    let module = LabModule {
        kernel_release: kver,
        flavour,
        ko,
        srcversion,
        predicted_srcversion: predicted.to_string(),
        signer,
        sha256: crate::fsutil::sha256_hex(&signed),
        version: modinfo_version,
        compiler_warnings,
    };
    let json = serde_json::to_string_pretty(&module).expect("serialises") + "\n";
    crate::fsutil::write_synced(&out_dir.join("lab.json"), json.as_bytes(), false)?;
    if module.srcversion != predicted {
        return Err(BenchError::new(
            Kind::Failed,
            format!("modinfo shows srcversion {} but bench predicted {predicted}", module.srcversion),
        )
        .hint("the srcversion rule in tool/src/srcversion.rs no longer matches this kernel's modpost"));
    }
    Ok(module)
}

/// The first compiler errors of a make.log, each with its location (`error[E0133]: ... at
/// kmod.rs:299:19`), at most three.
fn compiler_errors(make_log: &str) -> Vec<String> {
    let lines: Vec<&str> = make_log.lines().collect();
    let mut errors = Vec::new();
    for (i, line) in lines.iter().enumerate() {
        if errors.len() == 3 {
            break;
        }
        if !line.starts_with("error") || line.starts_with("error: aborting") {
            continue;
        }
        let at = lines[i + 1..].iter().take(3).find_map(|l| l.trim_start().strip_prefix("--> "));
        errors.push(match at {
            Some(at) => format!("{} at {at}", line.trim()),
            None => line.trim().to_string(),
        });
    }
    errors
}

/// The module without an appended signature (magic, 12-byte trailer, PKCS#7).
fn strip_signature(ko: &[u8]) -> &[u8] {
    const MAGIC: &[u8] = b"~Module signature appended~\n";
    if !ko.ends_with(MAGIC) || ko.len() < MAGIC.len() + 12 {
        return ko;
    }
    let trailer = ko.len() - MAGIC.len() - 12;
    let sig_len = u32::from_be_bytes(ko[trailer + 8..trailer + 12].try_into().expect("4 bytes")) as usize;
    match trailer.checked_sub(sig_len) {
        Some(end) => &ko[..end],
        None => ko,
    }
}

/// What one boot printed and how long it took.
#[derive(Clone, Debug)]
pub struct Boot {
    pub console: String,
    pub log: PathBuf,
    pub seconds: f64,
    pub timed_out: bool,
}

/// Boots the lab kernel of `flavour` under QEMU (`cpus` CPUs, multi-threaded software
/// emulation) with the base initramfs plus a second segment made of the disk's
/// /lib/modules and the files in `extra` (path in the VM, bytes).
pub fn boot(
    lab: &Lab,
    flavour: Flavour,
    extra: &[(&str, Vec<u8>)],
    cpus: u32,
    timeout_s: u64,
    name: &str,
) -> Result<Boot> {
    need_root()?;
    lab.release_of(flavour)?;
    let seg = lab.chroot.join(format!("lab/boot-{name}"));
    let _ = std::fs::remove_dir_all(&seg);
    std::fs::create_dir_all(seg.join("lib")).or_env("cannot stage the boot files")?;
    let disk_modules = lab.disk().join("lib/modules");
    if disk_modules.is_dir() {
        let st = Command::new("cp").arg("-a").arg(&disk_modules).arg(seg.join("lib/")).status();
        if !st.map(|s| s.success()).unwrap_or(false) {
            return Err(BenchError::env("cannot copy the lab disk's module tree"));
        }
    }
    for (path, bytes) in extra {
        let p = seg.join(path.trim_start_matches('/'));
        if let Some(parent) = p.parent() {
            let _ = std::fs::create_dir_all(parent);
        }
        std::fs::write(&p, bytes).or_env(format!("cannot write {}", p.display()))?;
    }
    let log = lab.dir.join("runs").join(format!("{name}.console.log"));
    let script = format!(
        "cd /lab/boot-{name} && find . | cpio -o -H newc 2>/dev/null | gzip > /lab/boot-{name}.cpio.gz\n\
         cat /lab/base.cpio.gz /lab/boot-{name}.cpio.gz > /lab/initrd-{name}\n\
         exec timeout -s KILL {timeout_s} qemu-system-x86_64 -accel tcg,thread=multi -smp {cpus} -m 256 -no-reboot -nographic \
         -kernel {tree}/arch/x86/boot/bzImage -initrd /lab/initrd-{name} -append 'console=ttyS0 panic=-1{extra}'",
        tree = flavour.tree(),
        extra = flavour.cmdline()
    );
    let started = Instant::now();
    let result = lab.sh(&script, &log);
    let seconds = started.elapsed().as_secs_f64();
    let console = std::fs::read_to_string(&log).unwrap_or_default();
    let timed_out = result.is_err() && !console.contains("bench-lab: done");
    if result.is_err() && !timed_out && !console.contains("reboot: Restarting") {
        return Err(result.expect_err("checked"));
    }
    Ok(Boot { console, log, seconds, timed_out })
}

/// The lab module of `variant`'s newest build that has one: the build ledger names each
/// package's directory (wherever `--out` put it), and `bench build --kernel lab` writes
/// the module beside it in `DIR.lab/`.
pub fn newest_module(root: &Path, variant: &str) -> Result<PathBuf> {
    let records = crate::workspace::ledger::read(root)?;
    let found = records.iter().rev().filter(|r| r.variant == variant).find_map(|r| {
        let ko = PathBuf::from(format!("{}.lab", r.path)).join("bes2600.ko");
        ko.is_file().then_some(ko)
    });
    found.ok_or_else(|| {
        BenchError::usage(format!("no lab build of `{variant}` in the build ledger"))
            .hint(format!("bench build --variant {variant} --kernel lab, or give --ko FILE"))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn compiler_errors_are_read_with_their_locations() {
        let log =
            "warning: unused\n  --> a.rs:1:1\nerror[E0133]: call to unsafe function\n   --> kmod.rs:299:19\n    |\n\
            error: cannot find value `x`\nerror: aborting due to 2 previous errors\n";
        assert_eq!(
            compiler_errors(log),
            ["error[E0133]: call to unsafe function at kmod.rs:299:19", "error: cannot find value `x`"]
        );
        assert!(compiler_errors("make: ok\n").is_empty());
    }

    #[test]
    fn an_appended_signature_is_stripped_and_an_unsigned_module_kept() {
        let mut ko = b"\x7fELF module body".to_vec();
        let body = ko.clone();
        ko.extend_from_slice(b"PKCS7");
        ko.extend_from_slice(&[0, 0, 2, 0, 0, 0, 0, 0, 0, 0, 0, 5]);
        ko.extend_from_slice(b"~Module signature appended~\n");
        assert_eq!(strip_signature(&ko), &body[..]);
        assert_eq!(strip_signature(&body), &body[..]);
    }
}
