//! The validated, immutable trigger and the trigger set, indexed by tenant (PRODUCT.md §4).
//!
//! A [`TriggerSet`] is built once (see [`super::file`]) and never changed; reloading builds a
//! new one. Matching is pure: a [`ClosedSession`] in, the triggers that fire out.

use std::collections::{BTreeMap, HashMap};
use std::fmt;
use std::sync::Arc;

use super::filter::{first_failure, Failure, Filter};
use crate::cdr::Cdr;
use crate::clock::WallTime;
use crate::delivery::sign::SigningKey;
use crate::delivery::{webhook_id, Endpoint, Job};
use crate::net::Secret;
use crate::session::ClosedSession;

pub use crate::delivery::{Format, Method};

/// A Standard Webhooks signing secret (`whsec_<base64>`), validated when the trigger set is
/// built (delivery's [`SigningKey`] rules). Never printed.
#[derive(Clone, PartialEq, Eq)]
pub struct SigningSecret {
    text: Secret,
    key: SigningKey,
}

impl SigningSecret {
    /// Parses `whsec_<base64>`.
    ///
    /// # Errors
    /// A message that never contains the secret.
    pub fn parse(text: &str) -> Result<Self, String> {
        let text = Secret::new(text);
        let key = SigningKey::parse(&text).map_err(|e| e.to_string())?;
        Ok(Self { text, key })
    }

    /// The HMAC key (the decoded base64).
    pub fn key(&self) -> &[u8] {
        self.key.bytes()
    }

    /// The decoded signing key.
    pub fn signing_key(&self) -> &SigningKey {
        &self.key
    }

    /// The secret as configured (`whsec_…`).
    pub fn expose(&self) -> &str {
        self.text.expose()
    }
}

impl fmt::Debug for SigningSecret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("SigningSecret([redacted])")
    }
}

/// What a trigger does when it fires (the seed's "Action").
#[derive(Clone, PartialEq, Eq)]
pub struct Action {
    /// Destination, `https://` (or `http://` when [`Action::allow_http`]).
    pub url: hyper::Uri,
    /// Request method.
    pub method: Method,
    /// Payload encoding (always [`Format::Form`] for GET).
    pub format: Format,
    /// Retries after a failed first attempt (0–10).
    pub retries: u8,
    /// Static key/values sent as `customData`.
    pub custom_data: BTreeMap<String, String>,
    /// Standard Webhooks signing secret, if the receiver verifies signatures.
    pub secret: Option<SigningSecret>,
    /// `http://` was explicitly allowed for this trigger (or for every trigger in
    /// `[triggers] allow_http`).
    pub allow_http: bool,
}

/// The URL without its query string: safe to log (Logic Apps URLs carry a `sig` parameter).
pub fn redacted_url(url: &hyper::Uri) -> String {
    let scheme = url.scheme_str().unwrap_or("");
    let authority = url.authority().map_or("", |a| a.as_str());
    // Credentials in the authority are cut as well.
    let host = authority.rsplit('@').next().unwrap_or("");
    let q = if url.query().is_some() {
        "?[redacted]"
    } else {
        ""
    };
    format!("{scheme}://{host}{}{q}", url.path())
}

impl fmt::Debug for Action {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Action")
            .field("url", &redacted_url(&self.url))
            .field("method", &self.method)
            .field("format", &self.format)
            .field("retries", &self.retries)
            .field("custom_data", &self.custom_data)
            .field("secret", &self.secret)
            .field("allow_http", &self.allow_http)
            .finish()
    }
}

/// One validated trigger.
#[derive(Clone, Debug)]
pub struct Trigger {
    /// Unique id, sent as `triggerId`.
    pub id: String,
    /// The tenant (Kazoo account id) whose sessions it sees.
    pub tenant_id: String,
    /// Owning user: the trigger only sees sessions this user took part in.
    pub user_id: Option<String>,
    /// A disabled trigger is validated but never fires.
    pub enabled: bool,
    /// Conditions, all of which must hold.
    pub filters: Vec<Filter>,
    /// What to send.
    pub action: Action,
    /// Where it was defined (file path or remote URL without query).
    pub origin: Arc<str>,
}

impl Trigger {
    /// Whether every filter holds for `cdr` (ownership is checked by the set, not here).
    #[inline]
    pub fn filters_match(&self, cdr: &Cdr) -> bool {
        self.filters.iter().all(|f| f.matches(cdr))
    }

