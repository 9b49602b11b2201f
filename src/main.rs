//! `postcall` command line: a thin shell over the library.

use std::io::{BufReader, Write};
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

use anyhow::Context;
use clap::{Parser, Subcommand};

use postcall::config::PluginConfig;
use postcall::replay::{Replay, ReplayStats};
use postcall::session::{ClosedSession, Settings};
use postcall::sim::{self, MixSpec};

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
    /// Generate Kazoo 4.3 Blackhole frames (JSON Lines) for a named scenario or a random mix.
    Sim {
        /// List the built-in scenario names and exit.
        #[arg(long, conflicts_with_all = ["scenario", "calls"])]
        list: bool,
        /// One built-in scenario (the same frames as `fixtures/<NAME>.jsonl`).
        #[arg(long, conflicts_with = "calls")]
        scenario: Option<String>,
        /// Number of random concurrent calls.
        #[arg(long)]
        calls: Option<u64>,
        #[command(flatten)]
        mix: MixArgs,
    },
    /// Run the offline pipeline on a simulated PBX: random calls in, CDRs out as they close.
    Demo {
        /// Configuration (time zones, thresholds, pbx id); defaults apply without one.
        #[arg(long)]
        config: Option<PathBuf>,
        /// Number of calls.
        #[arg(long, default_value_t = 25)]
        calls: u64,
        #[command(flatten)]
        mix: MixArgs,
    },
    /// Validate the configuration and report every problem with its file and field.
    Check {
        /// Configuration file.
        #[arg(long, default_value = "plugin.toml")]
        config: PathBuf,
    },
}

#[derive(clap::Args)]
struct MixArgs {
    /// Seed of the random call stream.
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// Mean gap between call arrivals, in milliseconds of simulated time.
    #[arg(long, default_value_t = 2_000)]
    gap_ms: u64,
    /// Also damage about 2 % of calls (reordered and duplicated frames, a lost DESTROY).
    #[arg(long)]
    faults: bool,
}

impl MixArgs {
    fn spec(&self, calls: u64) -> MixSpec {
        MixSpec {
            calls,
            seed: self.seed,
            mean_gap_ms: self.gap_ms,
            faults: self.faults,
            ..MixSpec::default()
        }
    }
}

fn write_cdrs(out: &mut impl Write, closed: &[ClosedSession]) -> anyhow::Result<()> {
    for c in closed {
        serde_json::to_writer(&mut *out, &c.cdr)?;
        out.write_all(b"\n")?;
    }
    Ok(())
}

fn report_skipped(stats: &ReplayStats) {
    if !stats.skipped.is_empty() {
        let skipped: Vec<String> = stats
            .skipped
            .iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect();
        eprintln!("postcall: skipped frames: {}", skipped.join(", "));
    }
}

fn settings(config: Option<&PathBuf>) -> anyhow::Result<Settings> {
    match config {
        None => Ok(Settings::default()),
        Some(path) => Ok(PluginConfig::load(path)?.settings()?),
    }
}

// --- enrichment (issue 6) ---
/// Enriches closed sessions when the configuration has an `[enrich]` section. Reference files
/// that cannot be used are reported on stderr and left out; they never stop the replay.
fn enrich(config: Option<&PathBuf>, closed: &mut [ClosedSession]) -> anyhow::Result<()> {
    let Some(path) = config else {
        return Ok(());
    };
    let Some(sources) = PluginConfig::load(path)?.enrich_sources()? else {
        return Ok(());
    };
    let (enricher, errors) = postcall::enrich::SharedEnricher::load(sources);
    for e in &errors {
        eprintln!("postcall: enrichment file skipped: {e}");
    }
    let snapshot = enricher.current();
    closed.iter_mut().for_each(|c| snapshot.enrich_session(c));
    Ok(())
}

/// `check`: loads the enrichment files and prints every problem; returns how many there were.
fn enrich_file_errors(config: &std::path::Path) -> anyhow::Result<usize> {
    let Some(sources) = PluginConfig::load(config)?.enrich_sources()? else {
        return Ok(0);
    };
    let (_, errors) = postcall::enrich::SharedEnricher::load(sources);
    errors.iter().for_each(|e| eprintln!("{e}"));
    Ok(errors.len())
}
// --- end enrichment ---

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
            let (mut closed, stats) = replay.finish();
            enrich(config.as_ref(), &mut closed)?;
            let mut out = std::io::stdout().lock();
            write_cdrs(&mut out, &closed)?;
            out.flush()?;
            report_skipped(&stats);
            Ok(ExitCode::SUCCESS)
        }
        Command::Sim {
            list,
            scenario,
            calls,
            mix,
        } => {
            let mut out = std::io::stdout().lock();
            if list {
                for name in sim::scenario_names() {
                    writeln!(out, "{name}")?;
                }
            } else if let Some(name) = scenario {
                let frames = sim::scenario(&name).with_context(|| {
                    format!(
                        "unknown scenario {name:?}; known: {}",
                        sim::scenario_names().join(", ")
                    )
                })?;
                out.write_all(sim::to_jsonl(&frames).as_bytes())?;
            } else {
                let calls = calls.context("give --list, --scenario NAME or --calls N")?;
                for frame in sim::mix(mix.spec(calls)) {
                    writeln!(out, "{}", frame.text)?;
                }
            }
            out.flush()?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Demo { config, calls, mix } => {
            let mut replay = Replay::new(Arc::new(settings(config.as_ref())?));
            let mut out = std::io::stdout().lock();
            for frame in sim::mix(mix.spec(calls)) {
                replay.feed_line(&frame.text);
                write_cdrs(&mut out, &replay.take_closed())?;
            }
            let (closed, stats) = replay.finish();
            write_cdrs(&mut out, &closed)?;
            out.flush()?;
            eprintln!(
                "postcall demo: {calls} simulated calls, {} frames, {} events, {} duplicates",
                stats.frames, stats.events, stats.duplicates
            );
            report_skipped(&stats);
            Ok(ExitCode::SUCCESS)
        }
        Command::Check { config } => match settings(Some(&config)) {
            Ok(_) if enrich_file_errors(&config)? > 0 => Ok(ExitCode::FAILURE),
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
        // `postcall sim … | head` closing the pipe early is not an error.
        Err(e)
            if e.downcast_ref::<std::io::Error>()
                .is_some_and(|io| io.kind() == std::io::ErrorKind::BrokenPipe) =>
        {
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("postcall: {e:#}");
            ExitCode::from(2)
        }
    }
}
