//! `mirador`: the binary. Glue only: command line, configuration, wiring the capture source,
//! the analysis engine and the record writers, and the run summary. No analysis logic here.

mod config;
mod output;
mod replay;
mod summary;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

// Transactions are allocated by the packet thread and freed by the output thread; glibc's
// allocator handles that cross-thread pattern poorly, mimalloc well.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[derive(Parser, Debug)]
#[command(
    name = "mirador",
    version,
    about = "Passive API-security sensor",
    propagate_version = true
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Replay capture files (pcap, pcapng, optionally gzip-compressed) through the sensor.
    Replay(replay::ReplayArgs),
    /// Validate a configuration file and exit.
    CheckConfig {
        /// The configuration file.
        #[arg(short = 'c', long = "config", value_name = "FILE")]
        config: PathBuf,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Replay(args) => replay::run(args),
        Command::CheckConfig { config } => config::Config::load(&config).map(|_| {
            eprintln!("{}: configuration is valid", config.display());
        }),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            if output::is_broken_pipe(&e) {
                return ExitCode::SUCCESS;
            }
            eprintln!("mirador: error: {e:#}");
            ExitCode::from(1)
        }
    }
}
