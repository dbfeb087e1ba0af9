//! `hearsay-sim run FILE [--seed N] [--nodes N] [--json OUT] [--report OUT.html]
//! [--crypto fast|real] [--quiet]` (`--help` describes each flag).
//!
//! Exit codes: 0 every expectation held; 1 an expectation failed (the replay command is printed);
//! 2 the command line or the scenario file is wrong (one message naming file, line and key).

use clap::{Parser, Subcommand, ValueEnum};
use hearsay_sim::run::{RunOptions, run_scenario};
use hearsay_sim::scenario::Scenario;
use hearsay_sim::world::CryptoChoice;
use std::io::IsTerminal;
use std::path::PathBuf;
use std::process::ExitCode;

const EXIT_CODES: &str = "\
Exit codes:
  0  every expectation held
  1  an expectation failed (the command that replays the run is printed)
  2  the command line or the scenario file is wrong";

/// Deterministic network simulator for hearsay nodes: runs a scenario file in virtual time and
/// reports the contract's metrics. The same file and seed always give the same trace hash.
#[derive(Debug, Parser)]
#[command(
    name = "hearsay-sim",
    version,
    arg_required_else_help = true,
    args_override_self = true,
    after_help = EXIT_CODES
)]
struct Cli {
    #[command(subcommand)]
    command: Cmd,
}

#[derive(Debug, Subcommand)]
enum Cmd {
    /// Run one scenario file (format: sim/scenarios/README.md) and print its metrics, the
    /// expectations' verdicts and the trace hash.
    #[command(after_help = EXIT_CODES)]
    Run(RunArgs),
}

#[derive(Debug, clap::Args)]
struct RunArgs {
    /// The scenario file (TOML).
    #[arg(value_name = "FILE")]
    file: PathBuf,
    /// Seed for every random choice; overrides the file's `seed`.
    #[arg(long, value_name = "N")]
    seed: Option<u64>,
    /// Number of nodes (at least 1); overrides the file's `nodes`.
    #[arg(long, value_name = "N", value_parser = positive)]
    nodes: Option<usize>,
    /// Also write the metrics, expectations, warnings and series as JSON to OUT.
    #[arg(long, value_name = "OUT")]
    json: Option<PathBuf>,
    /// Also write a self-contained HTML report with plots to OUT.html.
    #[arg(long, value_name = "OUT.html")]
    report: Option<PathBuf>,
    /// Which crypto the simulated nodes use.
    #[arg(long, value_enum, value_name = "fast|real", default_value_t = Crypto::Fast)]
    crypto: Crypto,
    /// Also list the traffic honest nodes sent by message kind, over the idle window (from 60 s
    /// after the last join or subscribe to the first publish) or, without one, the whole run.
    #[arg(long)]
    traffic: bool,
    /// Print only the trace hash (and errors): no summary table, no progress bar.
    #[arg(long)]
    quiet: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum Crypto {
    /// BLAKE3 stand-ins with the real sizes: fast, deterministic, not secure.
    Fast,
    /// The real pure-Rust ML-DSA/ML-KEM (verification memoised across nodes).
    Real,
}

impl From<Crypto> for CryptoChoice {
    fn from(c: Crypto) -> Self {
        match c {
            Crypto::Fast => CryptoChoice::Fast,
            Crypto::Real => CryptoChoice::Real,
        }
    }
}

/// `--nodes`: a positive integer.
fn positive(s: &str) -> Result<usize, String> {
    match s.parse::<usize>() {
        Ok(n) if n > 0 => Ok(n),
        _ => Err("takes a positive integer".to_string()),
    }
}

fn main() -> ExitCode {
    // Usage errors exit with 2, `--help` and `--version` with 0 (clap's codes).
    let Cli {
        command: Cmd::Run(args),
    } = Cli::parse();
    let scenario = match Scenario::load(&args.file) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("hearsay-sim: {e}");
            return ExitCode::from(2);
        }
    };
    let opts = RunOptions {
        seed: args.seed,
        nodes: args.nodes,
        crypto: args.crypto.into(),
        progress: !args.quiet && std::io::stderr().is_terminal(),
        file: Some(args.file.display().to_string()),
        traffic: args.traffic,
    };
    let result = match run_scenario(scenario, &opts) {
        Ok(r) => r,
        Err(e) => {
            eprintln!("hearsay-sim: {}: {e}", args.file.display());
            return ExitCode::from(2);
        }
    };
    if !args.quiet {
        print!("{}", hearsay_sim::report::terminal_summary(&result));
    }
    println!("trace hash: {}", result.trace_hash);
    if let Some(path) = &args.json {
        let json = serde_json::json!({
            "name": result.name,
            "seed": result.seed,
            "nodes": result.nodes,
            "duration_s": result.duration_s,
            "crypto": result.crypto,
            "trace_hash": result.trace_hash,
            "metrics": result.metrics,
            "expectations": result.expectations,
            "warnings": result.warnings,
            "passed": result.passed(),
            "series": result.series,
            "traffic": result.traffic,
        });
        let text = serde_json::to_string_pretty(&json).unwrap_or_default();
        if let Err(e) = std::fs::write(path, text) {
            eprintln!("hearsay-sim: cannot write {}: {e}", path.display());
            return ExitCode::from(2);
        }
    }
    if let Some(path) = &args.report
        && let Err(e) = std::fs::write(path, hearsay_sim::report::html_report(&result))
    {
        eprintln!("hearsay-sim: cannot write {}: {e}", path.display());
        return ExitCode::from(2);
    }
    if result.passed() {
        ExitCode::SUCCESS
    } else {
        eprintln!(
            "hearsay-sim: {} expectation(s) failed (seed {}); replay with:\n  {}",
            result.expectations.iter().filter(|e| !e.passed).count(),
            result.seed,
            result.replay_command
        );
        ExitCode::from(1)
    }
}
