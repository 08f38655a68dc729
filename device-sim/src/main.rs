//! `chronicle-sim`: simulated patients and devices publishing to Chronicle over MQTT. This
//! file parses arguments and hands over to `app`; the models and the MQTT machinery are in the
//! library (`chronicle_sim`). See docs/simulator.md.

mod app;

use clap::Parser;
use std::process::ExitCode;

fn main() -> ExitCode {
    let cli = app::cli::Cli::parse();
    let filter = std::env::var("CHRONICLE_LOG")
        .or_else(|_| std::env::var("RUST_LOG"))
        .unwrap_or_else(|_| "warn".to_owned());
    tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::new(filter))
        .with_writer(std::io::stderr)
        .init();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(e) => {
            eprintln!("chronicle-sim: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(app::run(cli)) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("chronicle-sim: {e:#}");
            ExitCode::from(2)
        }
    }
}