    /// `id` of the payload: the owning user, else the tenant.
    pub fn payload_id(&self) -> &str {
        self.user_id.as_deref().unwrap_or(&self.tenant_id)
    }
}

/// Why a trigger of the session's tenant does or does not fire for it
/// ([`TriggerSet::explain`]).
#[derive(Clone, Debug)]
pub enum Verdict<'a> {
    /// It fires (it is one of [`TriggerSet::matches`]).
    Fires,
    /// It is disabled.
    Disabled,
    /// It is owned by a user who took no part in the session.
    NotOwner(&'a str),
    /// This condition, the first in the order written that fails.
    Failed(Failure<'a>),
}

/// A trigger that fires for a session.
#[derive(Clone, Copy, Debug)]
pub struct Match<'a> {
    /// The trigger.
    pub trigger: &'a Arc<Trigger>,
    /// `id` of the payload: the owning user id, else the tenant id.
    pub payload_id: &'a str,
}

/// A trigger in the index, with its conditions as positions in the tenant's filter table,
/// cheapest first.
#[derive(Debug)]
struct Entry {
    trigger: Arc<Trigger>,
    filters: Box<[u32]>,
}

impl Action {
    /// The delivery endpoint: a copy, so a pending delivery goes where it was meant to when
    /// the trigger is edited. The secret is not copied: a signed delivery is signed with the
    /// trigger's current key when it is sent.
    pub fn endpoint(&self) -> Endpoint {
        Endpoint {
            url: self.url.to_string(),
            method: self.method,
            format: self.format,
            retries: u32::from(self.retries),
            signed: self.secret.is_some(),
        }
    }
}

impl Match<'_> {
    /// The delivery job of this match for `session`, whose CDR is `cdr` as JSON (serialise
    /// it once per session and share it among its matches). Due at `now`.
    pub fn job(
        &self,
        session: &ClosedSession,
        cdr: &serde_json::value::RawValue,
        now: WallTime,
    ) -> Job {
        let t = self.trigger;
        Job {
            webhook_id: webhook_id(&session.cdr.id, &t.id),
            trigger_id: t.id.clone(),
            endpoint: t.action.endpoint(),
            payload: crate::delivery::payload::payload(
                &t.id,
                self.payload_id,
                &t.tenant_id,
                cdr,
                &t.action.custom_data,
            ),
            attempts: 0,
            next_attempt_us: now.as_us(),
            created_us: now.as_us(),
            last_error: None,
        }
    }
}

#[derive(Debug, Default)]
struct TenantIndex {
    /// The tenant's distinct conditions; each is evaluated at most once per session.
    filters: Vec<Filter>,
    /// Enabled triggers without an owning user, in definition order.
    wide: Vec<Entry>,
    /// Enabled user-owned triggers by user id, each list in definition order.
    users: HashMap<Box<str>, Vec<Entry>>,
}

impl TenantIndex {
    fn entry(&mut self, t: &Arc<Trigger>, interned: &mut HashMap<Box<str>, u32>) -> Entry {
        let mut filters: Vec<u32> = t
            .filters
            .iter()
            .map(|f| {
                *interned.entry(f.key().into()).or_insert_with(|| {
                    self.filters.push(f.clone());
                    u32::try_from(self.filters.len() - 1).unwrap_or(u32::MAX)
                })
            })
            .collect();
        filters.sort_by_key(|&i| (self.filters[i as usize].cost(), i));
        filters.dedup();
        Entry {
            trigger: t.clone(),
            filters: filters.into(),
        }
    }
}

/// An immutable set of triggers, indexed by tenant and owning user.
#[derive(Debug, Default)]
pub struct TriggerSet {
    all: Vec<Arc<Trigger>>,
    tenants: HashMap<Box<str>, TenantIndex>,
}

impl TriggerSet {
    /// Indexes `triggers` (ids must already be unique; see [`super::file::build_set`]).
    pub(crate) fn from_triggers(triggers: Vec<Trigger>) -> Self {
        let all: Vec<Arc<Trigger>> = triggers.into_iter().map(Arc::new).collect();
        let mut tenants: HashMap<Box<str>, TenantIndex> = HashMap::new();
        let mut interned: HashMap<Box<str>, HashMap<Box<str>, u32>> = HashMap::new();
        for t in all.iter().filter(|t| t.enabled) {
            let idx = tenants.entry(t.tenant_id.as_str().into()).or_default();
            let keys = interned.entry(t.tenant_id.as_str().into()).or_default();
            let entry = idx.entry(t, keys);
            match &t.user_id {
                None => idx.wide.push(entry),
                Some(u) => idx.users.entry(u.as_str().into()).or_default().push(entry),
            }
        }
        Self { all, tenants }
    }

