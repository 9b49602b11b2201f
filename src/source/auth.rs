//! Where the Blackhole and Crossbar auth token comes from: a static token, or an account API
//! key exchanged at Crossbar and refreshed before it expires.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::Mutex;

use super::crossbar::{Crossbar, CrossbarError, IssuedToken};
use crate::clock::WallTime;
use crate::net::Secret;

/// Why no token could be had.
#[derive(Debug, thiserror::Error)]
pub enum AuthError {
    /// The API key exchange failed (Crossbar's error is in the message, not a `source()`, so
    /// it is said once).
    #[error("token exchange: {0}")]
    Exchange(CrossbarError),
}

impl From<CrossbarError> for AuthError {
    fn from(e: CrossbarError) -> Self {
        Self::Exchange(e)
    }
}

/// What the operator configured.
#[derive(Debug, Clone)]
pub enum Credentials {
    /// A token used as is (it must outlive the process, or be replaced by a restart).
    Token(Secret),
    /// An account API key, exchanged at `PUT /v2/api_auth`.
    ApiKey(Secret),
}

/// Hands out a currently valid token.
#[derive(Debug)]
pub struct Auth {
    credentials: Credentials,
    crossbar: Option<Crossbar>,
    cached: Mutex<Option<IssuedToken>>,
    refresh_before: Duration,
    assumed_lifetime: Duration,
}

impl Auth {
    /// Token source for `credentials`; an API key needs `crossbar`. Exchanged tokens are
    /// renewed `refresh_before` their expiry (opaque tokens are assumed to live
    /// `assumed_lifetime`, Kazoo's default being one hour).
    pub fn new(
        credentials: Credentials,
        crossbar: Option<Crossbar>,
        refresh_before: Duration,
        assumed_lifetime: Duration,
    ) -> Arc<Self> {
        Arc::new(Self {
            credentials,
            crossbar,
            cached: Mutex::new(None),
            refresh_before,
            assumed_lifetime,
        })
    }

    /// A token valid at `now` for at least the refresh margin, exchanging the key when the
    /// cached token is missing, refused or near its expiry.
    ///
    /// # Errors
    /// The exchange failed, or an API key is configured without a Crossbar URL.
    pub async fn token(&self, now: WallTime) -> Result<Secret, AuthError> {
        let key = match &self.credentials {
            Credentials::Token(t) => return Ok(t.clone()),
            Credentials::ApiKey(k) => k,
        };
        let mut cached = self.cached.lock().await;
        if let Some(t) = cached.as_ref() {
            if t.expires
                .is_some_and(|e| e.minus(self.refresh_before) > now)
            {
                return Ok(t.token.clone());
            }
        }
        let crossbar = self.crossbar.as_ref().ok_or_else(|| {
            AuthError::Exchange(CrossbarError::Invalid {
                path: "/v2/api_auth".into(),
                message: "an api key needs the Crossbar URL".into(),
            })
        })?;
        let mut issued = crossbar.api_auth(key).await?;
        issued.expires = Some(
            issued
                .expires
                .unwrap_or_else(|| now.plus(self.assumed_lifetime)),
        );
        tracing::info!(
            account_id = issued.account_id.as_deref().unwrap_or(""),
            expires_us = issued.expires.map(WallTime::as_us),
            "auth token issued"
        );
        let token = issued.token.clone();
        *cached = Some(issued);
        Ok(token)
    }

    /// Forgets the cached token (it was refused); the next [`Auth::token`] exchanges again.
    pub async fn invalidate(&self) {
        *self.cached.lock().await = None;
    }

    /// The token currently held, for scrubbing server messages (never for sending).
    pub async fn current(&self) -> Option<Secret> {
        match &self.credentials {
            Credentials::Token(t) => Some(t.clone()),
            Credentials::ApiKey(_) => self.cached.lock().await.as_ref().map(|t| t.token.clone()),
        }
    }
}
