//! Enrichment: number location, contact-directory matches and rating, added to a closed
//! session's CDR (PRODUCT.md §3 "Numbers", "Rating", "Directory matches").
//!
//! ```text
//! plugin.toml [enrich] ──► EnrichSources ──(files::load_*)──► Enricher ──ArcSwap──► SharedEnricher
//!                                                               │ pure: enrich(&mut Cdr, tenant, billable legs)
//! ```
//!
//! - [`Enricher`] is an immutable snapshot of every tenant's directories and rate deck. Its
//!   [`Enricher::enrich`] is pure: no I/O, no clock; the same CDR and data give the same result.
//! - [`SharedEnricher`] owns the current snapshot in an [`ArcSwap`]. [`SharedEnricher::reload`]
//!   reads every file again off to the side and swaps in a complete new snapshot with one
//!   `store`. A file that fails keeps its last good data and is reported as a
//!   [`FileError`] with file and line; a bad file never stops the pipeline.
//! - Location comes from data compiled into the binary ([`location`]); nothing is read at run
//!   time for it.

pub mod directory;
pub mod files;
pub mod location;
pub mod rating;

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use arc_swap::ArcSwap;
use serde::Deserialize;

use crate::cdr::Cdr;
use crate::session::numbers::Region;
use crate::session::{BillableLeg, ClosedSession, Settings};

pub use directory::{find_matches, Contact, Directory, MatchKind};
pub use files::{DirectoryNames, FileError};
pub use location::{locate, Location};
pub use rating::{Direction, Rate, RateDeck, Rating};

/// `[enrich]` in `plugin.toml`: which reference files enrich CDRs. Without this section CDRs
/// get their location (the data is built in) and nothing else.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EnrichSection {
    /// Fill `cliCtry`, `cliArea`, `cliLoc`, `cliState` (default true).
    #[serde(default = "yes")]
    pub location: bool,
    /// Contact directory shared by every tenant (CSV or JSON); relative to the config file.
    pub contacts: Option<PathBuf>,
    /// `dirId` of the shared directory (default: the JSON file's `id`, else the file stem).
    pub directory_id: Option<String>,
    /// `dirName` of the shared directory (default: the JSON file's `name`, else the file stem).
    pub directory_name: Option<String>,
    /// Rate deck for tenants without their own (CSV).
    pub rate_deck: Option<PathBuf>,
    /// Also match contacts on the last 7 digits (default false).
    #[serde(default)]
    pub last7_match: bool,
    /// `[enrich.tenants.<account_id>]`.
    #[serde(default)]
    pub tenants: BTreeMap<String, EnrichTenantSection>,
}

fn yes() -> bool {
    true
}

impl Default for EnrichSection {
    /// No `[enrich]` section: location on, no directories, no rate deck.
    fn default() -> Self {
        Self {
            location: true,
            contacts: None,
            directory_id: None,
            directory_name: None,
            rate_deck: None,
            last7_match: false,
            tenants: BTreeMap::new(),
        }
    }
}

/// `[enrich.tenants.<account_id>]`: a tenant's own files.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EnrichTenantSection {
    /// The tenant's own directory, searched before the shared one.
    pub contacts: Option<PathBuf>,
    /// `dirId` of the tenant's directory.
    pub directory_id: Option<String>,
    /// `dirName` of the tenant's directory.
    pub directory_name: Option<String>,
    /// The tenant's rate deck, used instead of the shared one.
    pub rate_deck: Option<PathBuf>,
    /// Overrides `[enrich] last7_match`.
    pub last7_match: Option<bool>,
}

/// A directory file to load.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DirectorySource {
    /// The file.
    pub path: PathBuf,
    /// Configured id and name.
    pub names: DirectoryNames,
    /// Region its national numbers are read in.
    pub region: Region,
}

/// Files of one tenant (or of the shared defaults).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TenantSources {
    /// Contact directory.
    pub contacts: Option<DirectorySource>,
    /// Rate deck.
    pub rate_deck: Option<PathBuf>,
    /// Last-7-digit matching.
    pub last7: bool,
}

/// Every reference file, resolved: what [`SharedEnricher`] loads and reloads. The default is
/// location alone.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EnrichSources {
    /// Fill the location fields.
    pub location: bool,
    /// Shared directory and default deck.
    pub shared: TenantSources,
    /// Per-tenant files.
    pub tenants: BTreeMap<String, TenantSources>,
}

