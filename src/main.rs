//! The `haul` binary: parse the command line, run it, map the result to an exit code.

use std::process::ExitCode;

use clap::Parser;

fn main() -> ExitCode {
    // Panics (bugs, never bad input) get a readable report; the dashboard restores the
    // terminal before this hook runs.
    let _ = color_eyre::install();
    let cli = haul::Cli::parse();
    match haul::run(cli) {
        Ok(code) => ExitCode::from(code),
        Err(err) => {
            eprintln!("haul: {err}");
            ExitCode::from(err.exit_code())
        }
    }
}
