//! Penalties reach ESPs by Kafka and by signed webhook, in order, through
//! webhook failures and a dispatcher restart.
#![cfg(feature = "integration")]

mod common;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::body::Bytes;
use axum::http::{HeaderMap, StatusCode};
use axum::routing::post;
use axum::Router;
use rdkafka::producer::FutureProducer;
use ricochet_integration_tests::{
    clickhouse, complaint_row, consume_exactly, drop_database, insert_rows, kafka, unique, wait_for,
};
use ricochet_kafka::ensure_topics;
use ricochet_registry::RegistryHandle;
use ricochet_scoring::api::SIGNATURE_HEADER;
use ricochet_scoring::dispatch::Dispatcher;
use ricochet_scoring::engine::score_once;
use ricochet_scoring::Policy;
use ricochet_storage::{ComplaintRow, DeliveryRow, Migrator};
use ricochet_token::detached::verify_detached;
use ricochet_token::{Algorithm, SigningKey};
use serde_json::Value;

/// A webhook receiver that refuses its first two calls.
#[derive(Clone, Default)]
struct Receiver {
    calls: Arc<Mutex<u32>>,
    accepted: Arc<Mutex<Vec<(String, Bytes)>>>,
}

#[tokio::test]
async fn penalties_reach_kafka_and_a_flaky_webhook_in_order_across_a_restart() {
    let ch = clickhouse("it_dispatch");
    Migrator::new(ch.clone()).unwrap().run().await.unwrap();
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64;

    // Three senders over the line, and so the ESP's whole book: four
    // penalty rows for one ESP (three sender-level, one ESP-level).
    let hour = (now / 1000 / 3600 * 3600) as u32;
    let senders = ["s1", "s2", "s3"];
    let deliveries: Vec<DeliveryRow> = senders
        .iter()
        .map(|s| DeliveryRow {
            esp: "esp-w.example".into(),
            sender: s.to_string(),
            provider: "p.example".into(),
            campaign: String::new(),
            from_domain: String::new(),
            hour,
            delivered: 5_000,
            received_at: now,
        })
        .collect();
    insert_rows(&ch, "deliveries", &deliveries).await;
    let complaints: Vec<ComplaintRow> = senders
        .iter()
        .flat_map(|s| {
            (0..100).map(move |i| {
                complaint_row(
                    &format!("{s}y{i:020}"),
                    "esp-w.example",
                    s,
                    "p.example",
                    "unwanted",
                    now - 1000,
                )
            })
        })
        .collect();
    insert_rows(&ch, "complaints", &complaints).await;
    assert_eq!(
        score_once(&ch.client(), &Policy::default(), now)
            .await
            .unwrap()
            .changes
            .len(),
        4
    );

    // The ESP's webhook: refuses the first two deliveries.
    let receiver = Receiver::default();
    let r = receiver.clone();
    let app = Router::new().route(
        "/hook",
        post(move |headers: HeaderMap, body: Bytes| {
            let r = r.clone();
            async move {
                let mut calls = r.calls.lock().unwrap();
                *calls += 1;
                if *calls <= 2 {
                    return StatusCode::SERVICE_UNAVAILABLE;
                }
                let sig = headers[SIGNATURE_HEADER].to_str().unwrap().to_string();
                r.accepted.lock().unwrap().push((sig, body));
                StatusCode::NO_CONTENT
            }
        }),
    );
    let hook = format!("{}/hook", common::serve(app).await);
    let dir = tempfile::tempdir().unwrap();
    let registry = common::registry_with_webhook(dir.path(), "esp-w.example", hook);
    let ricochet_key = SigningKey::generate(Algorithm::EdDSA, "ricochet-1").unwrap();
    let ricochet_keys = std::collections::BTreeMap::from([(
        "ricochet-1".to_string(),
        ricochet_key.verifying_key(),
    )]);
    let topic = unique("it-penalties");
    let k = kafka();
    ensure_topics(&k, &[&topic]).await.unwrap();
    let make = || {
        let producer: FutureProducer = k.producer_config().create().unwrap();
        let key = SigningKey::from_jwk(&ricochet_key.private_jwk()).unwrap();
        Dispatcher::new(
            ch.client(),
            RegistryHandle::open(&registry).unwrap(),
            key,
            producer,
            topic.clone(),
        )
    };

    // First dispatcher: Kafka takes everything; the webhook fails, backs off.
    let first = make();
    let r1 = first.run_once(now).await.unwrap();
    assert_eq!((r1.kafka, r1.webhook, r1.webhook_failures), (4, 0, 1));
    let r2 = first.run_once(now + 500).await.unwrap();
    assert_eq!(
        (r2.kafka, r2.webhook, r2.webhook_failures),
        (0, 0, 0),
        "still backing off after 0.5 s"
    );
    let r3 = first.run_once(now + 5_000).await.unwrap();
    assert_eq!(r3.webhook_failures, 1, "second failure");
    drop(first);

    // A restarted dispatcher resumes from the persisted cursors: nothing resent to
    // Kafka, and the webhook gets every row once it recovers.
    let second = make();
    let mut delivered = 0;
    let mut t = now + 60_000;
    while delivered < 4 {
        let r = second.run_once(t).await.unwrap();
        assert_eq!(r.kafka, 0, "Kafka rows are not sent twice");
        delivered += r.webhook;
        t += 60_000;
        assert!(t < now + 3_600_000, "webhook never recovered");
    }
    let accepted = receiver.accepted.lock().unwrap().clone();
    assert_eq!(accepted.len(), 1, "one delivery carried all four rows");
    let (sig, body) = &accepted[0];
    verify_detached(sig, body, &ricochet_keys).expect("the webhook is signed by Ricochet");
    let doc: Value = serde_json::from_slice(body).unwrap();
    let seqs: Vec<(u64, &str, &str)> = doc["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| {
            let s = |k: &str| i[k].as_str().unwrap();
            (i["seq"].as_u64().unwrap(), s("level"), s("key"))
        })
        .collect();
    assert_eq!(
        seqs,
        [
            (1, "sender", "s1"),
            (2, "sender", "s2"),
            (3, "sender", "s3"),
            (4, "esp", "")
        ],
        "in chain order, each with its level"
    );

    let messages = consume_exactly(&k, &topic, 4, Duration::from_secs(60)).await;
    let mut on_topic: Vec<(u64, String)> = messages
        .iter()
        .map(|(_, p)| {
            let v = serde_json::from_slice::<Value>(p).unwrap();
            (
                v["seq"].as_u64().unwrap(),
                v["level"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    on_topic.sort();
    let levels: Vec<(u64, &str)> = on_topic.iter().map(|(s, l)| (*s, l.as_str())).collect();
    assert_eq!(
        levels,
        [(1, "sender"), (2, "sender"), (3, "sender"), (4, "esp")]
    );
    wait_for(
        "nothing else to dispatch",
        Duration::from_secs(5),
        || async { (second.run_once(t).await.ok()? == Default::default()).then_some(()) },
    )
    .await;
    drop_database(&ch).await;
}
