//! `chronicle`: one binary for the server and its operators. This file only parses arguments
//! and hands over; see `docs/ARCHITECTURE.md` for the map.

mod admin;
mod bench;
mod cli;
mod database;
mod demo;
mod device_channel;
mod serve;
mod tls;
mod trends;

use clap::Parser;
use std::io::IsTerminal;
use std::process::ExitCode;

fn main() -> ExitCode {
    let cli = cli::Cli::parse();
    init_logging();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(e) => {
            eprintln!("chronicle: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(run(cli)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("chronicle: {e:#}");
            ExitCode::FAILURE
        }
    }
}

async fn run(cli: cli::Cli) -> anyhow::Result<()> {
    let file = cli::FileConfig::load(cli.config.as_deref())?;
    let database = cli.database.merged_with(&file);
    match cli.command {
        cli::Command::Serve(args) => {
            let settings = args.merged_with(&file)?;
            serve::run(database, settings).await
        }
        cli::Command::Demo(args) => {
            let settings = args.serve.merged_with(&file)?;
            let options = demo::DemoOptions {
                patients: args.patients as usize,
                backfill_days: args.backfill_days,
                seed: args.seed,
            };
            demo::run(database, settings, options).await
        }
        cli::Command::Migrate => admin::migrate(&database).await,
        cli::Command::Patient(command) => admin::patient(&database, command).await,
        cli::Command::Device(command) => admin::device(&database, command).await,
        cli::Command::Gateway(command) => admin::gateway(&database, command).await,
        cli::Command::IngestAccount(command) => admin::ingest_account(&database, command).await,
        cli::Command::Tls(command) => tls::run(command),
        cli::Command::User(command) => admin::user(&database, command).await,
        cli::Command::Org(command) => admin::org(&database, command).await,
        cli::Command::Team(command) => admin::team(&database, command).await,
        cli::Command::Bench(command) => bench::run(&database, command).await,
    }
}

/// Logs go to stderr; `CHRONICLE_LOG` (or `RUST_LOG`) selects what is shown.
fn init_logging() {
    let filter = std::env::var("CHRONICLE_LOG")
        .or_else(|_| std::env::var("RUST_LOG"))
        .unwrap_or_else(|_| "info,sqlx=warn".to_owned());
    tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::new(filter))
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal())
        .init();
}
