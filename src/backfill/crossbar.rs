//! Kazoo's stored leg CDRs through Crossbar, as the backfill and `reconcile` read them.

use std::sync::Arc;

use futures_util::future::BoxFuture;
use serde_json::Value;

use super::fetch::{CdrSource, Listing, ReadError};
use super::window::Window;
use crate::clock::WallTime;
use crate::source::auth::{Auth, AuthError};
use crate::source::crossbar::{Crossbar, CrossbarError};

/// Rows per listing page.
const PAGE_SIZE: u32 = 100;

/// [`CdrSource`] over Crossbar with the sidecar's credentials.
#[derive(Debug, Clone)]
pub struct CrossbarCdrs {
    crossbar: Crossbar,
    auth: Arc<Auth>,
}

impl CrossbarCdrs {
    /// Reads through `crossbar` with tokens from `auth`.
    #[must_use]
    pub fn new(crossbar: Crossbar, auth: Arc<Auth>) -> Self {
        Self { crossbar, auth }
    }

    async fn token(&self) -> Result<crate::net::Secret, ReadError> {
        self.auth
            .token(WallTime::now())
            .await
            .map_err(|e| ReadError {
                retryable: match &e {
                    AuthError::Exchange(c) => c.is_retryable(),
                },
                message: format!("no Crossbar token: {e}"),
            })
    }

    /// A failed request; a refused token is forgotten and the request may be tried again
    /// with a new one.
    async fn failed(&self, e: CrossbarError) -> ReadError {
        let refused = matches!(e, CrossbarError::Unauthorized { .. });
        if refused {
            self.auth.invalidate().await;
        }
        ReadError {
            retryable: refused || e.is_retryable(),
            message: e.to_string(),
        }
    }
}

impl CdrSource for CrossbarCdrs {
    fn page<'a>(
        &'a self,
        account: &'a str,
        window: Window,
        start_key: Option<&'a str>,
    ) -> BoxFuture<'a, Result<Listing, ReadError>> {
        Box::pin(async move {
            let token = self.token().await?;
            let page = match self
                .crossbar
                .cdr_page(
                    &token,
                    account,
                    window.from,
                    window.to,
                    start_key,
                    PAGE_SIZE,
                )
                .await
            {
                Ok(p) => p,
                Err(e) => return Err(self.failed(e).await),
            };
            Ok(Listing {
                interactions: page
                    .rows
                    .into_iter()
                    .map(|r| r.interaction_id.unwrap_or(r.call_id))
                    .collect(),
                next_start_key: page.next_start_key,
            })
        })
    }

    fn legs<'a>(
        &'a self,
        account: &'a str,
        interaction: &'a str,
    ) -> BoxFuture<'a, Result<Vec<Value>, ReadError>> {
        Box::pin(async move {
            let token = self.token().await?;
            match self.crossbar.cdr_legs(&token, account, interaction).await {
                Ok(docs) => Ok(docs),
                Err(e) => Err(self.failed(e).await),
            }
        })
    }
}