impl Default for EnrichSources {
    fn default() -> Self {
        Self::new(
            &EnrichSection::default(),
            Path::new(""),
            &Settings::default(),
        )
    }
}

impl EnrichSources {
    /// Resolves `[enrich]`: relative paths against `base` (the config file's directory),
    /// regions from the tenant settings.
    pub fn new(section: &EnrichSection, base: &Path, settings: &Settings) -> Self {
        let resolve = |p: &PathBuf| base.join(p);
        let contacts = |path: Option<&Path>, id: &Option<String>, name: &Option<String>, region| {
            path.map(|p| DirectorySource {
                path: base.join(p),
                names: DirectoryNames {
                    id: id.clone(),
                    name: name.clone(),
                },
                region,
            })
        };
        let shared_region = settings.default_tenant.region;
        let shared = TenantSources {
            contacts: contacts(
                section.contacts.as_deref(),
                &section.directory_id,
                &section.directory_name,
                shared_region,
            ),
            rate_deck: section.rate_deck.as_ref().map(resolve),
            last7: section.last7_match,
        };
        let tenants = section
            .tenants
            .iter()
            .map(|(id, t)| {
                let src = TenantSources {
                    contacts: contacts(
                        t.contacts.as_deref(),
                        &t.directory_id,
                        &t.directory_name,
                        settings.tenant(Some(id)).region,
                    ),
                    rate_deck: t.rate_deck.as_ref().map(resolve),
                    last7: t.last7_match.unwrap_or(section.last7_match),
                };
                (id.clone(), src)
            })
            .collect();
        Self {
            location: section.location,
            shared,
            tenants,
        }
    }
}

/// What one tenant is enriched with.
#[derive(Debug, Clone, Default)]
struct TenantData {
    directory: Option<Arc<Directory>>,
    rate_deck: Option<Arc<RateDeck>>,
    last7: bool,
}

/// An immutable snapshot of all enrichment data. [`Enricher::enrich`] is pure.
#[derive(Debug, Clone, Default)]
pub struct Enricher {
    location: bool,
    shared: TenantData,
    tenants: HashMap<String, TenantData>,
}

impl Enricher {
    /// An enricher that only fills location fields (or nothing, with `location = false`).
    pub fn location_only(location: bool) -> Self {
        Self {
            location,
            ..Self::default()
        }
    }

    /// Sets the shared directory and rate deck (for tests and embedding without files).
    pub fn with_shared(
        mut self,
        directory: Option<Directory>,
        rate_deck: Option<RateDeck>,
        last7: bool,
    ) -> Self {
        self.shared = TenantData {
            directory: directory.map(Arc::new),
            rate_deck: rate_deck.map(Arc::new),
            last7,
        };
        self
    }

    /// Loads every file of `sources`. A file that fails keeps the data it had in `previous`
    /// (none on a first load) and its error is returned; loading never fails as a whole.
    /// Warnings ([`FileError::is_warning`]) are returned beside the errors.
    pub fn load(sources: &EnrichSources, previous: Option<&Enricher>) -> (Self, Vec<FileError>) {
        let mut errors = Vec::new();
        let mut load_set = |src: &TenantSources, prev: Option<&TenantData>| -> TenantData {
            let directory = src.contacts.as_ref().and_then(|c| {
                match files::load_directory(&c.path, &c.names, c.region) {
                    Ok((d, warnings)) => {
                        errors.extend(warnings);
                        Some(Arc::new(d))
                    }
                    Err(e) => {
                        errors.push(e);
                        prev.and_then(|p| p.directory.clone())
                    }
                }
            });
            let rate_deck =
                src.rate_deck
                    .as_ref()
                    .and_then(|path| match files::load_rate_deck(path) {
                        Ok(d) => Some(Arc::new(d)),
                        Err(e) => {
                            errors.push(e);
                            prev.and_then(|p| p.rate_deck.clone())
                        }
                    });
            TenantData {
                directory,
                rate_deck,
                last7: src.last7,
            }
        };
        let shared = load_set(&sources.shared, previous.map(|p| &p.shared));
        let tenants = sources
            .tenants
            .iter()
            .map(|(id, src)| {
                let prev = previous.and_then(|p| p.tenants.get(id));
                (id.clone(), load_set(src, prev))
            })
            .collect();
        let enricher = Self {
            location: sources.location,
            shared,
            tenants,
        };
        (enricher, errors)
    }