    /// Every trigger (enabled or not) in definition order.
    pub fn triggers(&self) -> &[Arc<Trigger>] {
        &self.all
    }

    /// Number of triggers (enabled or not).
    pub fn len(&self) -> usize {
        self.all.len()
    }

    /// Whether the set has no trigger.
    pub fn is_empty(&self) -> bool {
        self.all.is_empty()
    }

    /// The trigger with this id.
    pub fn get(&self, id: &str) -> Option<&Arc<Trigger>> {
        self.all.iter().find(|t| t.id == id)
    }

    /// The triggers that fire for `session`: its tenant's enabled triggers whose filters all
    /// hold, tenant-wide ones first (definition order), then those owned by each user who took
    /// part (in `user_ids` order, each trigger at most once). A session without a tenant
    /// matches nothing.
    pub fn matches<'a>(
        &'a self,
        session: &'a ClosedSession,
    ) -> impl Iterator<Item = Match<'a>> + 'a {
        let idx = session
            .tenant_id
            .as_deref()
            .and_then(|t| self.tenants.get(t));
        let cdr = &session.cdr;
        let users = &session.user_ids;
        let table: &[Filter] = idx.map_or(&[], |i| &i.filters);
        // Per session: 0 = not evaluated yet, 1 = false, 2 = true.
        let mut memo = vec![0u8; table.len()];
        let wide = idx.into_iter().flat_map(|i| i.wide.iter());
        let owned = idx.into_iter().flat_map(move |i| {
            users
                .iter()
                .enumerate()
                // A user listed twice still fires their trigger once.
                .filter(move |(n, u)| !users[..*n].contains(u))
                .filter_map(move |(_, u)| i.users.get(u.as_str()))
                .flatten()
        });
        wide.chain(owned)
            .filter(move |e| {
                e.filters.iter().all(|&f| {
                    let m = &mut memo[f as usize];
                    if *m == 0 {
                        *m = 1 + u8::from(table[f as usize].matches(cdr));
                    }
                    *m == 2
                })
            })
            .map(|e| Match {
                trigger: &e.trigger,
                payload_id: e.trigger.payload_id(),
            })
    }

    /// Every trigger of the session's tenant in definition order, with why it does or does not
    /// fire. Those that fire are exactly [`TriggerSet::matches`] (the code `run` uses); for
    /// the others the reason is the first that applies: disabled, owned by a user not in the
    /// call, or the first condition that fails ([`first_failure`], the same
    /// [`Filter::matches`]).
    pub fn explain<'a>(
        &'a self,
        session: &'a ClosedSession,
    ) -> Vec<(&'a Arc<Trigger>, Verdict<'a>)> {
        let fired: Vec<&str> = self
            .matches(session)
            .map(|m| m.trigger.id.as_str())
            .collect();
        let tenant = session.tenant_id.as_deref();
        self.all
            .iter()
            .filter(|t| Some(t.tenant_id.as_str()) == tenant)
            .filter_map(|t| {
                let verdict = if fired.contains(&t.id.as_str()) {
                    Verdict::Fires
                } else if !t.enabled {
                    Verdict::Disabled
                } else if let Some(u) = t
                    .user_id
                    .as_deref()
                    .filter(|u| !session.user_ids.iter().any(|x| x == u))
                {
                    Verdict::NotOwner(u)
                } else {
                    // Enabled, owned as needed and not fired: a condition failed.
                    Verdict::Failed(first_failure(&t.filters, &session.cdr)?)
                };
                Some((t, verdict))
            })
            .collect()
    }

    /// The same answer as [`TriggerSet::matches`] without the index: every trigger is checked
    /// for tenant, owner and filters. The reference for tests and the benchmark's baseline.
    pub fn matches_unindexed<'a>(
        &'a self,
        session: &'a ClosedSession,
    ) -> impl Iterator<Item = Match<'a>> + 'a {
        let tenant = session.tenant_id.as_deref();
        self.all
            .iter()
            .filter(move |t| {
                t.enabled
                    && Some(t.tenant_id.as_str()) == tenant
                    && t.user_id
                        .as_ref()
                        .is_none_or(|u| session.user_ids.contains(u))
                    && t.filters_match(&session.cdr)
            })
            .map(|t| Match {
                trigger: t,
                payload_id: t.payload_id(),
            })
    }
}
