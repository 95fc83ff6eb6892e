//! [`WebhookStore`] for [`SqliteStore`]: subscriptions and the delivery
//! outbox.

use rusqlite::{params, Connection, OptionalExtension, Row};

use super::{components, limit, link_components, parse, sorted, SqliteStore};
use crate::error::{Result, StoreError};
use crate::webhook::{
    AttemptOutcome, AttemptResult, Delivery, DeliveryState, DueDelivery, NewDelivery,
    NewSubscription, Subscription,
};
use crate::WebhookStore;

const DELIVERY_COLUMNS: &str = "d.id, d.subscription_id, d.event, d.body, d.created_at, \
     d.attempts, d.next_attempt_at, d.last_attempt_at, d.last_status, d.last_error, \
     d.delivered_at, d.gave_up_at";

/// Reads [`DELIVERY_COLUMNS`] (columns 0 to 11).
fn delivery_row(row: &Row<'_>) -> rusqlite::Result<Delivery> {
    let delivered_at: Option<i64> = row.get(10)?;
    let gave_up_at: Option<i64> = row.get(11)?;
    let state = match (delivered_at, gave_up_at) {
        (Some(_), _) => DeliveryState::Delivered,
        (None, Some(_)) => DeliveryState::GaveUp,
        (None, None) => DeliveryState::Pending,
    };
    Ok(Delivery {
        id: row.get(0)?,
        subscription_id: row.get(1)?,
        event: row.get(2)?,
        body: row.get(3)?,
        created_at: row.get(4)?,
        attempts: row.get(5)?,
        state,
        next_attempt_at: row.get(6)?,
        last_attempt_at: row.get(7)?,
        last_status: row.get(8)?,
        last_error: row.get(9)?,
        delivered_at,
        gave_up_at,
    })
}

fn delivery(conn: &Connection, id: i64) -> Result<Option<Delivery>> {
    Ok(conn
        .prepare_cached(&format!(
            "SELECT {DELIVERY_COLUMNS} FROM webhook_deliveries d WHERE d.id = ?1"
        ))?
        .query_row([id], delivery_row)
        .optional()?)
}

impl WebhookStore for SqliteStore {
    fn create_subscription(&self, new: &NewSubscription) -> Result<Subscription> {
        let id = self.write(|tx| {
            tx.prepare_cached(
                "INSERT INTO webhook_subscriptions (url, format, secret, created_at)
                 VALUES (?1, ?2, ?3, ?4)",
            )?
            .execute(params![new.url, new.format.as_str(), new.secret, new.at_ms])?;
            let id = tx.last_insert_rowid();
            link_components(
                tx,
                "webhook_subscription_components",
                "subscription_id",
                id,
                &new.components,
            )?;
            Ok(id)
        })?;
        Ok(Subscription {
            id,
            url: new.url.clone(),
            format: new.format,
            components: sorted(&new.components),
            created_at: new.at_ms,
        })
    }

    fn subscriptions(&self) -> Result<Vec<Subscription>> {
        let conn = self.lock()?;
        let rows = {
            // The secret is not selected: listing never carries it.
            let mut stmt = conn.prepare_cached(
                "SELECT id, url, format, created_at FROM webhook_subscriptions ORDER BY id",
            )?;
            let rows = stmt.query_map([], |row| {
                Ok((
                    row.get::<_, i64>(0)?,
                    row.get::<_, String>(1)?,
                    row.get::<_, String>(2)?,
                    row.get::<_, i64>(3)?,
                ))
            })?;
            rows.collect::<rusqlite::Result<Vec<_>>>()?
        };
        rows.into_iter()
            .map(|(id, url, format, created_at)| {
                Ok(Subscription {
                    components: components(
                        &conn,
                        "webhook_subscription_components",
                        "subscription_id",
                        id,
                    )?,
                    id,
                    url,
                    format: parse(&format)?,
                    created_at,
                })
            })
            .collect()
    }

    fn delete_subscription(&self, id: i64) -> Result<bool> {
        self.write(|tx| {
            let deleted = tx
                .prepare_cached("DELETE FROM webhook_subscriptions WHERE id = ?1")?
                .execute([id])?;
            Ok(deleted > 0)
        })
    }

