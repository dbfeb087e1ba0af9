//! The `hearsay` command. All logic lives in the library; this file maps it to the process.

use clap::Parser;
use hearsay::{Cli, Error, resolve_home, run};
use std::process::ExitCode;

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = resolve_home(
        cli.home.clone(),
        std::env::var_os("HEARSAY_HOME"),
        std::env::var_os("HOME"),
    )
    .ok_or(Error::NoHome)
    .and_then(|home| {
        let provider = hearsay_proto::default_provider();
        run(
            &*provider,
            &home,
            &cli.command,
            &mut std::io::stdout().lock(),
            &mut std::io::stderr().lock(),
        )
    });
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("hearsay: error: {e}");
            ExitCode::FAILURE
        }
    }
}
