//! `bench`: a patch-series workbench for the out-of-tree bes2600 driver.

mod audit;
mod bisect;
mod buildcache;
mod cmd_audit;
mod cmd_bench_build;
mod cmd_bench_sim;
mod cmd_bisect;
mod cmd_build;
mod cmd_identify;
mod cmd_lab;
mod cmd_notes;
mod cmd_patches;
mod cmd_pr;
mod cmd_rollback;
mod cmd_sign_module;
mod cmd_stage;
mod cmd_stress;
mod cmd_target;
mod cmd_variants;
mod cmd_verify;
mod error;
mod gitinfo;
mod lab;
mod ledger;
mod materialise;
mod modsign;
mod notes;
mod oracle;
mod pkg;
mod pr;
mod ramp;
mod signing;
mod simbuild;
mod srcversion;
mod target;
mod ui;
mod variant;
mod workspace;

use clap::{Parser, Subcommand};
use std::process::ExitCode;

/// Patch-series workbench for the bes2600 SDIO WiFi driver: build each variant into a
/// signed DKMS package, audit its shared state, run the stress ramp in a simulator, write
/// PR descriptions and patches from lab notes, stage and roll back modules on boards, and
/// bisect regressions. Exit status: 0 ok, 1 the check failed, 2 bad input, 3 environment.
#[derive(Parser, Debug)]
#[command(name = "bench", version, propagate_version = true)]
struct Cli {
    #[command(subcommand)]
    command: Cmd,
}

#[derive(Subcommand, Debug)]
enum Cmd {
    /// Materialise a variant into a signed, srcversion-tagged DKMS package.
    Build(cmd_build::BuildArgs),
    /// Run the seed's Phase 7 stress ramp on a variant in the deterministic simulator.
    Stress(cmd_stress::StressArgs),
    /// Append the kernel's module signature (as scripts/sign-file sha256 does).
    SignModule(cmd_sign_module::SignModuleArgs),
    /// Audit the shared state each context reaches against its contracts.
    Audit(cmd_audit::AuditArgs),
    /// Find the variant, feature set or commit that brought a regression.
    Bisect(cmd_bisect::BisectArgs),
    /// List and validate lab notes; `notes new` starts one.
    Notes(cmd_notes::NotesArgs),
    /// Render a variant's pull-request description (or cover letter) from notes.
    Pr(cmd_pr::PrArgs),
    /// Write (or --check) the mailable patch series along the variant chain.
    Patches(cmd_patches::PatchesArgs),
    /// Stage a module on a target, keeping the one it replaces for rollback.
    Stage(cmd_stage::StageArgs),
    /// Restore the rollback module on a target.
    Rollback(cmd_rollback::RollbackArgs),
    /// Target status and recovery of interrupted operations.
    Target(cmd_target::TargetArgs),
    /// Check a package's signature and every file's hash.
    Verify(cmd_verify::VerifyArgs),
    /// Map a srcversion prefix back to the builds that produced it.
    Identify(cmd_identify::IdentifyArgs),
    /// Show the variant tree with status and last srcversion; validates variants/*.toml.
    Variants(cmd_variants::VariantsArgs),
    /// The kernel lab: a Rust-enabled kernel in QEMU that builds, loads and stresses the module.
    Lab(cmd_lab::LabArgs),
    /// Time `bench build`: a fresh build and unchanged rebuilds (a benchmark).
    BenchBuild(cmd_bench_build::BenchBuildArgs),
    /// Time the simulator: one full default ramp per variant (a benchmark, not a test).
    BenchSim(cmd_bench_sim::BenchSimArgs),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let ui = ui::Ui::new();
    let result = match &cli.command {
        Cmd::Build(a) => cmd_build::run(a, &ui),
        Cmd::Stress(a) => cmd_stress::run(a, &ui),
        Cmd::BenchSim(a) => cmd_bench_sim::run(a, &ui),
        Cmd::BenchBuild(a) => cmd_bench_build::run(a, &ui),
        Cmd::Variants(a) => cmd_variants::run(a, &ui),
        Cmd::Verify(a) => cmd_verify::run(a, &ui),
        Cmd::Audit(a) => cmd_audit::run(a, &ui),
        Cmd::Stage(a) => cmd_stage::run(a, &ui),
        Cmd::Rollback(a) => cmd_rollback::run(a, &ui),
        Cmd::Target(a) => cmd_target::run(a, &ui),
        Cmd::Notes(a) => cmd_notes::run(a, &ui),
        Cmd::Pr(a) => cmd_pr::run(a, &ui),
        Cmd::Patches(a) => cmd_patches::run(a, &ui),
        Cmd::Bisect(a) => cmd_bisect::run(a, &ui),
        Cmd::SignModule(a) => cmd_sign_module::run(a, &ui),
        Cmd::Identify(a) => cmd_identify::run(a, &ui),
        Cmd::Lab(a) => cmd_lab::run(a, &ui),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            ui.error(&e);
            ExitCode::from(e.kind.exit_code())
        }
    }
}
