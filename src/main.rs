//! `postcall` command line: a thin shell over the library.

use std::io::{BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;
use tokio_util::sync::CancellationToken;

use anyhow::Context;
use clap::{Parser, Subcommand};

use postcall::config::{PluginConfig, Problem};
use postcall::delivery::{Outbox, OutboxError};
use postcall::replay::{Replay, ReplayStats};
use postcall::run::demo::{self, DemoOptions};
use postcall::run::sidecar::{self, RunOptions};
use postcall::session::{ClosedSession, Settings};
use postcall::sim::{self, MixSpec};
use postcall::source;

#[derive(Parser)]
#[command(
    name = "postcall",
    version,
    about = "Kazoo call events in, session CDR webhooks out"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
    /// Log format (logs go to stderr; the level comes from `RUST_LOG`).
    #[arg(long, global = true, value_enum, default_value_t = LogFormat::Text)]
    log_format: LogFormat,
}

#[derive(Subcommand)]
enum Command {
    /// Replay recorded Blackhole frames (JSON Lines) and print one CDR per line.
    Replay {
        /// Configuration (time zones, thresholds, pbx id); defaults apply without one.
        #[arg(long)]
        config: Option<PathBuf>,
        /// Print `{"tenantId": …, "userIds": […], "cdr": {…}}` per line instead of the bare
        /// CDR (the tenant and users triggers are scoped by).
        #[arg(long)]
        tenant: bool,
        /// Fixture files, read as one stream in the order given.
        #[arg(required = true)]
        files: Vec<PathBuf>,
    },
    /// Replay recorded frames against the configuration's triggers: per session its tenant,
    /// a summary, the triggers that fire and, for the tenant's others, the first condition
    /// that fails with the CDR's value.
    Explain {
        /// Configuration: its `[triggers] files` (and time zones, thresholds, enrichment).
        #[arg(long, default_value = "plugin.toml")]
        config: PathBuf,
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
    /// The sidecar: Kazoo events in, webhooks out (`[kazoo]`, `[triggers]`, `[delivery]`).
    Run {
        /// Configuration file.
        #[arg(long, default_value = "plugin.toml")]
        config: PathBuf,
        /// Admin listener (`/metrics`, `/healthz`, `/readyz`, dead letters).
        #[arg(long, default_value = "127.0.0.1:9646")]
        admin: std::net::SocketAddr,
    },
    /// Everything on one machine, no PBX needed: a simulated Blackhole streaming realistic
    /// calls, the sidecar connected to it, and a receiver printing every webhook.
    Demo {
        /// Stop after this many calls were delivered (default: run until Ctrl-C).
        #[arg(long)]
        calls: Option<u64>,
        /// Seed of the call mix.
        #[arg(long, default_value_t = 1)]
        seed: u64,
        /// Simulated time runs this many times faster than real time.
        #[arg(long, default_value_t = 60.0)]
        speed: f64,
        /// Mean gap between call arrivals, in simulated milliseconds.
        #[arg(long, default_value_t = 20_000)]
        gap_ms: u64,
        /// Admin listener (port 0 picks a free one).
        #[arg(long, default_value = "127.0.0.1:0")]
        admin: std::net::SocketAddr,
        /// Also log what the sidecar does (to stderr).
        #[arg(long)]
        verbose: bool,
        /// Print each webhook as one JSON object (time, method, URI, status, payload) instead
        /// of a readable line.
        #[arg(long)]
        json: bool,
    },
    /// Capture live Blackhole frames into a fixture file (`[kazoo]` in the configuration).
    Record {
        /// Configuration file.
        #[arg(long, default_value = "plugin.toml")]
        config: PathBuf,
        /// Fixture file to write (JSON Lines, replayable).
        #[arg(long)]
        out: PathBuf,
        /// Stop after this many frames (default: until Ctrl-C).
        #[arg(long)]
        frames: Option<u64>,
        /// Stop after this many seconds.
        #[arg(long)]
        timeout: Option<u64>,
        /// Give up after this many connection attempts in a row that did not subscribe.
        #[arg(long, default_value_t = 5, value_parser = clap::value_parser!(u64).range(1..))]
        attempts: u64,
    },
    /// List, inspect, re-send and purge dead letters (with the sidecar stopped: the outbox
    /// is opened exclusively).
    Deliveries {
        /// Configuration file (its `[delivery] data_dir` holds the outbox).
        #[arg(long, default_value = "plugin.toml")]
        config: PathBuf,
        #[command(subcommand)]
        action: DeadLetterAction,
    },
    /// The CDR journal: list, show and re-send past CDRs (with the sidecar stopped: the store is
    /// opened exclusively; while it runs use the admin endpoints under `/cdrs`).
    Cdrs {
        /// Configuration file (its `[delivery] data_dir` holds the journal, its trigger files
        /// are what `resend` matches against).
        #[arg(long, global = true, default_value = "plugin.toml")]
        config: PathBuf,
        #[command(subcommand)]
        action: CdrsAction,
    },
    /// Print the JSON Schema of the webhook payload (for Azure Logic Apps, Power Automate,
    /// Zapier and receivers): inline, draft-4 keywords, no `$ref` unless asked otherwise.
    Schema {
        /// `draft-04`: one inline schema, draft-4 keywords (what low-code designers read
        /// fully); `2020-12`: JSON Schema 2020-12 with `$defs`.
        #[arg(long, value_enum, default_value_t = SchemaDialect::Draft04)]
        dialect: SchemaDialect,
    },
    /// Compare the CDR journal with Kazoo's stored CDRs for a window: calls Kazoo has and
    /// postcall does not, sessions postcall has and Kazoo does not, answered times that differ
    /// by more than 1 s. Exit 0 when nothing is missing, 1 when something is, 2 when the
    /// comparison could not be made.
    Reconcile {
        /// Configuration file (`[kazoo]` with `crossbar_url`; its data directory holds the
        /// journal).
        #[arg(long, default_value = "plugin.toml")]
        config: PathBuf,
        /// Sessions that ended from this time (RFC 3339, or a duration ago: `2h`, `1d`).
        #[arg(long)]
        from: String,
        /// … to this time (default: now).
        #[arg(long)]
        to: Option<String>,
        /// One account (Kazoo account id) instead of every configured one.
        #[arg(long)]
        account: Option<String>,
        /// The report as JSON.
        #[arg(long)]
        json: bool,
        /// The running sidecar's admin listener, read when it holds the journal.
        #[arg(long, default_value = "127.0.0.1:9646")]
        admin: std::net::SocketAddr,
    },
    /// Validate the configuration as `run` will and report every problem with its file and
    /// field.
    Check {
        /// Configuration file.
        #[arg(long, default_value = "plugin.toml")]
        config: PathBuf,
        /// Secret variables that are not set are warnings, not errors (validating on a
        /// machine without the secrets; `run` still needs them).
        #[arg(long)]
        without_secrets: bool,
    },
}

/// `postcall schema --dialect`.
#[derive(Clone, Copy, clap::ValueEnum)]
enum SchemaDialect {
    /// Inline, draft-4 keywords.
    #[value(name = "draft-04")]
    Draft04,
    /// JSON Schema 2020-12.
    #[value(name = "2020-12")]
    Draft2020_12,
}

#[derive(Subcommand)]
enum DeadLetterAction {
    /// One line per dead letter: webhook id, trigger, attempts, last error.
    List,
    /// One dead letter in full (secret and URL query redacted).
    Show {
        /// Webhook id.
        id: String,
    },
    /// Move dead letters back to the outbox with the same webhook id and a fresh attempt budget.
    Resend {
        /// Webhook id.
        #[arg(required_unless_present = "all")]
        id: Option<String>,
        /// Every dead letter.
        #[arg(long, conflicts_with = "id")]
        all: bool,
    },
    /// Delete dead letters.
    Purge {
        /// Webhook id.
        #[arg(required_unless_present = "all")]
        id: Option<String>,
        /// Every dead letter.
        #[arg(long, conflicts_with = "id")]
        all: bool,
    },
}

#[derive(Subcommand)]
enum CdrsAction {
    /// One line per CDR, oldest first: start, id, tenant, caller → callee, outcome,
    /// deliveries.
    List {
        /// Only this tenant (Kazoo account id).
        #[arg(long)]
        tenant: Option<String>,
        /// Sessions that started at or after this time (RFC 3339, or a duration ago: 2h, 7d).
        #[arg(long)]
        from: Option<String>,
        /// Sessions that started before this time (same forms).
        #[arg(long)]
        to: Option<String>,
    },
    /// One CDR (JSON) with its deliveries and the state of each (pending, delivered, dead,
    /// purged).
    Show {
        /// Session id (the CDR's `id`).
        id: String,
    },
    /// Build the deliveries of past CDRs again through the current trigger files and queue
    /// them with the same webhook ids (the sidecar sends them when it starts). One CDR: its
    /// deliveries are sent again (a pending one is left alone, a dead letter goes back to
    /// pending). A window (`--from`/`--to`): only deliveries that never existed are created,
    /// so a trigger added later catches up on past calls and nothing is sent twice.
    Resend {
        /// Session id.
        #[arg(required_unless_present = "from", conflicts_with_all = ["from", "to", "tenant"])]
        id: Option<String>,
        /// Start of the window (RFC 3339, or a duration ago: 2h, 7d).
        #[arg(long, requires = "to")]
        from: Option<String>,
        /// End of the window (exclusive; same forms).
        #[arg(long, requires = "from")]
        to: Option<String>,
        /// Only this tenant's CDRs (with a window).
        #[arg(long)]
        tenant: Option<String>,
        /// Only this trigger.
        #[arg(long)]
        trigger: Option<String>,
    },
}

/// Opens the outbox (and journal) exclusively for a command; `running` is what to do instead
/// while the sidecar holds it.
fn open_store(config: &Path, running: &str) -> anyhow::Result<Outbox> {
    let cfg = PluginConfig::load(config)?;
    if cfg.store.postgres_url.is_some() || cfg.store.postgres_url_env.is_some() {
        // The shared database is reached by the running instances; the CLI reads the embedded
        // file only.
        anyhow::bail!(
            "the outbox is in PostgreSQL ([store]): use a running instance's admin API ({running})"
        );
    }
    let path = cfg.delivery.outbox_path(config);
    Outbox::open(&path).map_err(|e| {
        let hint = match &e {
            OutboxError::InUse => format!(" (postcall is running: {running})"),
            OutboxError::Corrupted(_) => " (move the file aside and restore a backup)".into(),
            _ => String::new(),
        };
        anyhow::anyhow!("{}: cannot open the outbox{hint}: {e}", path.display())
    })
}

fn cdrs(config: &Path, action: CdrsAction) -> anyhow::Result<ExitCode> {
    use postcall::delivery::journal::{parse_time, summary, ResendReport, ResendTarget};
    use postcall::delivery::ListFilter;
    let now = chrono::Utc::now().timestamp_micros();
    let time = |t: Option<String>| -> anyhow::Result<Option<i64>> {
        t.map(|t| parse_time(&t, now).map_err(anyhow::Error::msg))
            .transpose()
    };
    let running = |endpoint: &str| {
        format!(
            "stop it first, or use its admin listener: {endpoint} (e.g. http://127.0.0.1:9646/cdrs, \
             with the admin token)"
        )
    };
    let mut out = std::io::stdout().lock();
    match action {
        CdrsAction::List { tenant, from, to } => {
            let mut filter = ListFilter {
                tenant,
                from_us: time(from)?,
                to_us: time(to)?,
                limit: 1000,
                after: None,
            };
            let store = open_store(config, &running("GET /cdrs?tenant=&from=&to="))?;
            loop {
                let f = filter.clone();
                let page = store.call_blocking(move |s| s.journal_list(&f))?;
                for e in &page.entries {
                    writeln!(out, "{}", summary(e))?;
                }
                match page.next {
                    Some(next) => filter.after = Some(next),
                    None => break,
                }
            }
        }
        CdrsAction::Show { id } => {
            let store = open_store(config, &running("GET /cdrs/{id}"))?;
            let i = id.clone();
            match store.call_blocking(move |s| s.journal_get(&i))? {
                Some(r) => {
                    serde_json::to_writer_pretty(&mut out, &r.to_json())?;
                    writeln!(out)?;
                }
                None => {
                    eprintln!("postcall: no CDR {id} in the journal");
                    return Ok(ExitCode::FAILURE);
                }
            }
        }
        CdrsAction::Resend {
            id,
            from,
            to,
            tenant,
            trigger,
        } => {
            let cfg = PluginConfig::load(config)?;
            let set = match postcall::config::trigger_files(&cfg) {
                Ok(set) => Arc::new(set),
                Err(problems) => {
                    print_problems(&problems, false);
                    return Ok(ExitCode::from(2));
                }
            };
            if let Some(t) = trigger.as_deref().filter(|t| set.get(t).is_none()) {
                anyhow::bail!("no trigger {t:?} in the trigger files");
            }
            let mut target = match id {
                Some(id) => ResendTarget::One(id),
                None => ResendTarget::Window(ListFilter {
                    tenant,
                    from_us: time(from)?,
                    to_us: time(to)?,
                    limit: postcall::run::cdrs::RESEND_PAGE,
                    after: None,
                }),
            };
            let store = open_store(
                config,
                &running("POST /cdrs/{id}/resend or POST /cdrs/resend?from=&to="),
            )?;
            let mut total = ResendReport::default();
            loop {
                let (t, set, trig) = (target.clone(), set.clone(), trigger.clone());
                let r =
                    store.call_blocking(move |s| s.journal_resend(&t, &set, trig.as_deref(), now));
                let r = match r {
                    Err(OutboxError::NotFound(id)) => {
                        eprintln!("postcall: no CDR {id} in the journal");
                        return Ok(ExitCode::FAILURE);
                    }
                    r => r?,
                };
                total.add(&r);
                match (&mut target, r.next) {
                    (ResendTarget::Window(f), Some(next)) => f.after = Some(next),
                    _ => break,
                }
            }
            writeln!(
                out,
                "{} CDR(s): {} delivery(ies) queued, {} dead letter(s) queued again, {} left as they were",
                total.sessions, total.queued, total.revived, total.unchanged
            )?;
        }
    }
    Ok(ExitCode::SUCCESS)
}

fn dead_letters(config: &Path, action: DeadLetterAction) -> anyhow::Result<()> {
    let outbox = open_store(
        config,
        "stop it first, or use its admin listener: GET /deliveries/dead",
    )?;
    let mut out = std::io::stdout().lock();
    let now = chrono::Utc::now().timestamp_micros();
    match action {
        DeadLetterAction::List => {
            for j in outbox.dead()? {
                let r = j.redacted();
                writeln!(
                    out,
                    "{}\t{}\t{}\tattempts={}\t{}",
                    j.webhook_id,
                    j.trigger_id,
                    r["url"].as_str().unwrap_or(""),
                    j.attempts,
                    j.last_error.as_deref().unwrap_or("")
                )?;
            }
        }
        DeadLetterAction::Show { id } => {
            serde_json::to_writer_pretty(&mut out, &outbox.dead_one(&id)?.redacted())?;
            writeln!(out)?;
        }
        DeadLetterAction::Resend { id, all } => {
            let ids: Vec<String> = if all {
                outbox.dead()?.into_iter().map(|j| j.webhook_id).collect()
            } else {
                id.into_iter().collect()
            };
            for id in &ids {
                outbox.resend(id, now)?;
            }
            writeln!(out, "{} dead letter(s) queued again", ids.len())?;
        }
        DeadLetterAction::Purge { id, all } => {
            let n = outbox.purge(if all { None } else { id.as_deref() })?;
            writeln!(out, "{n} dead letter(s) purged")?;
        }
    }
    Ok(())
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

/// `replay --tenant`: each CDR with the tenant and users its triggers are scoped by.
fn write_scoped_cdrs(out: &mut impl Write, closed: &[ClosedSession]) -> anyhow::Result<()> {
    for c in closed {
        let line = serde_json::json!({
            "tenantId": c.tenant_id,
            "userIds": c.user_ids,
            "cdr": c.cdr,
        });
        serde_json::to_writer(&mut *out, &line)?;
        out.write_all(b"\n")?;
    }
    Ok(())
}

/// Replays `files` as one stream, enriched as `run` would (frames skipped are reported on
/// stderr).
fn replay_files(config: Option<&PathBuf>, files: &[PathBuf]) -> anyhow::Result<Vec<ClosedSession>> {
    let mut replay = Replay::new(Arc::new(settings(config)?));
    for f in files {
        let file =
            std::fs::File::open(f).with_context(|| format!("{}: cannot open", f.display()))?;
        replay
            .feed_reader(BufReader::new(file))
            .with_context(|| format!("{}: cannot read", f.display()))?;
    }
    let (mut closed, stats) = replay.finish();
    enrich(config, &mut closed)?;
    report_skipped(&stats);
    Ok(closed)
}

/// The trigger set of the configuration's `[triggers] files` (a remote source is not fetched:
/// `explain` stays offline like `check`).
fn load_triggers(config: &Path) -> anyhow::Result<postcall::trigger::TriggerSet> {
    let cfg = PluginConfig::load(config)?;
    let sources = cfg.triggers.options(config)?;
    if sources.remote.is_some() {
        eprintln!("postcall: the remote trigger source is not fetched; only the trigger files are explained");
    }
    postcall::trigger::reload::build_from_files(&sources.sources)
        .map_err(|e| anyhow::anyhow!("{}: triggers do not load:\n{e}", config.display()))
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

// --- enrichment ---
/// Enriches closed sessions: location by default, plus whatever the configuration's `[enrich]`
/// names. Reference files that cannot be used are reported on stderr and left out; they never
/// stop the replay.
fn enrich(config: Option<&PathBuf>, closed: &mut [ClosedSession]) -> anyhow::Result<()> {
    let sources = match config {
        Some(path) => PluginConfig::load(path)?.enrich_sources()?,
        None => postcall::enrich::EnrichSources::default(),
    };
    let (enricher, errors) = postcall::enrich::SharedEnricher::load(sources);
    for e in &errors {
        if e.is_warning() {
            eprintln!("postcall: {e}");
        } else {
            eprintln!("postcall: enrichment file skipped: {e}");
        }
    }
    let snapshot = enricher.current();
    closed.iter_mut().for_each(|c| snapshot.enrich_session(c));
    Ok(())
}

// --- end enrichment ---

/// The process environment, where secret variables are read.
fn reconcile(
    config: &Path,
    from: &str,
    to: Option<&str>,
    account: Option<String>,
    json: bool,
    admin: std::net::SocketAddr,
) -> anyhow::Result<ExitCode> {
    use postcall::delivery::journal::parse_time;
    let now = chrono::Utc::now().timestamp_micros();
    let cfg = PluginConfig::load(config)?;
    let opts = postcall::run::reconcile::ReconcileOptions {
        from_us: parse_time(from, now).map_err(anyhow::Error::msg)?,
        to_us: to
            .map_or(Ok(now), |t| parse_time(t, now))
            .map_err(anyhow::Error::msg)?,
        account,
        admin,
    };
    let rt = tokio::runtime::Runtime::new()?;
    let report = match rt.block_on(postcall::run::reconcile::reconcile(
        &cfg,
        &process_env,
        &opts,
    )) {
        Ok(r) => r,
        Err(e) => {
            eprintln!("postcall: reconcile: {}", error_chain(&e));
            return Ok(ExitCode::from(2));
        }
    };
    let mut out = std::io::stdout().lock();
    if json {
        serde_json::to_writer_pretty(&mut out, &report)?;
        writeln!(out)?;
    } else {
        write!(out, "{report}")?;
    }
    Ok(if report.complete() {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}

fn process_env(var: &str) -> Option<String> {
    std::env::var(var).ok()
}

/// Prints problems on stderr, one per line; warnings (and unset secret variables when
/// `secrets_optional`) prefixed with `warning: `. Returns how many were errors.
fn print_problems(problems: &[Problem], secrets_optional: bool) -> usize {
    let mut errors = 0;
    for p in problems {
        if p.is_warning() || (secrets_optional && p.is_missing_secret()) {
            eprintln!("warning: {p}");
        } else {
            errors += 1;
            eprintln!("{p}");
        }
    }
    errors
}

/// `check`: the validation `run` does, every problem printed. Exit 0 when `run` would start.
fn check(config: &Path, without_secrets: bool) -> ExitCode {
    let cfg = match PluginConfig::load(config) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("{e}");
            return ExitCode::FAILURE;
        }
    };
    let (valid, unset) = match postcall::config::validate(&cfg, &process_env) {
        Ok(v) => (v, Vec::new()),
        Err(problems) => {
            if print_problems(&problems, without_secrets) > 0 {
                return ExitCode::FAILURE;
            }
            // Only unset secrets, and they may be: validate the rest with stand-ins.
            let unset: Vec<String> = problems
                .iter()
                .filter_map(|p| match p {
                    Problem::MissingSecret { var, .. } => Some(var.clone()),
                    _ => None,
                })
                .collect();
            let stand_in = |var: &str| process_env(var).or_else(|| Some("unset".into()));
            match postcall::config::validate(&cfg, &stand_in) {
                Ok(v) => (v, unset),
                Err(problems) => {
                    print_problems(&problems, true);
                    return ExitCode::FAILURE;
                }
            }
        }
    };
    if unset.is_empty() {
        print_problems(&valid.warnings, false);
    }
    let remote = match &valid.triggers.remote {
        // `check` stays offline: the remote document is validated when it is fetched.
        Some(_) => " (remote source not fetched)",
        None => "",
    };
    let secrets = if unset.is_empty() {
        String::new()
    } else {
        format!(" (without secrets: {} not set)", unset.join(", "))
    };
    println!(
        "{}: ok, {} triggers{remote}{secrets}",
        config.display(),
        valid.trigger_count
    );
    ExitCode::SUCCESS
}

fn run(cli: Cli) -> anyhow::Result<ExitCode> {
    match cli.command {
        Command::Replay {
            config,
            tenant,
            files,
        } => {
            let closed = replay_files(config.as_ref(), &files)?;
            let mut out = std::io::stdout().lock();
            if tenant {
                write_scoped_cdrs(&mut out, &closed)?;
            } else {
                write_cdrs(&mut out, &closed)?;
            }
            out.flush()?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Explain { config, files } => {
            let set = load_triggers(&config)?;
            let closed = replay_files(Some(&config), &files)?;
            let mut out = std::io::stdout().lock();
            let stats = postcall::explain::explain(&mut out, &closed, &set)?;
            out.flush()?;
            eprintln!(
                "postcall explain: {} sessions, {} triggers, {} webhooks would be sent",
                stats.sessions,
                set.len(),
                stats.fired
            );
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
        Command::Run { config, admin } => {
            // Every problem first, before anything is opened or started.
            let cfg = PluginConfig::load(&config)?;
            let valid = match postcall::config::validate(&cfg, &process_env) {
                Ok(v) => v,
                Err(problems) => {
                    let errors = print_problems(&problems, false);
                    eprintln!(
                        "postcall: run cannot start: {errors} problem(s) in the configuration"
                    );
                    return Ok(ExitCode::from(2));
                }
            };
            let rt = tokio::runtime::Runtime::new()?;
            let report = rt.block_on(async move {
                let shutdown = CancellationToken::new();
                let stop = shutdown.clone();
                tokio::spawn(stop_on_signals(stop));
                let opts = RunOptions {
                    admin,
                    ..RunOptions::default()
                };
                sidecar::run_validated(valid, opts, shutdown, None).await
            })?;
            tracing::info!(
                saved_open = report.saved_open,
                saved_closed = report.saved_closed,
                "postcall stopped"
            );
            Ok(ExitCode::SUCCESS)
        }
        Command::Demo {
            calls,
            seed,
            speed,
            gap_ms,
            admin,
            verbose: _,
            json,
        } => {
            let rt = tokio::runtime::Runtime::new()?;
            let report = rt.block_on(async move {
                let stopped = CancellationToken::new();
                let stop = stopped.clone();
                tokio::spawn(stop_on_signals(stop));
                let opts = DemoOptions {
                    calls,
                    seed,
                    speed,
                    mean_gap_ms: gap_ms,
                    admin,
                };
                demo::demo(
                    opts,
                    move |shown| match shown {
                        // The banner goes to stderr: stdout stays one line per webhook.
                        demo::Shown::Banner(b) => eprint!("{b}(Ctrl-C to stop)\n\n"),
                        demo::Shown::Webhook(w) => {
                            let mut out = std::io::stdout().lock();
                            let line = if json { w.json().to_string() } else { w.line() };
                            let _ = writeln!(out, "{line}");
                            let _ = out.flush();
                        }
                    },
                    stopped,
                )
                .await
            })?;
            eprintln!(
                "postcall demo: {} calls delivered, {} webhooks in all",
                report.calls, report.webhooks
            );
            if report.not_shown > 0 {
                eprintln!(
                    "postcall demo: {} webhooks were not printed (the output fell behind)",
                    report.not_shown
                );
            }
            Ok(ExitCode::SUCCESS)
        }
        Command::Record {
            config,
            out,
            frames,
            timeout,
            attempts,
        } => record(&config, &out, frames, timeout, attempts),
        Command::Schema { dialect } => {
            let dialect = match dialect {
                SchemaDialect::Draft04 => postcall::schema::Dialect::Draft4,
                SchemaDialect::Draft2020_12 => postcall::schema::Dialect::Draft2020_12,
            };
            let mut out = std::io::stdout().lock();
            serde_json::to_writer_pretty(&mut out, &postcall::schema::payload_schema(dialect))?;
            writeln!(out)?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Deliveries { config, action } => {
            dead_letters(&config, action)?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Cdrs { config, action } => cdrs(&config, action),
        Command::Reconcile {
            config,
            from,
            to,
            account,
            json,
            admin,
        } => reconcile(&config, &from, to.as_deref(), account, json, admin),
        Command::Check {
            config,
            without_secrets,
        } => Ok(check(&config, without_secrets)),
    }
}

/// `record`: frames from the PBX into `out`. Exit 0 when it stopped as asked (`--frames`,
/// `--timeout`, Ctrl-C) with at least one frame written; 1 when nothing was written or it gave
/// up after `attempts` failed connection attempts in a row (each failure is logged with its
/// cause: refused connection, refused token, refused subscription).
fn record(
    config: &Path,
    out: &Path,
    frames: Option<u64>,
    timeout: Option<u64>,
    attempts: u64,
) -> anyhow::Result<ExitCode> {
    use source::record::{RecordEnd, RecordLimits};
    let cfg = PluginConfig::load(config)?;
    let (settings, opts) = match postcall::config::validate_source(&cfg, &process_env) {
        Ok(v) => v,
        Err(problems) => {
            print_problems(&problems, false);
            return Ok(ExitCode::from(2));
        }
    };
    let file =
        std::fs::File::create(out).with_context(|| format!("{}: cannot create", out.display()))?;
    let rt = tokio::runtime::Runtime::new()?;
    let recorded = rt.block_on(async move {
        let shutdown = CancellationToken::new();
        let stop = shutdown.clone();
        let mut live = postcall::run::live::start(opts, Arc::new(settings), shutdown).await?;
        let mut w = std::io::BufWriter::new(file);
        let stop_asked = async {
            let deadline = async {
                match timeout {
                    Some(s) => tokio::time::sleep(std::time::Duration::from_secs(s)).await,
                    None => std::future::pending().await,
                }
            };
            tokio::select! {
                _ = tokio::signal::ctrl_c() => {}
                () = deadline => {}
            }
        };
        let limits = RecordLimits { frames, attempts };
        let r = source::record::record(
            &mut live.messages,
            &live.counters,
            &mut w,
            limits,
            stop_asked,
        )
        .await?;
        stop.cancel();
        // Let the client close the socket; the runtime drops whatever is left.
        let _ = tokio::time::timeout(std::time::Duration::from_secs(2), async {
            for t in live.tasks {
                let _ = t.await;
            }
        })
        .await;
        anyhow::Ok(r)
    })?;
    let n = recorded.frames;
    eprintln!("postcall record: {n} frames written to {}", out.display());
    let why = match recorded.end {
        RecordEnd::GaveUp { attempts } => Some(format!(
            "gave up after {attempts} connection attempts in a row without a subscription \
             (the cause of each is logged above)"
        )),
        _ if n > 0 => None,
        _ if recorded.connections == 0 => Some(
            "never subscribed: no connection to Blackhole succeeded (the causes are logged above)"
                .to_owned(),
        ),
        RecordEnd::SourceClosed => Some("the source stopped before any event arrived".to_owned()),
        _ => Some("subscribed, but no event arrived before the stop".to_owned()),
    };
    match why {
        None => Ok(ExitCode::SUCCESS),
        Some(why) => {
            eprintln!("postcall record: {why}");
            Ok(ExitCode::FAILURE)
        }
    }
}

#[derive(Clone, Copy, clap::ValueEnum)]
enum LogFormat {
    Text,
    Json,
}

/// The log level of a command unless `RUST_LOG` says otherwise: `info` for the long-running
/// commands that talk to a PBX, `warn` for the others (their output is on stdout), `error`
/// for a quiet demo.
fn default_log_level(command: &Command) -> &'static str {
    match command {
        Command::Run { .. } | Command::Record { .. } => "info",
        Command::Demo { verbose: true, .. } => "info",
        Command::Demo { .. } => "error",
        _ => "warn",
    }
}

/// An error and its causes, each cause left out when the text before already says it (an
/// error that prints its source would otherwise repeat it: "…(os error 2): …(os error 2)").
fn error_chain(e: &anyhow::Error) -> String {
    let mut text = e.to_string();
    for cause in e.chain().skip(1) {
        let c = cause.to_string();
        if !text.contains(&c) {
            text.push_str(": ");
            text.push_str(&c);
        }
    }
    text
}

/// Structured logs on stderr; `RUST_LOG` overrides the level.
fn init_logs(format: LogFormat, default_level: &str) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(default_level));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .with_writer(std::io::stderr);
    let _ = match format {
        LogFormat::Text => builder.try_init(),
        LogFormat::Json => builder.json().try_init(),
    };
}

/// Turns SIGTERM and SIGINT into a shutdown request.
async fn stop_on_signals(stop: CancellationToken) {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{signal, SignalKind};
        let (Ok(mut term), Ok(mut int)) = (
            signal(SignalKind::terminate()),
            signal(SignalKind::interrupt()),
        ) else {
            return;
        };
        tokio::select! {
            _ = term.recv() => {}
            _ = int.recv() => {}
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
    }
    tracing::info!("stopping");
    stop.cancel();
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    init_logs(cli.log_format, default_log_level(&cli.command));
    match run(cli) {
        Ok(code) => code,
        // `postcall sim … | head` closing the pipe early is not an error.
        Err(e)
            if e.downcast_ref::<std::io::Error>()
                .is_some_and(|io| io.kind() == std::io::ErrorKind::BrokenPipe) =>
        {
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("postcall: {}", error_chain(&e));
            ExitCode::from(2)
        }
    }
}
