//! A lab run: a variant built with dkms for the lab kernel (the one build pipeline,
//! `package::build`), booted in QEMU with the module loaded under stress (and a tampered
//! copy offered when asked), its console read and judged. It sits above `package` and
//! `lab`, which it joins.

use crate::error::ResultExt;
use crate::error::{BenchError, Kind, Result};
use crate::lab::console::{self, Outcome, RunOutcome};
use crate::lab::{self, Boot, Lab, LabModule};
use crate::ui::Ui;
use std::path::Path;

/// What to run.
pub struct RunRequest<'a> {
    pub variant: &'a str,
    /// Offered RX rate over the air, MB/s (10^6 B/s), and the stress's length.
    pub mb_per_s: f64,
    pub secs: f64,
    /// Stall one plain load in `stall_every` for `stall_us` (0: never).
    pub stall_every: u64,
    pub stall_us: u64,
    /// Also offer a copy with one byte changed: the kernel must refuse it.
    pub tamper: bool,
    /// CPUs of the VM; the console must show them all up.
    pub cpus: u32,
    /// The plain lab kernel, or its KCSAN flavour.
    pub flavour: lab::Flavour,
}

/// What a run gave.
pub struct LabRun {
    pub module: LabModule,
    pub boot: Boot,
    pub console: RunOutcome,
    pub outcome: Outcome,
    /// One line per problem found (empty when clean).
    pub problems: Vec<String>,
    /// The fields the run found broken, each with whether the package's audit names it.
    pub fields: Vec<console::FieldFinding>,
}

/// Builds, boots and judges. A build or boot that fails is an environment error (the
/// command turns it into "could not test").
pub fn run_variant(root: &Path, lab: &Lab, r: &RunRequest, ui: &Ui) -> Result<LabRun> {
    lab.release_of(r.flavour)?;
    let req = crate::package::build::BuildRequest {
        variants: Some(vec![r.variant.to_string()]),
        out: Path::new("dist"),
        key: None,
        allow_violations: true,
        lab: Some(crate::package::build::LabKernel { dir: Some(&lab.dir), flavour: r.flavour }),
    };
    let built = crate::package::build::build(root, &req, ui)
        .map_err(|e| {
            if e.kind == Kind::Usage {
                e
            } else {
                BenchError::env(format!("could not build {} for the lab", r.variant)).cause(e.message)
            }
        })?
        .built;
    let built = built.into_iter().next().ok_or_else(|| BenchError::env("no lab module was built"))?;
    let audit_violations = read_audit(&built.dir);
    let module = built.lab.ok_or_else(|| BenchError::env("no lab module was built"))?;
    let ko = std::fs::read(&module.ko).or_env(format!("cannot read {}", module.ko.display()))?;
    let stress_ms = (r.secs * 1000.0).round() as u64;
    let rate_kbps = (r.mb_per_s * 1_000_000.0 / 1024.0).round() as u64;
    let mut conf = format!(
        "MODULE=/lab/bes2600.ko\nPARAMS=\"stress_ms={stress_ms} rate_kbps={rate_kbps} stall_every={} stall_us={}\"\n",
        r.stall_every, r.stall_us
    );
    let mut files = vec![("/lab/bes2600.ko", ko.clone())];
    if r.tamper {
        let mut t = ko.clone();
        // One byte of the module's code (not of the signature): the signature no longer holds.
        let at = t.len() / 3;
        t[at] ^= 0x01;
        files.push(("/lab/tampered.ko", t));
        conf.push_str("TAMPERED=/lab/tampered.ko\n");
    }
    files.push(("/lab.conf", conf.into_bytes()));
    let spinner =
        ui.spinner(format!("booting the lab kernel with {} ({} MB/s for {} s)", r.variant, r.mb_per_s, r.secs));
    let name = format!("run-{}{}", r.variant, r.flavour.suffix());
    // KCSAN slows the kernel's own code several times under software emulation.
    let timeout_s = match r.flavour {
        lab::Flavour::Plain => 120 + r.secs as u64 * 3,
        lab::Flavour::Kcsan => 300 + r.secs as u64 * 5,
    };
    let boot = lab::boot(lab, r.flavour, &files, r.cpus, timeout_s, &name);
    spinner.finish_and_clear();
    let boot = boot?;
    let console = console::parse_console(&boot.console);
    let (outcome, problems) = console::judge(&console, &module.srcversion, r.cpus, r.tamper, boot.timed_out);
    let fields = console::field_findings(&console, &audit_violations);
    Ok(LabRun { module, boot, console, outcome, problems, fields })
}

/// The audit's violations recorded in the package's manifest (none when unreadable: the
/// comparison then says the audit did not name a field, which the package shows anyway).
fn read_audit(package_dir: &Path) -> Vec<String> {
    std::fs::read(package_dir.join(crate::package::MANIFEST))
        .ok()
        .and_then(|b| serde_json::from_slice::<crate::package::Manifest>(&b).ok())
        .map(|m| m.audit.violations)
        .unwrap_or_default()
}

/// Several boots of one build: how often the run fails, for a race that shows with some
/// probability.
pub struct Runs {
    pub runs: Vec<LabRun>,
    pub failed: u64,
    pub could_not_test: u64,
    /// The 95% Wilson interval of the failure rate over the runs that tested.
    pub ci95: (f64, f64),
}

impl Runs {
    /// Failed when any run failed (a race seen once is a bug); could not test when no run
    /// tested; clean otherwise.
    pub fn outcome(&self) -> Outcome {
        if self.failed > 0 {
            Outcome::Failed
        } else if self.could_not_test as usize == self.runs.len() {
            Outcome::CouldNotTest
        } else {
            Outcome::Clean
        }
    }
}

/// Runs `n` boots of the variant (built once; the build cache finds it again).
pub fn run_many(root: &Path, lab: &Lab, r: &RunRequest, n: u32, ui: &Ui) -> Result<Runs> {
    let mut runs = Vec::new();
    for i in 0..n {
        ui.status(format!("lab run {} of {n}", i + 1));
        runs.push(run_variant(root, lab, r, ui)?);
    }
    Ok(summarise(runs))
}

fn summarise(runs: Vec<LabRun>) -> Runs {
    let count = |o: Outcome| runs.iter().filter(|r| r.outcome == o).count() as u64;
    let (failed, could_not_test) = (count(Outcome::Failed), count(Outcome::CouldNotTest));
    let tested = runs.len() as u64 - could_not_test;
    Runs { ci95: crate::sim::stress::wilson(failed, tested), failed, could_not_test, runs }
}
