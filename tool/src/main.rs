//! `bench`: a patch-series workbench for the out-of-tree bes2600 driver.

mod bisect;
mod commands;
mod error;
mod fsutil;
mod lab;
mod lab_run;
mod modsign;
mod package;
#[cfg(test)]
mod parser_props;
mod publish;
mod shell;
mod sim;
mod source;
mod target;
mod ui;
mod workspace;

use clap::{Parser, Subcommand};
use std::process::ExitCode;

/// Patch-series workbench for the bes2600 SDIO WiFi driver: build each variant into a
/// signed DKMS package, audit its shared state, run the stress ramp in a simulator, write
/// PR descriptions and patches from lab notes, stage and roll back modules on boards, and
/// bisect regressions. Exit status: 0 ok, 1 the check failed, 2 bad input, 3 environment,
/// 125 could not test (`bench lab run`, for `git bisect run`).
#[derive(Parser, Debug)]
#[command(name = "bench", version, propagate_version = true)]
struct Cli {
    #[command(subcommand)]
    command: Cmd,
}

#[derive(Subcommand, Debug)]
enum Cmd {
    /// Materialise a variant into a signed, srcversion-tagged DKMS package.
    Build(commands::build::BuildArgs),
    /// Run the seed's Phase 7 stress ramp on a variant in the deterministic simulator.
    Stress(commands::stress::StressArgs),
    /// The driver's cost per RX packet counted on its real code path (callgrind), beside the model's.
    Measure(commands::measure::MeasureArgs),
    /// Append the kernel's module signature (as scripts/sign-file sha256 does).
    SignModule(commands::sign_module::SignModuleArgs),
    /// Audit the shared state each context reaches against its contracts.
    Audit(commands::audit::AuditArgs),
    /// Find the variant, feature set or commit that brought a regression.
    Bisect(commands::bisect::BisectArgs),
    /// List and validate lab notes; `notes new` starts one.
    Notes(commands::notes::NotesArgs),
    /// Render a variant's pull-request description (or cover letter) from notes.
    Pr(commands::pr::PrArgs),
    /// Write (or --check) the mailable patch series along the variant chain.
    Patches(commands::patches::PatchesArgs),
    /// Stage a module on a target, keeping the one it replaces for rollback.
    Stage(commands::stage::StageArgs),
    /// Restore the rollback module on a target.
    Rollback(commands::rollback::RollbackArgs),
    /// Target status and recovery of interrupted operations.
    Target(commands::target::TargetArgs),
    /// Check a package's signature and every file's hash.
    Verify(commands::verify::VerifyArgs),
    /// Map a srcversion prefix back to the builds that produced it.
    Identify(commands::identify::IdentifyArgs),
    /// Show the variant tree with status and last srcversion; validates variants/*.toml.
    Variants(commands::variants::VariantsArgs),
    /// The kernel lab: a Rust-enabled kernel in QEMU that builds, loads and stresses the module.
    Lab(commands::lab::LabArgs),
    /// Time `bench build`: a fresh build and unchanged rebuilds (a benchmark).
    BenchBuild(commands::bench_build::BenchBuildArgs),
    /// Time the simulator: one full default ramp per variant (a benchmark, not a test).
    BenchSim(commands::bench_sim::BenchSimArgs),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let ui = ui::Ui::new();
    let result = match &cli.command {
        Cmd::Build(a) => commands::build::run(a, &ui),
        Cmd::Stress(a) => commands::stress::run(a, &ui),
        Cmd::Measure(a) => commands::measure::run(a, &ui),
        Cmd::BenchSim(a) => commands::bench_sim::run(a, &ui),
        Cmd::BenchBuild(a) => commands::bench_build::run(a, &ui),
        Cmd::Variants(a) => commands::variants::run(a, &ui),
        Cmd::Verify(a) => commands::verify::run(a, &ui),
        Cmd::Audit(a) => commands::audit::run(a, &ui),
        Cmd::Stage(a) => commands::stage::run(a, &ui),
        Cmd::Rollback(a) => commands::rollback::run(a, &ui),
        Cmd::Target(a) => commands::target::run(a, &ui),
        Cmd::Notes(a) => commands::notes::run(a, &ui),
        Cmd::Pr(a) => commands::pr::run(a, &ui),
        Cmd::Patches(a) => commands::patches::run(a, &ui),
        Cmd::Bisect(a) => commands::bisect::run(a, &ui),
        Cmd::SignModule(a) => commands::sign_module::run(a, &ui),
        Cmd::Identify(a) => commands::identify::run(a, &ui),
        Cmd::Lab(a) => commands::lab::run(a, &ui),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            ui.error(&e);
            ExitCode::from(e.kind.exit_code())
        }
    }
}