    fn enqueue(&self, deliveries: &[NewDelivery]) -> Result<Vec<Delivery>> {
        self.write(|tx| {
            let mut ids = Vec::with_capacity(deliveries.len());
            for new in deliveries {
                let inserted = tx
                    .prepare_cached(
                        "INSERT INTO webhook_deliveries
                             (subscription_id, event, body, created_at, next_attempt_at)
                         VALUES (?1, ?2, ?3, ?4, ?5)",
                    )?
                    .execute(params![
                        new.subscription_id,
                        new.event,
                        new.body,
                        new.created_at,
                        new.next_attempt_at,
                    ]);
                match inserted {
                    Ok(_) => ids.push(tx.last_insert_rowid()),
                    // The only foreign key: the subscription.
                    Err(rusqlite::Error::SqliteFailure(f, _))
                        if f.extended_code == rusqlite::ffi::SQLITE_CONSTRAINT_FOREIGNKEY =>
                    {
                        return Err(StoreError::NotFound {
                            what: "subscription",
                            id: new.subscription_id,
                        })
                    }
                    Err(err) => return Err(err.into()),
                }
            }
            ids.into_iter()
                .map(|id| {
                    delivery(tx, id)?.ok_or(StoreError::NotFound {
                        what: "delivery",
                        id,
                    })
                })
                .collect()
        })
    }

    fn due(&self, now_ms: i64, n: usize) -> Result<Vec<DueDelivery>> {
        let conn = self.lock()?;
        let rows = {
            let mut stmt = conn.prepare_cached(&format!(
                "SELECT {DELIVERY_COLUMNS}, s.url, s.format, s.secret
                 FROM webhook_deliveries d JOIN webhook_subscriptions s ON s.id = d.subscription_id
                 WHERE d.next_attempt_at IS NOT NULL AND d.next_attempt_at <= ?1
                 ORDER BY d.next_attempt_at, d.id LIMIT ?2"
            ))?;
            let rows = stmt.query_map(params![now_ms, limit(n)], |row| {
                Ok((
                    delivery_row(row)?,
                    row.get::<_, String>(12)?,
                    row.get::<_, String>(13)?,
                    row.get::<_, String>(14)?,
                ))
            })?;
            rows.collect::<rusqlite::Result<Vec<_>>>()?
        };
        rows.into_iter()
            .map(|(delivery, url, format, secret)| {
                Ok(DueDelivery {
                    delivery,
                    url,
                    format: parse(&format)?,
                    secret,
                })
            })
            .collect()
    }

    fn record_attempt(&self, delivery_id: i64, result: &AttemptResult) -> Result<Delivery> {
        self.write(|tx| {
            let current = delivery(tx, delivery_id)?.ok_or(StoreError::NotFound {
                what: "delivery",
                id: delivery_id,
            })?;
            if current.state != DeliveryState::Pending {
                return Err(StoreError::Invalid(format!(
                    "delivery {delivery_id} is already {:?}",
                    current.state
                )));
            }
            let (next, delivered, gave_up) = match result.outcome {
                AttemptOutcome::Delivered => (None, Some(result.at_ms), None),
                AttemptOutcome::RetryAt(at) => (Some(at), None, None),
                AttemptOutcome::GaveUp => (None, None, Some(result.at_ms)),
            };
            tx.prepare_cached(
                "UPDATE webhook_deliveries SET attempts = attempts + 1, last_attempt_at = ?2,
                     last_status = ?3, last_error = ?4, next_attempt_at = ?5,
                     delivered_at = ?6, gave_up_at = ?7
                 WHERE id = ?1",
            )?
            .execute(params![
                delivery_id,
                result.at_ms,
                result.status,
                result.error,
                next,
                delivered,
                gave_up,
            ])?;
            delivery(tx, delivery_id)?.ok_or(StoreError::NotFound {
                what: "delivery",
                id: delivery_id,
            })
        })
    }

    fn deliveries(&self, subscription_id: i64, n: usize) -> Result<Vec<Delivery>> {
        let conn = self.lock()?;
        let mut stmt = conn.prepare_cached(&format!(
            "SELECT {DELIVERY_COLUMNS} FROM webhook_deliveries d WHERE d.subscription_id = ?1
             ORDER BY d.created_at DESC, d.id DESC LIMIT ?2"
        ))?;
        let rows = stmt.query_map(params![subscription_id, limit(n)], delivery_row)?;
        Ok(rows.collect::<rusqlite::Result<Vec<_>>>()?)
    }

    fn prune_deliveries(&self, before_ms: i64) -> Result<usize> {
        self.write(|tx| {
            Ok(tx
                .prepare_cached(
                    "DELETE FROM webhook_deliveries
                     WHERE COALESCE(delivered_at, gave_up_at) < ?1",
                )?
                .execute([before_ms])?)
        })
    }
}
