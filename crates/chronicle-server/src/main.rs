//! `chronicle`: one binary for the server and its operators. This file only parses arguments,
//! sets up logging and the runtime, and hands over to the library.

use clap::Parser;
use std::io::IsTerminal;
use std::process::ExitCode;

fn main() -> ExitCode {
    let cli = chronicle_server::cli::Cli::parse();
    // A benchmark registers its population in statements of tens of thousands of rows, each
    // longer than sqlx's slow-statement threshold by design: their warnings would bury the
    // report.
    let database_log = match cli.command {
        chronicle_server::cli::Command::Bench(_) => "sqlx=error",
        _ => "sqlx=warn",
    };
    init_logging(database_log);
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
    match runtime.block_on(chronicle_server::run_command(cli)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("chronicle: {e:#}");
            ExitCode::FAILURE
        }
    }
}

/// Logs go to stderr; `CHRONICLE_LOG` (or `RUST_LOG`) selects what is shown, and
/// `CHRONICLE_LOG_FORMAT=json` writes one JSON object per line (with the spans a line is in) for
/// a log collector. `CHRONICLE_LOG=info,chronicle_ingest=debug,chronicle_broker=debug` shows each
/// message's path (docs/ARCHITECTURE.md, "Following a message").
fn init_logging(database_log: &str) {
    let filter = std::env::var("CHRONICLE_LOG")
        .or_else(|_| std::env::var("RUST_LOG"))
        .unwrap_or_else(|_| format!("info,{database_log}"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::new(filter))
        .with_writer(std::io::stderr);
    match std::env::var("CHRONICLE_LOG_FORMAT").as_deref() {
        Ok("json") => builder
            .json()
            .with_current_span(true)
            .with_span_list(true)
            .init(),
        Ok("text") | Err(_) => builder.with_ansi(std::io::stderr().is_terminal()).init(),
        Ok(other) => {
            builder.with_ansi(false).init();
            tracing::warn!(
                format = other,
                "unknown CHRONICLE_LOG_FORMAT (text or json); writing text"
            );
        }
    }
}
