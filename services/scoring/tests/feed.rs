//! The complaint feed on the real stack: complaints loaded into ClickHouse
//! (some twice, some by two providers) reach their ESP once each, in order,
//! over the signed ESP API, across a restart of the writer; late rows are
//! swept in; the feed reaches Kafka and the ESP's webhook.
#![cfg(feature = "integration")]

mod common;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::body::Bytes;
use axum::http::StatusCode;
use axum::routing::post;
use axum::Router;
use common::EspApi;
use rdkafka::producer::FutureProducer;
use ricochet_integration_tests::{
    clickhouse, complaint_row, consume_exactly, drop_database, insert_rows, kafka, unique,
};
use ricochet_kafka::ensure_topics;
use ricochet_registry::RegistryHandle;
use ricochet_scoring::dispatch::{Dispatcher, Outbox};
use ricochet_scoring::feed::{FeedReport, FeedWriter};
use ricochet_scoring::partition::Partition;
use ricochet_storage::{ClickHouseConfig, ComplaintRow, Migrator};
use ricochet_token::verify::unix_now;
use ricochet_token::{Algorithm, SigningKey};
use serde_json::Value;

const A: &str = "esp-a.example";
const B: &str = "esp-b.example";

/// A complaint about `esp`'s sender `s1` with token `jti`.
fn complaint(jti: &str, esp: &str, provider: &str, code: &str) -> ComplaintRow {
    let now = unix_now() * 1000;
    ComplaintRow {
        campaign: "spring".into(),
        reporter: "secret-pseudonym".into(),
        rcb: "AAAAAAAAAAAAAAAAAAAAAA".into(),
        ..complaint_row(jti, esp, "s1", provider, code, now - 1000)
    }
}

