//! The one validation `postcall check` and `postcall run` share: a [`PluginConfig`] becomes a
//! [`Validated`] configuration with everything `run` needs, or the list of *every* problem.
//!
//! Beyond the values of each section it looks at the world the way `run` will: it reads and
//! parses every CA file, checks that the outbox directory can be created and written and that
//! the disk reserve fits its file system, loads the trigger files and the reference files,
//! refuses trigger URLs the SSRF guard would refuse, and reports secret variables that are not
//! set by name (never printing a value). Relative paths are resolved against the
//! configuration file's directory. Host names other than `localhost` are not resolved here:
//! the guard checks the addresses they resolve to when connecting.

use std::fmt;
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use super::kazoo::is_account_id;
use super::{ConfigError, PluginConfig, TriggerConfig};
use crate::delivery::DeliveryOptions;
use crate::enrich::SharedEnricher;
use crate::net::guard::AddressGuard;
use crate::run::live::KazooOptions;
use crate::session::Settings;
use crate::trigger::{Trigger, TriggerError};

/// One thing wrong with a configuration.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Problem {
    /// A value in the configuration file, or a file or directory it names.
    Config(ConfigError),
    /// A secret's environment variable is not set: `run` cannot start.
    MissingSecret {
        /// The configuration file.
        file: PathBuf,
        /// The field naming the variable, e.g. `kazoo.api_key_env`.
        path: String,
        /// The variable.
        var: String,
    },
    /// A trigger document (file, trigger id, field path).
    Trigger(TriggerError),
    /// A setting that lets `run` start but will not do what it says.
    Warning {
        /// The configuration file.
        file: PathBuf,
        /// The field, e.g. `backfill.enabled`.
        path: String,
        /// What will not happen.
        message: String,
    },
    /// A reference file (contacts, rate deck); a warning leaves the file in use.
    Reference {
        /// File, line and what is wrong.
        message: String,
        /// Only a warning (a contact number that cannot be read).
        warning: bool,
    },
}

impl Problem {
    /// A warning: reported, but `run` starts.
    pub fn is_warning(&self) -> bool {
        matches!(
            self,
            Self::Reference { warning: true, .. } | Self::Warning { .. }
        )
    }

    /// A secret variable that is not set.
    pub fn is_missing_secret(&self) -> bool {
        matches!(self, Self::MissingSecret { .. })
    }
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Config(e) => write!(f, "{e}"),
            Self::MissingSecret { file, path, var } => write!(
                f,
                "{}: {path}: run will fail: environment variable {var} is not set",
                file.display()
            ),
            Self::Trigger(e) => write!(f, "{e}"),
            Self::Warning {
                file,
                path,
                message,
            } => write!(f, "{}: {path}: {message}", file.display()),
            Self::Reference { message, .. } => f.write_str(message),
        }
    }
}

/// A configuration `run` can start with: every part checked, every path resolved.
pub struct Validated {
    /// The configuration file.
    pub file: PathBuf,
    /// The assembler's settings.
    pub settings: Settings,
    /// The live source (`[kazoo]`), secrets read.
    pub kazoo: KazooOptions,
    /// Delivery limits.
    pub delivery: DeliveryOptions,
    /// The SSRF guard of webhook destinations.
    pub guard: AddressGuard,
    /// TLS for receivers: the public roots plus `delivery.ca_file`.
    pub receivers_tls: Arc<rustls::ClientConfig>,
    /// The outbox's directory (created by the outbox when missing).
    pub data_dir: PathBuf,
    /// `outbox.redb` in `data_dir`.
    pub outbox_path: PathBuf,
    /// `delivery.disk_reserve_kib` in bytes.
    pub disk_reserve_bytes: u64,
    /// `[journal]`: retention, size cap, prune interval.
    pub journal: crate::config::JournalSettings,
    /// `[store]`: PostgreSQL, or `None` for the embedded outbox.
    pub store: Option<crate::delivery::pg::PgOptions>,
    /// Trigger sources (files, remote, intervals).
    pub triggers: TriggerConfig,
    /// Triggers in the files.
    pub trigger_count: usize,
    /// Reference data, loaded.
    pub enricher: SharedEnricher,
    /// `[admin]`, turned into listener options by `run` once it knows the address.
    pub admin: crate::config::AdminSection,
    /// `[limits]`: what the PBX may make postcall hold.
    pub limits: crate::config::LimitsSection,
    /// `[backfill]`, when it is on and Crossbar is configured.
    pub backfill: Option<crate::backfill::BackfillOptions>,
    /// Problems that do not stop `run` (logged by `run`, printed by `check`).
    pub warnings: Vec<Problem>,
}

