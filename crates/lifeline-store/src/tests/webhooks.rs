//! Webhook subscriptions and the delivery outbox.

use crate::webhook::*;
use crate::*;

fn subscription(url: &str, format: WebhookFormat, components: &[&str]) -> NewSubscription {
    NewSubscription {
        url: url.to_owned(),
        format,
        secret: format!("secret-for-{url}"),
        components: components.iter().map(|c| (*c).to_owned()).collect(),
        at_ms: 1_000,
    }
}

fn delivery(subscription_id: i64, event: &str, at: i64) -> NewDelivery {
    NewDelivery {
        subscription_id,
        event: event.to_owned(),
        body: format!(r#"{{"event":"{event}"}}"#),
        created_at: at,
        next_attempt_at: at,
    }
}

#[test]
fn subscriptions_are_listed_without_their_secret() {
    let dir = tempfile::tempdir().unwrap();
    let store = SqliteStore::open(dir.path().join("s.db")).unwrap();
    let all = store
        .create_subscription(&subscription(
            "https://a.example/hook",
            WebhookFormat::Statuspage,
            &[],
        ))
        .unwrap();
    let chat = store
        .create_subscription(&subscription(
            "https://hooks.slack.com/x",
            WebhookFormat::Slack,
            &["embeddings", "chat", "chat"],
        ))
        .unwrap();
    assert_eq!(chat.components, ["chat", "embeddings"]);
    let listed = store.subscriptions().unwrap();
    assert_eq!(listed, [all.clone(), chat.clone()]);
    // Neither the listing, its JSON nor a Debug print carries a secret.
    let json = serde_json::to_string(&listed).unwrap();
    assert!(!json.contains("secret"), "{json}");
    let debug = format!("{:?}", subscription("u", WebhookFormat::Discord, &["chat"]));
    assert!(!debug.contains("secret-for"), "{debug}");
    assert_eq!(
        serde_json::to_value(WebhookFormat::Discord).unwrap(),
        "discord"
    );

    assert!(all.wants(&["images"]));
    assert!(chat.wants(&["chat"]));
    assert!(!chat.wants(&["images"]));
    assert!(chat.wants::<&str>(&[]), "page-wide notices go to everyone");

    assert!(store.delete_subscription(all.id).unwrap());
    assert!(!store.delete_subscription(all.id).unwrap());
    assert_eq!(store.subscriptions().unwrap(), [chat]);
}

#[test]
fn a_delivery_waits_in_the_outbox_across_restarts_until_delivered_or_given_up() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("s.db");
    let (sub, first, second) = {
        let store = SqliteStore::open(&path).unwrap();
        let sub = store
            .create_subscription(&subscription(
                "https://a.example/hook",
                WebhookFormat::Statuspage,
                &[],
            ))
            .unwrap();
        let queued = store
            .enqueue(&[
                delivery(sub.id, "incident.created", 10_000),
                delivery(sub.id, "incident.updated", 11_000),
            ])
            .unwrap();
        assert_eq!(queued.len(), 2);
        assert_eq!(queued[0].state, DeliveryState::Pending);
        assert_eq!(queued[0].attempts, 0);
        assert_eq!(queued[0].next_attempt_at, Some(10_000));
        (sub, queued[0].id, queued[1].id)
    };

    // After a restart the deliveries are still due, with the secret to
    // sign them.
    let store = SqliteStore::open(&path).unwrap();
    assert!(store.due(9_999, 10).unwrap().is_empty());
    let due = store.due(20_000, 10).unwrap();
    assert_eq!(
        due.iter().map(|d| d.delivery.id).collect::<Vec<_>>(),
        [first, second]
    );
    assert_eq!(due[0].secret, "secret-for-https://a.example/hook");
    assert_eq!(due[0].url, "https://a.example/hook");
    assert_eq!(due[0].format, WebhookFormat::Statuspage);
    assert_eq!(due[0].delivery.body, r#"{"event":"incident.created"}"#);
    assert!(!format!("{:?}", due[0]).contains("secret-for"));
    assert_eq!(store.due(20_000, 1).unwrap().len(), 1, "limited");

    // First attempt fails: retried later with the failure logged.
    let retried = store
        .record_attempt(
            first,
            &AttemptResult {
                at_ms: 20_000,
                status: Some(503),
                error: Some("503 Service Unavailable".to_owned()),
                outcome: AttemptOutcome::RetryAt(50_000),
            },
        )
        .unwrap();
    assert_eq!(retried.attempts, 1);
    assert_eq!(retried.state, DeliveryState::Pending);
    assert_eq!(retried.next_attempt_at, Some(50_000));
    assert_eq!(retried.last_status, Some(503));
    let due: Vec<_> = store
        .due(30_000, 10)
        .unwrap()
        .into_iter()
        .map(|d| d.delivery.id)
        .collect();
    assert_eq!(due, [second], "the retry is not due yet");

    // The second gives up after a connection error.
    let gave_up = store
        .record_attempt(
            second,
            &AttemptResult {
                at_ms: 30_000,
                status: None,
                error: Some("connection refused".to_owned()),
                outcome: AttemptOutcome::GaveUp,
            },
        )
        .unwrap();
    assert_eq!(gave_up.state, DeliveryState::GaveUp);
    assert_eq!(gave_up.gave_up_at, Some(30_000));
    assert_eq!(gave_up.next_attempt_at, None);
    // The retry of the first succeeds.
    drop(store);
    let store = SqliteStore::open(&path).unwrap();
    let delivered = store
        .record_attempt(
            first,
            &AttemptResult {
                at_ms: 50_000,
                status: Some(200),
                error: None,
                outcome: AttemptOutcome::Delivered,
            },
        )
        .unwrap();
    assert_eq!(delivered.state, DeliveryState::Delivered);
    assert_eq!(delivered.attempts, 2);
    assert_eq!(delivered.delivered_at, Some(50_000));
    assert_eq!(delivered.last_error, None);
    assert!(store.due(i64::MAX, 10).unwrap().is_empty());
    // A final delivery takes no more attempts.
    assert!(matches!(
        store.record_attempt(
            first,
            &AttemptResult {
                at_ms: 60_000,
                status: Some(200),
                error: None,
                outcome: AttemptOutcome::Delivered,
            },
        ),
        Err(StoreError::Invalid(_))
    ));

    // The log: newest first, limited.
    let log = store.deliveries(sub.id, 10).unwrap();
    assert_eq!(log, [gave_up, delivered.clone()]);
    assert_eq!(store.deliveries(sub.id, 1).unwrap().len(), 1);

    // Pruning drops finished deliveries before the cutoff only.
    let pending = store
        .enqueue(&[delivery(sub.id, "incident.resolved", 1)])
        .unwrap();
    assert_eq!(store.prune_deliveries(40_000).unwrap(), 1);
    let left: Vec<_> = store
        .deliveries(sub.id, 10)
        .unwrap()
        .into_iter()
        .map(|d| d.id)
        .collect();
    assert_eq!(left, [delivered.id, pending[0].id]);

    // Deleting the subscription takes its outbox and log with it.
    store.delete_subscription(sub.id).unwrap();
    assert!(store.deliveries(sub.id, 10).unwrap().is_empty());
    assert!(store.due(i64::MAX, 10).unwrap().is_empty());
}

#[test]
fn enqueue_for_an_unknown_subscription_writes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let store = SqliteStore::open(dir.path().join("s.db")).unwrap();
    let sub = store
        .create_subscription(&subscription(
            "https://a.example",
            WebhookFormat::Slack,
            &[],
        ))
        .unwrap();
    assert!(matches!(
        store.enqueue(&[delivery(sub.id, "a", 1), delivery(sub.id + 7, "b", 1)]),
        Err(StoreError::NotFound {
            what: "subscription",
            ..
        })
    ));
    assert!(store.due(i64::MAX, 10).unwrap().is_empty());
    assert!(matches!(
        store.record_attempt(
            42,
            &AttemptResult {
                at_ms: 1,
                status: None,
                error: None,
                outcome: AttemptOutcome::GaveUp,
            }
        ),
        Err(StoreError::NotFound {
            what: "delivery",
            id: 42
        })
    ));
}
