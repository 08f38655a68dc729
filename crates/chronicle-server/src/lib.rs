//! Chronicle's server as a library: [`serve::launch`] starts the ingest, the broker, the alert
//! engine, the trend rollups and the HTTP API on listeners the caller bound, and
//! [`run_command`] runs any `chronicle` subcommand. The `chronicle` binary only parses its
//! arguments and calls [`run_command`]; tests launch servers in their own process with
//! [`serve::launch`]. See `docs/ARCHITECTURE.md` for the map.

mod admin;
mod bench;
pub mod cli;
pub mod database;
mod demo;
mod device_channel;
pub mod serve;
mod tls;
mod trends;

pub use database::Database;
pub use serve::{Endpoints, Listeners, Running, launch};

use clap::Parser;

/// Runs one `chronicle` subcommand to its end.
pub async fn run_command(cli: cli::Cli) -> anyhow::Result<()> {
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

/// The database and serve settings a `chronicle … serve …` command line gives (flags, then
/// the environment, then the `--config` file), for a caller that launches the server itself.
pub fn serve_settings_from_args<I, T>(
    args: I,
) -> anyhow::Result<(cli::DatabaseSettings, cli::ServeSettings)>
where
    I: IntoIterator<Item = T>,
    T: Into<std::ffi::OsString> + Clone,
{
    let cli = cli::Cli::try_parse_from(args)?;
    let file = cli::FileConfig::load(cli.config.as_deref())?;
    let database = cli.database.merged_with(&file);
    match cli.command {
        cli::Command::Serve(args) => Ok((database, args.merged_with(&file)?)),
        _ => anyhow::bail!("the command line is not `chronicle … serve …`"),
    }
}
