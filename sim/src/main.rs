//! `hearsay-sim run FILE [--seed N] [--nodes N] [--json OUT] [--report OUT.html] [--crypto fast|real]`
//!
//! Exit codes: 0 every expectation held; 1 an expectation failed (the replay command is printed);
//! 2 the command line or the scenario file is wrong (one message naming file, line and key).

use hearsay_sim::run::{RunOptions, run_scenario};
use hearsay_sim::scenario::Scenario;
use hearsay_sim::world::CryptoChoice;
use std::io::IsTerminal;
use std::path::PathBuf;
use std::process::ExitCode;

const USAGE: &str = "usage: hearsay-sim run FILE [--seed N] [--nodes N] [--json OUT] [--report OUT.html] [--crypto fast|real] [--quiet]";

struct Args {
    file: PathBuf,
    seed: Option<u64>,
    nodes: Option<usize>,
    json: Option<PathBuf>,
    report: Option<PathBuf>,
    crypto: CryptoChoice,
    quiet: bool,
}

fn parse_args(mut args: impl Iterator<Item = String>) -> Result<Args, String> {
    match args.next().as_deref() {
        Some("run") => {}
        Some("--help" | "-h") | None => return Err(USAGE.to_string()),
        Some(other) => return Err(format!("unknown command `{other}`\n{USAGE}")),
    }
    let mut file = None;
    let mut out = Args {
        file: PathBuf::new(),
        seed: None,
        nodes: None,
        json: None,
        report: None,
        crypto: CryptoChoice::Fast,
        quiet: false,
    };
    while let Some(a) = args.next() {
        let mut value = |name: &str| {
            args.next()
                .ok_or_else(|| format!("{name} needs a value\n{USAGE}"))
        };
        match a.as_str() {
            "--seed" => {
                out.seed = Some(
                    value("--seed")?
                        .parse()
                        .map_err(|_| "--seed takes a non-negative integer".to_string())?,
                )
            }
            "--nodes" => {
                let n: usize = value("--nodes")?
                    .parse()
                    .map_err(|_| "--nodes takes a positive integer".to_string())?;
                if n == 0 {
                    return Err("--nodes takes a positive integer".to_string());
                }
                out.nodes = Some(n);
            }
            "--json" => out.json = Some(value("--json")?.into()),
            "--report" => out.report = Some(value("--report")?.into()),
            "--crypto" => {
                out.crypto = match value("--crypto")?.as_str() {
                    "fast" => CryptoChoice::Fast,
                    "real" => CryptoChoice::Real,
                    other => return Err(format!("--crypto is fast or real, not `{other}`")),
                }
            }
            "--quiet" => out.quiet = true,
            flag if flag.starts_with('-') => {
                return Err(format!("unknown option `{flag}`\n{USAGE}"));
            }
            path if file.is_none() => file = Some(PathBuf::from(path)),
            extra => return Err(format!("unexpected argument `{extra}`\n{USAGE}")),
        }
    }
    out.file = file.ok_or_else(|| format!("missing FILE\n{USAGE}"))?;
    Ok(out)
}

fn main() -> ExitCode {
    let args = match parse_args(std::env::args().skip(1)) {
        Ok(a) => a,
        Err(e) => {
            eprintln!("hearsay-sim: {e}");
            return ExitCode::from(2);
        }
    };
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
        crypto: args.crypto,
        progress: !args.quiet && std::io::stderr().is_terminal(),
        file: Some(args.file.display().to_string()),
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
