//! `mirador`: the binary. Glue only: command line, configuration, wiring the capture source,
//! the analysis engine and the record writers, and the run summary. No analysis logic here.

mod alert_outputs;
mod config;
mod delivery;
mod detection;
mod inventory_cmd;
mod metrics;
mod output;
mod pipeline;
mod replay;
mod run;
mod summary;

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
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
    /// Capture live on one or more interfaces until SIGTERM/SIGINT (SIGHUP reloads).
    Run(run::RunArgs),
    /// Print the API seen in capture files as OpenAPI 3.1 (optionally against a reference spec).
    Inventory(inventory_cmd::InventoryArgs),
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
        Command::Run(args) => run::run(args),
        Command::Inventory(args) => inventory_cmd::run(args),
        Command::CheckConfig { config } => {
            config::Config::load_with_env(Some(&config), std::env::vars())
                .and_then(|c| {
                    c.validate_for_run()
                        .with_context(|| format!("{}: invalid configuration", config.display()))
                        .map(|_| c)
                })
                .map(|_| {
                    eprintln!("{}: configuration is valid", config.display());
                })
        }
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