    /// Adds location, directory matches and rating to `cdr`.
    ///
    /// - Location from `cliNum` when it is a valid E.164 number and the call is not internal.
    /// - `directoryMatches`: the tenant's own directory, then the shared one.
    /// - Rating with the tenant's deck (else the shared deck): outbound legs on the dialled
    ///   number, inbound legs on the DID. A rate's `direction` decides which legs it applies
    ///   to; a rate without one applies to both, as in Kazoo, so a deck meant only for
    ///   outbound calls marks its rows `outbound`.
    ///   `rate` = 1 and `rateCost` = the sum over rated legs when at least one leg found a rate;
    ///   `rateName`/`rateBand` are the first rated leg's `rate_name`/`description`.
    pub fn enrich(&self, cdr: &mut Cdr, tenant: Option<&str>, billable: &[BillableLeg]) {
        let own = tenant.and_then(|t| self.tenants.get(t));
        let external = cdr.dir != crate::cdr::Direction::Internal;
        if let (true, true, Some(cli)) = (self.location, external, cdr.cli_num.as_deref()) {
            let loc = locate(cli);
            cdr.cli_ctry = loc.country;
            cdr.cli_area = loc.area;
            cdr.cli_loc = loc.place.map(str::to_owned);
            cdr.cli_state = loc.state.map(str::to_owned);
        }
        if let (true, Some(cli)) = (external, cdr.cli_num.as_deref()) {
            let dirs: Vec<&Directory> = [own.and_then(|t| t.directory.as_deref())]
                .into_iter()
                .chain([self.shared.directory.as_deref()])
                .flatten()
                .collect();
            let last7 = own.map_or(self.shared.last7, |t| t.last7);
            if !dirs.is_empty() {
                cdr.directory_matches = find_matches(&dirs, cli, last7)
                    .into_iter()
                    .map(|(_, m)| m)
                    .collect();
            }
        }
        let deck = own
            .and_then(|t| t.rate_deck.as_deref())
            .or(self.shared.rate_deck.as_deref());
        if let Some(deck) = deck {
            let legs = billable.iter().map(|l| {
                let d = if l.outbound {
                    Direction::Outbound
                } else {
                    Direction::Inbound
                };
                (l.number.as_str(), d, l.billable_secs)
            });
            if let Some(r) = rating::rate_legs(deck, legs) {
                cdr.rate = 1;
                cdr.rate_cost = Some(r.cost_units as f64 / rating::UNITS_PER_CURRENCY as f64);
                cdr.rate_name = r.name;
                cdr.rate_band = r.band;
            }
        }
    }

    /// [`Enricher::enrich`] on a closed session's CDR with its tenant and billable legs.
    pub fn enrich_session(&self, session: &mut ClosedSession) {
        let ClosedSession {
            cdr,
            tenant_id,
            billable,
            ..
        } = session;
        self.enrich(cdr, tenant_id.as_deref(), billable);
    }
}

/// The current [`Enricher`], swappable while CDRs are being enriched.
pub struct SharedEnricher {
    sources: EnrichSources,
    current: ArcSwap<Enricher>,
}

impl SharedEnricher {
    /// Loads every file; the errors of files that could not be loaded are returned beside it
    /// (their data is absent until a reload succeeds).
    pub fn load(sources: EnrichSources) -> (Self, Vec<FileError>) {
        if sources.location {
            location::warm_up();
        }
        let (enricher, errors) = Enricher::load(&sources, None);
        let shared = Self {
            sources,
            current: ArcSwap::from_pointee(enricher),
        };
        (shared, errors)
    }

    /// Reads every file again and swaps in the new snapshot in one store. Files that fail
    /// keep their previous data; their errors are returned.
    pub fn reload(&self) -> Vec<FileError> {
        let previous = self.current.load_full();
        let (next, errors) = Enricher::load(&self.sources, Some(&previous));
        self.current.store(Arc::new(next));
        errors
    }

    /// The current snapshot (take it once per CDR).
    pub fn current(&self) -> Arc<Enricher> {
        self.current.load_full()
    }

    /// Enriches one closed session with the current snapshot.
    pub fn enrich_session(&self, session: &mut ClosedSession) {
        self.current.load().enrich_session(session);
    }
}

#[cfg(test)]
mod tests;
