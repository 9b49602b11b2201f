//! Where console-managed triggers are kept: behind [`TriggerStore`], a narrow interface (list,
//! put, delete of whole trigger documents), so another backend can be added beside the
//! embedded one. [`RedbTriggers`] keeps them in their own table of the outbox's redb file
//! (`console_triggers`), one row per trigger: its id → the trigger document as JSON (the
//! structure of a remote JSON trigger document's `trigger` entries) and when it was saved.
//!
//! [`PgTriggers`] keeps them in the PostgreSQL store's `postcall_console_triggers` table (one
//! row per trigger, the same JSON), so every instance sharing the database serves and applies
//! the same console triggers; [`for_storage`] picks the one of the running backend.
//!
//! The store holds documents, not validated triggers: they are validated by the same code as
//! trigger files each time they are loaded or saved ([`super::triggers`]).

use std::sync::Arc;

use futures_util::future::BoxFuture;
use redb::{ReadableTable, TableDefinition};
use serde::{Deserialize, Serialize};

use crate::delivery::backend::Storage;
use crate::delivery::pg::PgStore;
use crate::delivery::{Outbox, OutboxError};

/// One console-managed trigger as stored.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct StoredTrigger {
    /// The trigger's id (a GUID the console made).
    pub id: String,
    /// Its tenant.
    pub tenant: String,
    /// The trigger document (`id`, `tenant`, `enabled`, `filter`, `action`, …).
    pub doc: serde_json::Value,
    /// When it was last saved, µs since the epoch.
    pub updated_us: i64,
}

/// Why the store failed.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The embedded store failed.
    #[error(transparent)]
    Outbox(#[from] OutboxError),
    /// A stored row cannot be read back.
    #[error("stored console trigger {id:?} cannot be read: {error}")]
    Unreadable {
        /// Its key.
        id: String,
        /// Why.
        error: String,
    },
}

/// Durable storage of console-managed triggers. Each call is one transaction.
pub trait TriggerStore: Send + Sync + std::fmt::Debug {
    /// Every stored trigger, by id.
    fn list(&self) -> BoxFuture<'_, Result<Vec<StoredTrigger>, StoreError>>;
    /// Writes (creates or replaces) one trigger; durable when it returns `Ok`.
    fn put(&self, trigger: StoredTrigger) -> BoxFuture<'_, Result<(), StoreError>>;
    /// Removes one trigger; whether it existed.
    fn delete(&self, id: String) -> BoxFuture<'_, Result<bool, StoreError>>;
}

const TRIGGERS: TableDefinition<&str, &[u8]> = TableDefinition::new("console_triggers");

/// [`TriggerStore`] in the outbox's redb file (its own table, written through the outbox's
/// owner thread like every other write to the file).
#[derive(Debug, Clone)]
pub struct RedbTriggers {
    outbox: Arc<Outbox>,
}

impl RedbTriggers {
    /// The store in `outbox`'s file (the table is created by the first write).
    pub fn new(outbox: Arc<Outbox>) -> Self {
        Self { outbox }
    }
}

fn encode(t: &StoredTrigger) -> Result<Vec<u8>, OutboxError> {
    Ok(serde_json::to_vec(t)?)
}

impl TriggerStore for RedbTriggers {
    fn list(&self) -> BoxFuture<'_, Result<Vec<StoredTrigger>, StoreError>> {
        Box::pin(async move {
            let rows: Vec<(String, Vec<u8>)> = self
                .outbox
                .call(|s| {
                    s.read(|tx| {
                        let table = match tx.open_table(TRIGGERS) {
                            Ok(t) => t,
                            // Nothing was ever saved.
                            Err(redb::TableError::TableDoesNotExist(_)) => return Ok(Vec::new()),
                            Err(e) => return Err(e.into()),
                        };
                        table
                            .iter()?
                            .map(|r| {
                                r.map(|(k, v)| (k.value().to_owned(), v.value().to_vec()))
                                    .map_err(OutboxError::from)
                            })
                            .collect()
                    })
                })
                .await?;
            rows.into_iter().map(|(id, v)| decode(id, &v)).collect()
        })
    }

    fn put(&self, trigger: StoredTrigger) -> BoxFuture<'_, Result<(), StoreError>> {
        Box::pin(async move {
            let bytes = encode(&trigger)?;
            self.outbox
                .call(move |s| {
                    s.write(|tx| {
                        tx.open_table(TRIGGERS)?
                            .insert(trigger.id.as_str(), bytes.as_slice())?;
                        Ok(())
                    })
                })
                .await?;
            Ok(())
        })
    }

    fn delete(&self, id: String) -> BoxFuture<'_, Result<bool, StoreError>> {
        Box::pin(async move {
            Ok(self
                .outbox
                .call(move |s| {
                    s.write(|tx| Ok(tx.open_table(TRIGGERS)?.remove(id.as_str())?.is_some()))
                })
                .await?)
        })
    }
}

