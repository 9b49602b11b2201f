//! `postcall` command line: a thin shell over the library.

use std::io::{BufReader, Write};
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

use anyhow::Context;
use clap::{Parser, Subcommand};

use postcall::config::PluginConfig;
use postcall::replay::Replay;
use postcall::session::Settings;

#[derive(Parser)]
#[command(
    name = "postcall",
    version,
    about = "Kazoo call events in, session CDR webhooks out"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Replay recorded Blackhole frames (JSON Lines) and print one CDR per line.
    Replay {
        /// Configuration (time zones, thresholds, pbx id); defaults apply without one.
        #[arg(long)]
        config: Option<PathBuf>,
        /// Fixture files, read as one stream in the order given.
        #[arg(required = true)]
        files: Vec<PathBuf>,
    },
    /// Validate the configuration and report every problem with its file and field.
    Check {
        /// Configuration file.
        #[arg(long, default_value = "plugin.toml")]
        config: PathBuf,
    },
}

fn settings(config: Option<&PathBuf>) -> anyhow::Result<Settings> {
    match config {
        None => Ok(Settings::default()),
        Some(path) => Ok(PluginConfig::load(path)?.settings()?),
    }
}

fn run(cli: Cli) -> anyhow::Result<ExitCode> {
    match cli.command {
        Command::Replay { config, files } => {
            let mut replay = Replay::new(Arc::new(settings(config.as_ref())?));
            for f in &files {
                let file = std::fs::File::open(f)
                    .with_context(|| format!("{}: cannot open", f.display()))?;
                replay
                    .feed_reader(BufReader::new(file))
                    .with_context(|| format!("{}: cannot read", f.display()))?;
            }
            let (closed, stats) = replay.finish();
            let mut out = std::io::stdout().lock();
            for c in &closed {
                serde_json::to_writer(&mut out, &c.cdr)?;
                out.write_all(b"\n")?;
            }
            out.flush()?;
            if !stats.skipped.is_empty() {
                let skipped: Vec<String> = stats
                    .skipped
                    .iter()
                    .map(|(k, v)| format!("{k}={v}"))
                    .collect();
                eprintln!("postcall: skipped frames: {}", skipped.join(", "));
            }
            Ok(ExitCode::SUCCESS)
        }
        Command::Check { config } => match settings(Some(&config)) {
            Ok(_) => {
                println!("{}: ok", config.display());
                Ok(ExitCode::SUCCESS)
            }
            Err(e) => {
                eprintln!("{e}");
                Ok(ExitCode::FAILURE)
            }
        },
    }
}

fn main() -> ExitCode {
    match run(Cli::parse()) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("postcall: {e:#}");
            ExitCode::from(2)
        }
    }
}
