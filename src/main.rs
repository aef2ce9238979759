//! Thin entry point: parse, run, print the error chain, map to an exit code
//! (0 ok, 1 an SLO or check failed, 2 error; see `servesim --help`).

use clap::Parser;
use std::process::ExitCode;

fn main() -> ExitCode {
    let cli = match servesim::cli::Cli::try_parse() {
        Ok(c) => c,
        Err(e) => {
            let _ = e.print();
            return ExitCode::from(if e.use_stderr() { servesim::app::EXIT_ERROR } else { servesim::app::EXIT_OK });
        }
    };
    match servesim::app::run(cli) {
        Ok(code) => code,
        Err(e) => {
            if let Some(io) = e.downcast_ref::<std::io::Error>()
                && io.kind() == std::io::ErrorKind::BrokenPipe
            {
                return ExitCode::from(servesim::app::EXIT_OK);
            }
            eprintln!("error: {e:#}");
            ExitCode::from(servesim::app::EXIT_ERROR)
        }
    }
}