/// Runs feed passes until `expected` entries were appended in total
/// (rows are read once settled), failing after 30 s.
async fn feed_until(writer: &mut FeedWriter, expected: usize) -> FeedReport {
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    let mut total = FeedReport::default();
    while total.fed < expected {
        assert!(
            std::time::Instant::now() < deadline,
            "only {} of {expected} complaints fed within 30 s",
            total.fed
        );
        let r = writer.pass().await.unwrap();
        (total.fed, total.duplicates) = (total.fed + r.fed, total.duplicates + r.duplicates);
        if r.read == 0 {
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
    total
}

/// Every feed entry of `esp` over the API, pages of 7.
async fn feed_of(api: &EspApi, esp: &str) -> Vec<Value> {
    api.all_pages("/v1/complaints", esp, 7).await
}

fn jtis(items: &[Value]) -> Vec<String> {
    items
        .iter()
        .map(|i| i["jti"].as_str().unwrap().to_string())
        .collect()
}

async fn migrated(name: &str) -> ClickHouseConfig {
    let ch = clickhouse(name);
    Migrator::new(ch.clone()).unwrap().run().await.unwrap();
    ch
}

#[tokio::test]
async fn each_complaint_reaches_its_esp_once_in_order_across_a_restart() {
    let ch = migrated("it_feed").await;
    let a: Vec<ComplaintRow> = (0..30)
        .map(|i| complaint(&format!("a{i:03}"), A, "p1.example", "unwanted"))
        .collect();
    insert_rows(&ch, "complaints", &a).await;
    // A retry of five tokens, and a second provider reporting three.
    let again: Vec<ComplaintRow> = (0..5)
        .map(|i| complaint(&format!("a{i:03}"), A, "p1.example", "unwanted"))
        .chain((10..13).map(|i| complaint(&format!("a{i:03}"), A, "p2.example", "phishing")))
        .chain([complaint("b000", B, "p1.example", "not-spam")])
        .collect();
    insert_rows(&ch, "complaints", &again).await;
    let mut writer = FeedWriter::open(ch.client(), Partition::WHOLE)
        .await
        .unwrap();
    let report = feed_until(&mut writer, 31).await;
    assert_eq!(report.duplicates, 8, "the eight copies are skipped");

    let api = EspApi::start(&ch, &[A, B]).await;
    let items = feed_of(&api, A).await;
    let expected: Vec<String> = (0..30).map(|i| format!("a{i:03}")).collect();
    assert_eq!(jtis(&items), expected, "once each, in load order");
    let seqs: Vec<u64> = items.iter().map(|i| i["seq"].as_u64().unwrap()).collect();
    assert_eq!(seqs, (1..=30).collect::<Vec<u64>>());
    let first = &items[0];
    assert_eq!(
        (&first["sender"], &first["campaign"], &first["signal"]),
        (&"s1".into(), &"spring".into(), &"negative".into())
    );
    assert_eq!(first["rcb"], "AAAAAAAAAAAAAAAAAAAAAA");
    assert!(
        first.get("reporter").is_none(),
        "never the reporter pseudonym"
    );
    let b = feed_of(&api, B).await;
    assert_eq!(jtis(&b), ["b000"], "another ESP sees only its own");
    assert_eq!(
        b[0]["signal"], "positive",
        "not-spam is the positive signal"
    );

    // Cross-tenant: ESP B's key cannot read as ESP A.
    let resp = api.get_as("/v1/complaints", B, A).await;
    assert_eq!(resp.status(), reqwest::StatusCode::FORBIDDEN);
    for bad in ["limit=0", "limit=1001", "since=-1", "since=x"] {
        let resp = api.get(&format!("/v1/complaints?{bad}"), A).await;
        assert_eq!(resp.status(), reqwest::StatusCode::BAD_REQUEST, "{bad}");
    }

    // A restarted writer picks up where the feed stopped: new tokens get
    // the next numbers, a copy of an old one is skipped.
    drop(writer);
    let later: Vec<ComplaintRow> = ["a030", "a031", "a007"]
        .iter()
        .map(|j| complaint(j, A, "p2.example", "unwanted"))
        .collect();
    insert_rows(&ch, "complaints", &later).await;
    let mut writer = FeedWriter::open(ch.client(), Partition::WHOLE)
        .await
        .unwrap();
    feed_until(&mut writer, 2).await;
    // The copy of a007 it skipped is remembered: the look behind the mark
    // neither reads it again nor counts it twice.
    assert_eq!(writer.trail().await.unwrap(), FeedReport::default());
    let items = feed_of(&api, A).await;
    assert_eq!(items.len(), 32);
    assert_eq!(jtis(&items[30..]), ["a030", "a031"]);
    assert_eq!(items[31]["seq"], 32);

    // A copy of a token this writer fed is known without a lookup, and
    // skipped all the same.
    insert_rows(
        &ch,
        "complaints",
        &[complaint("a031", A, "p1.example", "unwanted")],
    )
    .await;
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    let copy = loop {
        let r = writer.pass().await.unwrap();
        if r.read > 0 {
            break r;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the copy was never read"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert_eq!((copy.fed, copy.duplicates), (0, 1));

    // A row that became visible just after the pass that read up to its
    // load time is fed by the next step's look behind the mark, once.
    let just_behind = "(SELECT max(loaded_at) FROM complaints) - INTERVAL 1 MILLISECOND";
    insert_loaded_at(&ch, "late0", just_behind).await;
    assert_eq!(writer.pass().await.unwrap().fed, 0, "behind the mark");
    assert_eq!(writer.trail().await.unwrap().fed, 1);
    assert_eq!(writer.trail().await.unwrap().fed, 0, "fed once");

    // A row that became visible long after the pass that should have read
    // it (loaded before the mark) is swept in, once.
    insert_loaded_at(&ch, "late1", "now64(3) - INTERVAL 20 SECOND").await;
    assert_eq!(writer.pass().await.unwrap().fed, 0, "behind the mark");
    assert_eq!(writer.sweep().await.unwrap().fed, 1);
    assert_eq!(writer.sweep().await.unwrap().fed, 0, "swept once");
    assert_eq!(jtis(&feed_of(&api, A).await[32..]), ["late0", "late1"]);
    drop_database(&ch).await;
}

/// Inserts a complaint of ESP A as if loaded at `loaded_at` (SQL).
async fn insert_loaded_at(ch: &ClickHouseConfig, jti: &str, loaded_at: &str) {
    ch.client()
        .query(&format!(
            "INSERT INTO complaints (jti, esp, sender, provider, code, nature, recipient_domain,
                                     token_iat, token_exp, reported_at, received_at, loaded_at)
             SELECT ?, ?, 's1', 'p1.example', 'unwanted', 'marketing', 'mail.example',
                    now() - 60, now() + 86400, now64(3), now64(3), {loaded_at}"
        ))
        .bind(jti)
        .bind(A)
        .execute()
        .await
        .unwrap();
}

#[tokio::test]
async fn the_feed_reaches_kafka_and_the_webhook_in_order() {
    let ch = migrated("it_feed_dispatch").await;
    let rows: Vec<ComplaintRow> = (0..5)
        .map(|i| complaint(&format!("w{i:03}"), A, "p1.example", "unwanted"))
        .collect();
    insert_rows(&ch, "complaints", &rows).await;
    let mut writer = FeedWriter::open(ch.client(), Partition::WHOLE)
        .await
        .unwrap();
    feed_until(&mut writer, 5).await;

    let accepted: Arc<Mutex<Vec<Bytes>>> = Arc::default();
    let sink = accepted.clone();
    let app = Router::new().route(
        "/hook",
        post(move |body: Bytes| {
            let sink = sink.clone();
            async move {
                sink.lock().unwrap().push(body);
                StatusCode::NO_CONTENT
            }
        }),
    );
    let hook = format!("{}/hook", common::serve(app).await);
    let dir = tempfile::tempdir().unwrap();
    let registry = common::registry_with_webhook(dir.path(), A, hook);
    let k = kafka();
    let (penalties, feedback) = (unique("it-penalties"), unique("it-feedback"));
    ensure_topics(&k, &[&penalties, &feedback]).await.unwrap();
    let producer: FutureProducer = k.producer_config().create().unwrap();
    let key = SigningKey::generate(Algorithm::EdDSA, "ricochet-1").unwrap();
    let registry = RegistryHandle::open(&registry).unwrap();
    let mut dispatcher = Dispatcher::new(ch.client(), registry, key, producer, penalties);
    dispatcher.feedback_topic = feedback.clone();
    let now = unix_now() * 1000;
    let r = dispatcher
        .run_outbox(Outbox::Complaints, now)
        .await
        .unwrap();
    assert_eq!((r.kafka, r.webhook), (5, 5));
    let again = dispatcher
        .run_outbox(Outbox::Complaints, now)
        .await
        .unwrap();
    assert_eq!((again.kafka, again.webhook), (0, 0), "nothing sent twice");

    let body: Value = serde_json::from_slice(&accepted.lock().unwrap()[0]).unwrap();
    assert_eq!(body["kind"], "complaints");
    let hooked: Vec<u64> = body["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["seq"].as_u64().unwrap())
        .collect();
    assert_eq!(hooked, [1, 2, 3, 4, 5]);
    let messages = consume_exactly(&k, &feedback, 5, Duration::from_secs(60)).await;
    let mut on_topic: Vec<String> = messages
        .iter()
        .map(|(key, p)| {
            assert_eq!(key, &format!("{A}/s1"));
            let v: Value = serde_json::from_slice(p).unwrap();
            v["jti"].as_str().unwrap().to_string()
        })
        .collect();
    on_topic.sort();
    assert_eq!(on_topic, ["w000", "w001", "w002", "w003", "w004"]);
    drop_database(&ch).await;
}
