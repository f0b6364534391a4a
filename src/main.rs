//! The `haul` binary: parse the command line, run it, map the result to an exit code.

use std::process::ExitCode;

use clap::Parser;

fn main() -> ExitCode {
    // Panics (bugs, never bad input) get a readable report; the dashboard restores the
    // terminal before this hook runs.
    let _ = color_eyre::install();
    quiet_on_closed_stdout();
    let cli = haul::Cli::parse();
    match haul::run(cli) {
        Ok(code) => ExitCode::from(code),
        Err(err) => {
            eprintln!("haul: {err}");
            ExitCode::from(err.exit_code())
        }
    }
}

/// `haul list | head` closes our stdout early. Like other Unix tools, stop quietly then
/// (exit status 141, as if killed by SIGPIPE) instead of reporting a panic.
fn quiet_on_closed_stdout() {
    let report = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        let message = haul::text::panic_message(info.payload());
        if message.contains("failed printing to stdout") && message.contains("Broken pipe") {
            std::process::exit(141);
        }
        report(info);
    }));
}