/// [`TriggerStore`] in PostgreSQL (the `postcall_console_triggers` table, created by the
/// store's second migration), shared by every instance on the database.
#[derive(Debug, Clone)]
pub struct PgTriggers {
    pg: Arc<PgStore>,
}

impl PgTriggers {
    /// The store in `pg`'s database.
    pub fn new(pg: Arc<PgStore>) -> Self {
        Self { pg }
    }
}

fn decode(id: String, bytes: &[u8]) -> Result<StoredTrigger, StoreError> {
    serde_json::from_slice(bytes).map_err(|e| StoreError::Unreadable {
        id,
        error: e.to_string(),
    })
}

impl TriggerStore for PgTriggers {
    fn list(&self) -> BoxFuture<'_, Result<Vec<StoredTrigger>, StoreError>> {
        Box::pin(async move {
            self.pg
                .console_triggers()
                .await?
                .into_iter()
                .map(|(id, text)| decode(id, text.as_bytes()))
                .collect()
        })
    }

    fn put(&self, trigger: StoredTrigger) -> BoxFuture<'_, Result<(), StoreError>> {
        Box::pin(async move {
            let text = serde_json::to_string(&trigger).map_err(OutboxError::from)?;
            self.pg
                .console_put(&trigger.id, &trigger.tenant, trigger.updated_us, &text)
                .await?;
            Ok(())
        })
    }

    fn delete(&self, id: String) -> BoxFuture<'_, Result<bool, StoreError>> {
        Box::pin(async move { Ok(self.pg.console_delete(&id).await?) })
    }
}

/// The console's trigger store on `storage`'s backend: the outbox's redb file, or the shared
/// PostgreSQL database.
#[must_use]
pub fn for_storage(storage: &Storage) -> Arc<dyn TriggerStore> {
    match storage {
        Storage::Embedded(o) => Arc::new(RedbTriggers::new(o.clone())),
        Storage::Postgres(p) => Arc::new(PgTriggers::new(p.clone())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn stored(id: &str, url: &str) -> StoredTrigger {
        StoredTrigger {
            id: id.into(),
            tenant: "3b1f0a9c6e2d4f8a9b7c5d3e1f2a4b6c".into(),
            doc: serde_json::json!({"id": id, "action": {"url": url}}),
            updated_us: 7,
        }
    }

    /// Saved triggers survive closing and reopening the file; delete removes them.
    #[tokio::test]
    async fn put_list_delete_survive_a_reopen() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("outbox.redb");
        {
            let store = RedbTriggers::new(Arc::new(Outbox::open(&path).unwrap()));
            assert!(store.list().await.unwrap().is_empty());
            store.put(stored("a", "https://a.example/")).await.unwrap();
            store.put(stored("b", "https://b.example/")).await.unwrap();
            store.put(stored("a", "https://a2.example/")).await.unwrap();
        }
        let store = RedbTriggers::new(Arc::new(Outbox::open(&path).unwrap()));
        let all = store.list().await.unwrap();
        assert_eq!(
            all,
            [
                stored("a", "https://a2.example/"),
                stored("b", "https://b.example/")
            ]
        );
        assert!(store.delete("a".into()).await.unwrap());
        assert!(!store.delete("a".into()).await.unwrap());
        assert_eq!(
            store.list().await.unwrap(),
            [stored("b", "https://b.example/")]
        );
    }
}