impl fmt::Debug for Validated {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Validated")
            .field("file", &self.file)
            .field("outbox_path", &self.outbox_path)
            .field("trigger_count", &self.trigger_count)
            .field("warnings", &self.warnings)
            .finish_non_exhaustive()
    }
}

/// Checks everything `run` needs, reading secret variables with `env`.
///
/// Blocking (it reads files): call it before the runtime starts or on a blocking thread.
///
/// # Errors
/// Every problem found (warnings included), in the order of the file's sections.
pub fn validate(
    cfg: &PluginConfig,
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<Validated, Vec<Problem>> {
    let mut out = Vec::new();
    let invalid = |path: &str, message: String| {
        Problem::Config(ConfigError::Invalid {
            file: cfg.file.clone(),
            path: path.to_owned(),
            message,
        })
    };
    let settings = cfg.settings_checked(&mut out);
    for id in cfg.tenants.keys().filter(|id| !is_account_id(id)) {
        out.push(invalid(&format!("tenants.{id}"), not_an_account_id(id)));
    }
    if let Some(e) = &cfg.enrich {
        for id in e.tenants.keys().filter(|id| !is_account_id(id)) {
            out.push(invalid(
                &format!("enrich.tenants.{id}"),
                not_an_account_id(id),
            ));
        }
    }

    let kazoo = cfg.kazoo_checked(env, &mut out);
    if let Some(ca) = cfg.kazoo.as_ref().and_then(|k| k.ca_file.as_deref()) {
        let path = super::resolve(&cfg.file, ca);
        if let Err(e) = crate::net::tls::client_config(Some(&path)) {
            out.push(invalid("kazoo.ca_file", e.to_string()));
        }
    }

    let delivery = cfg.delivery.checked(&cfg.file, &mut out);
    let receivers_tls =
        match crate::net::tls::client_config(cfg.delivery.ca_path(&cfg.file).as_deref()) {
            Ok(t) => Some(t),
            Err(e) => {
                out.push(invalid("delivery.ca_file", e.to_string()));
                None
            }
        };
    let data_dir = cfg.delivery.data_dir(&cfg.file);
    let disk_reserve_bytes = cfg.delivery.disk_reserve_kib.saturating_mul(1024);
    if let Err(message) = check_data_dir(&data_dir, disk_reserve_bytes) {
        out.push(invalid("delivery.data_dir", message));
    }

    let journal = cfg.journal.checked(&cfg.file, &mut out);
    let store = cfg.store.checked(
        &cfg.file,
        env,
        Duration::from_secs(cfg.delivery.attempt_timeout_secs),
        &mut out,
    );
    let triggers = cfg.triggers.checked(&cfg.file, &mut out);
    if let (Some(ca), true) = (&cfg.triggers.ca_file, cfg.triggers.remote_url.is_some()) {
        let path = super::resolve(&cfg.file, ca);
        if let Err(e) = crate::net::tls::client_config(Some(&path)) {
            out.push(invalid("triggers.ca_file", e.to_string()));
        }
    }
    let mut trigger_count = 0;
    if let Some(t) = &triggers {
        match crate::trigger::reload::build_from_files(&t.sources) {
            Ok(set) => {
                trigger_count = set.len();
                if let Some((_, guard)) = &delivery {
                    for trigger in set.triggers() {
                        if let Some(message) = refused_destination(trigger, guard) {
                            out.push(Problem::Trigger(TriggerError {
                                origin: trigger.origin.to_string(),
                                trigger_id: Some(trigger.id.clone()),
                                path: "action.url".into(),
                                message,
                            }));
                        }
                    }
                }
            }
            Err(e) => out.extend(e.0.into_iter().map(Problem::Trigger)),
        }
    }

    let enricher = settings.as_ref().map(|s| {
        let section = cfg.enrich.clone().unwrap_or_default();
        let sources = crate::enrich::EnrichSources::new(&section, cfg.base_dir(), s);
        let (enricher, errors) = SharedEnricher::load(sources);
        out.extend(errors.iter().map(|e| Problem::Reference {
            message: e.to_string(),
            warning: e.is_warning(),
        }));
        enricher
    });

    let has_crossbar = cfg.kazoo.as_ref().is_some_and(|k| k.crossbar_url.is_some());
    if cfg.backfill.enabled && cfg.kazoo.is_some() && !has_crossbar {
        out.push(Problem::Warning {
            file: cfg.file.clone(),
            path: "backfill.enabled".into(),
            message: "without kazoo.crossbar_url, calls that start and end while the event stream is down cannot be backfilled (set backfill.enabled = false to silence this)".into(),
        });
    }
    let backfill = (cfg.backfill.enabled && has_crossbar).then(|| cfg.backfill.options());

    if out.iter().any(|p| !p.is_warning()) {
        return Err(out);
    }
    match (
        settings,
        kazoo,
        delivery,
        receivers_tls,
        triggers,
        enricher,
        journal,
    ) {
        (
            Some(settings),
            Some(kazoo),
            Some((delivery, guard)),
            Some(receivers_tls),
            Some(triggers),
            Some(enricher),
            Some(journal),
        ) => Ok(Validated {
            file: cfg.file.clone(),
            settings,
            kazoo,
            delivery,
            guard,
            receivers_tls,
            outbox_path: data_dir.join("outbox.redb"),
            data_dir,
            disk_reserve_bytes,
            journal,
            store,
            triggers,
            trigger_count,
            enricher,
            admin: cfg.admin.clone(),
            limits: cfg.limits.clone(),
            backfill,
            warnings: out,
        }),
        // Every `None` above pushed a problem; this is not reached.
        _ => Err(out),
    }
}

/// The trigger set of the configuration's trigger files, as `run` builds it at start (what
/// `cdrs resend` matches past CDRs against). A remote trigger source is not fetched: with one,
/// re-send through the running sidecar's admin listener.
///
/// # Errors
/// Every problem in `[triggers]` and the trigger files, or a remote source.
pub fn trigger_files(cfg: &PluginConfig) -> Result<crate::trigger::TriggerSet, Vec<Problem>> {
    let mut out = Vec::new();
    let Some(t) = cfg.triggers.checked(&cfg.file, &mut out) else {
        return Err(out);
    };
    if t.remote.is_some() {
        out.push(Problem::Config(ConfigError::Invalid {
            file: cfg.file.clone(),
            path: "triggers.remote_url".into(),
            message: "a remote trigger source is only read by the running sidecar: re-send \
                      through its admin listener (POST /cdrs/{id}/resend)"
                .into(),
        }));
        return Err(out);
    }
    crate::trigger::reload::build_from_files(&t.sources)
        .map_err(|e| e.0.into_iter().map(Problem::Trigger).collect())
}

/// What `record` needs: the settings and the live source (`[kazoo]`, its CA file read), or
/// every problem in them.
///
/// # Errors
/// Every problem in `[cdr]`, `[tenants]` and `[kazoo]`.
pub fn validate_source(
    cfg: &PluginConfig,
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<(Settings, KazooOptions), Vec<Problem>> {
    let mut out = Vec::new();
    let settings = cfg.settings_checked(&mut out);
    let kazoo = cfg.kazoo_checked(env, &mut out);
    if let Some(ca) = kazoo.as_ref().and_then(|k| k.ca_file.as_deref()) {
        if let Err(e) = crate::net::tls::client_config(Some(ca)) {
            out.push(Problem::Config(ConfigError::Invalid {
                file: cfg.file.clone(),
                path: "kazoo.ca_file".into(),
                message: e.to_string(),
            }));
        }
    }
    match (settings, kazoo) {
        (Some(s), Some(k)) if out.is_empty() => Ok((s, k)),
        _ => Err(out),
    }
}

fn not_an_account_id(id: &str) -> String {
    format!("{id:?} is not a Kazoo account id (32 lowercase hex digits)")
}

/// Why webhooks of `trigger` would all be refused by `guard`, judged without DNS: IP literals
/// and `localhost` (which resolves to loopback). Other names are checked at connect time.
fn refused_destination(trigger: &Trigger, guard: &AddressGuard) -> Option<String> {
    let host = trigger.action.url.host()?;
    let host = host.trim_start_matches('[').trim_end_matches(']');
    let ip = match host.parse::<IpAddr>() {
        Ok(ip) => ip,
        Err(_) if is_localhost(host) => IpAddr::from([127, 0, 0, 1]),
        Err(_) => return None,
    };
    guard.check(ip).err().map(|e| {
        format!(
            "{e}: every webhook of this trigger would be refused \
             (add a CIDR covering it to delivery.allow_private to allow it)"
        )
    })
}

/// `localhost` and names under it (RFC 6761: they resolve to loopback).
fn is_localhost(host: &str) -> bool {
    let h = host.trim_end_matches('.').to_ascii_lowercase();
    h == "localhost" || h.ends_with(".localhost")
}

/// `dir` exists as a writable directory, or can be created; the reserve fits its disk.
fn check_data_dir(dir: &Path, reserve_bytes: u64) -> Result<(), String> {
    let shown = dir.display();
    let existing = dir
        .ancestors()
        .map(|p| {
            if p.as_os_str().is_empty() {
                Path::new(".")
            } else {
                p
            }
        })
        .find(|p| p.exists())
        .unwrap_or(Path::new("."));
    let meta = std::fs::metadata(existing).map_err(|e| format!("{shown}: {e}"))?;
    if !meta.is_dir() {
        return Err(if existing == dir {
            format!("{shown} is not a directory")
        } else {
            format!(
                "{shown} cannot be created: {} is not a directory",
                existing.display()
            )
        });
    }
    writable(existing).map_err(|e| {
        if existing == dir {
            format!("{shown} is not writable: {e}")
        } else {
            format!(
                "{shown} cannot be created: {} is not writable: {e}",
                existing.display()
            )
        }
    })?;
    let outbox = dir.join("outbox.redb");
    if outbox.exists() && !outbox.is_file() {
        return Err(format!("{} is not a file", outbox.display()));
    }
    if reserve_bytes > 0 {
        if let Some(available) = available_bytes(existing) {
            // A reserve file left by the previous run counts as free: it is ours to give back.
            let own = std::fs::metadata(dir.join("outbox.redb.reserve")).map_or(0, |m| m.len());
            let free = available.saturating_add(own);
            if reserve_bytes > free / 2 {
                return Err(format!(
                    "disk_reserve_kib = {} does not fit: {} KiB are free on the file system of \
                     {shown}, and the reserve may take at most half of it",
                    reserve_bytes / 1024,
                    free / 1024
                ));
            }
        }
    }
    Ok(())
}

#[cfg(unix)]
fn writable(dir: &Path) -> std::io::Result<()> {
    use rustix::fs::{access, Access};
    access(dir, Access::WRITE_OK | Access::EXEC_OK).map_err(std::io::Error::from)
}

#[cfg(not(unix))]
fn writable(dir: &Path) -> std::io::Result<()> {
    if std::fs::metadata(dir)?.permissions().readonly() {
        return Err(std::io::Error::from(std::io::ErrorKind::PermissionDenied));
    }
    Ok(())
}

/// Bytes an unprivileged process may still write on `dir`'s file system.
#[cfg(unix)]
fn available_bytes(dir: &Path) -> Option<u64> {
    let s = rustix::fs::statvfs(dir).ok()?;
    Some(s.f_bavail.saturating_mul(s.f_frsize))
}

#[cfg(not(unix))]
fn available_bytes(_dir: &Path) -> Option<u64> {
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn localhost_names() {
        assert!(is_localhost("localhost"));
        assert!(is_localhost("LocalHost."));
        assert!(is_localhost("api.localhost"));
        assert!(!is_localhost("localhost.example.com"));
        assert!(!is_localhost("notlocalhost"));
    }

    fn trigger(url: &str) -> Trigger {
        let doc = format!(
            "[[trigger]]\nid = \"t\"\ntenant = \"3b1f0a9c6e2d4f8a9b7c5d3e1f2a4b6c\"\n\
             [trigger.action]\nurl = \"{url}\"\nallow_http = true\n"
        );
        let opts = crate::trigger::BuildOptions::default();
        crate::trigger::file::parse_document(&doc, "t.toml", crate::trigger::DocFormat::Toml, opts)
            .unwrap()
            .remove(0)
    }

    #[test]
    fn destinations_the_guard_refuses_without_dns() {
        let strict = AddressGuard::strict(Vec::new());
        for url in [
            "https://127.0.0.1/h",
            "https://[::1]:8443/h",
            "https://169.254.169.254/latest",
            "https://[::ffff:10.0.0.1]/h",
            "http://localhost:8080/h",
            "https://api.localhost/h",
        ] {
            let m = refused_destination(&trigger(url), &strict);
            assert!(m.is_some_and(|m| m.contains("not public")), "{url}");
        }
        for url in [
            "https://8.8.8.8/h",
            "https://hooks.example.com/h",
            "https://[2606:4700::1111]/",
        ] {
            assert_eq!(refused_destination(&trigger(url), &strict), None, "{url}");
        }
        let lo = AddressGuard::strict(vec!["127.0.0.0/8".parse().unwrap()]);
        assert_eq!(
            refused_destination(&trigger("http://localhost:9/h"), &lo),
            None
        );
        assert!(refused_destination(&trigger("https://[::1]/h"), &lo).is_some());
    }

    #[test]
    fn data_dir_rules() {
        let tmp = tempfile::tempdir().unwrap();
        assert_eq!(check_data_dir(tmp.path(), 0), Ok(()));
        assert_eq!(check_data_dir(&tmp.path().join("a/b"), 8192 * 1024), Ok(()));
        let file = tmp.path().join("f");
        std::fs::write(&file, "x").unwrap();
        let e = check_data_dir(&file, 0).unwrap_err();
        assert!(e.ends_with("f is not a directory"), "{e}");
        let e = check_data_dir(&file.join("sub"), 0).unwrap_err();
        assert!(
            e.contains("cannot be created") && e.contains("is not a directory"),
            "{e}"
        );
        let e = check_data_dir(tmp.path(), u64::MAX / 2).unwrap_err();
        assert!(e.contains("does not fit"), "{e}");
    }
}
