//! The `hearsay` command. All logic lives in the library; this file maps it to the process.

use clap::Parser;
use clap::error::ErrorKind;
use hearsay::{Cli, Command, Error, resolve_home, run};
use std::path::PathBuf;
use std::process::ExitCode;

fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => return usage_error(e),
    };
    let result = resolve_home(
        cli.home.clone(),
        std::env::var_os("HEARSAY_HOME"),
        std::env::var_os("HOME"),
    )
    // The demo keeps nothing on disk: it runs without a home directory.
    .or_else(|| matches!(cli.command, Command::Demo(_)).then(PathBuf::new))
    .ok_or(Error::NoHome)
    .and_then(|home| {
        let provider = hearsay_proto::default_provider();
        run(
            &*provider,
            &home,
            &cli.command,
            &mut std::io::stdout().lock(),
            &mut std::io::stderr(),
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

/// Help and version go out as clap renders them; a usage mistake becomes one line on standard
/// error (clap's first line, which names the problem) and exit code 2.
fn usage_error(e: clap::Error) -> ExitCode {
    if matches!(
        e.kind(),
        ErrorKind::DisplayHelp
            | ErrorKind::DisplayVersion
            | ErrorKind::DisplayHelpOnMissingArgumentOrSubcommand
    ) {
        let _ = e.print();
        return if e.use_stderr() {
            ExitCode::from(2)
        } else {
            ExitCode::SUCCESS
        };
    }
    let rendered = e.render().to_string();
    let first = rendered.lines().next().unwrap_or("invalid arguments");
    let first = first.strip_prefix("error: ").unwrap_or(first);
    eprintln!("hearsay: error: {first}; see `hearsay --help` or `hearsay COMMAND --help`");
    ExitCode::from(2)
}
