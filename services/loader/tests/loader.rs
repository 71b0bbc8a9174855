//! The loader as a real process, against the real broker and real ClickHouse.
#![cfg(feature = "integration")]

use std::process::{Child, Command, Stdio};
use std::time::Duration;

use clickhouse::Row;
use rdkafka::producer::{FutureProducer, FutureRecord};
use ricochet_integration_tests::{
    clickhouse, consume_exactly, kafka, unique, wait_for, ClickHouseServer,
};
use ricochet_kafka::{ensure_topics, ComplaintRecord, DeliveryRecord, KafkaConfig};
use ricochet_storage::{ClickHouseConfig, Migrator};
use serde::Deserialize;

/// One test's own topics, consumer group and database.
struct Setup {
    kafka: KafkaConfig,
    ch: ClickHouseConfig,
    complaints: String,
    deliveries: String,
    dead: String,
    group: String,
    producer: FutureProducer,
}

impl Setup {
    async fn new(kafka: KafkaConfig, ch: ClickHouseConfig) -> Setup {
        Migrator::new(ch.clone())
            .unwrap()
            .run()
            .await
            .expect("migrate");
        let mut k = kafka.clone();
        k.partitions = 3;
        let (complaints, deliveries, dead) = (unique("it-lc"), unique("it-ld"), unique("it-dlq"));
        ensure_topics(&k, &[&complaints, &deliveries, &dead])
            .await
            .unwrap();
        let producer = kafka.producer_config().create().unwrap();
        Setup {
            kafka,
            ch,
            complaints,
            deliveries,
            dead,
            group: unique("it-loader"),
            producer,
        }
    }

    /// Starts a loader process; returns it with its metrics URL.
    fn loader(&self, extra: &[&str]) -> Loader {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let child = Command::new(env!("CARGO_BIN_EXE_ricochet-loader"))
            .args([
                "--listen",
                &format!("127.0.0.1:{port}"),
                "--group",
                &self.group,
                "--complaints-topic",
                &self.complaints,
                "--deliveries-topic",
                &self.deliveries,
                "--dead-letter-topic",
                &self.dead,
            ])
            .args(if extra.contains(&"--batch-ms") {
                &[][..]
            } else {
                &["--batch-ms", "300"][..]
            })
            .args(extra)
            .env("RICOCHET_KAFKA_BROKERS", &self.kafka.brokers)
            .env("RICOCHET_CLICKHOUSE_URL", &self.ch.url)
            .env("RICOCHET_CLICKHOUSE_DATABASE", &self.ch.database)
            .env(
                "RICOCHET_LOG",
                std::env::var("RICOCHET_TEST_LOADER_LOG").unwrap_or_else(|_| "warn".into()),
            )
            .stdout(Stdio::null())
            .spawn()
            .expect("start loader");
        Loader {
            child,
            metrics: format!("http://127.0.0.1:{port}/metrics"),
        }
    }

    async fn send(&self, topic: &str, key: &str, payload: &[u8]) {
        self.producer
            .send(
                FutureRecord::to(topic).key(key).payload(payload),
                Duration::from_secs(10),
            )
            .await
            .unwrap_or_else(|(e, _)| panic!("produce: {e}"));
    }

    async fn send_complaints(&self, records: &[ComplaintRecord]) {
        for r in records {
            self.send(
                &self.complaints,
                &format!("{}/{}", r.esp, r.sender),
                &serde_json::to_vec(r).unwrap(),
            )
            .await;
        }
    }

    async fn counts(&self) -> Counts {
        self.ch
            .client()
            .query("SELECT count() AS rows, uniqExact(jti) AS tokens FROM complaints")
            .fetch_one()
            .await
            .unwrap()
    }

    /// Waits until ClickHouse holds `tokens` distinct tokens in at least `rows` rows.
    async fn wait_counts(&self, tokens: u64, rows: u64) -> Counts {
        wait_for(
            &format!("{tokens} tokens in ClickHouse"),
            Duration::from_secs(120),
            || async {
                let c = self.counts().await;
                (c.tokens >= tokens && c.rows >= rows).then_some(c)
            },
        )
        .await
    }
}

#[derive(Row, Deserialize, Debug, PartialEq)]
struct Counts {
    rows: u64,
    tokens: u64,
}

struct Loader {
    child: Child,
    metrics: String,
}

impl Loader {
    /// A counter or gauge value from /metrics (summed over label sets), if the endpoint answers.
    async fn metric(&self, name: &str) -> Option<f64> {
        let text = reqwest::get(&self.metrics).await.ok()?.text().await.ok()?;
        Some(
            text.lines()
                .filter(|l| l.starts_with(name))
                .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
                .sum(),
        )
    }

    fn kill9(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Loader {
    fn drop(&mut self) {
        // SAFETY: a signal to our own child.
        unsafe { libc::kill(self.child.id() as i32, libc::SIGTERM) };
        let _ = self.child.wait();
    }
}

fn records(n: usize, sender: &str) -> Vec<ComplaintRecord> {
    (0..n)
        .map(|i| {
            let jti = unique("t").replace('-', "_");
            ComplaintRecord {
                jti: format!("{jti}{i:06}"),
                esp: "esp-a.example".into(),
                sender: format!("{sender}-{}", i % 5),
                provider: "mail.example".into(),
                code: "unwanted".into(),
                nature: "marketing".into(),
                campaign: None,
                recipient_domain: "mail.example".into(),
                from_domain: None,
                reporter: None,
                rcb: None,
                recipient_proven: false,
                token_iat: 1_790_000_000,
                token_exp: 1_790_000_000 + 86_400,
                reported_at_ms: 1_790_000_100_000,
                received_at_ms: 1_790_000_101_000,
                token: "not-checked-by-the-loader".into(),
            }
        })
        .collect()
}

#[tokio::test]
async fn n_records_make_n_tokens_and_a_resend_changes_nothing() {
    let s = Setup::new(kafka(), clickhouse("it_loader_exact")).await;
    let loader = s.loader(&[]);
    let batch = records(1000, "shop");
    s.send_complaints(&batch).await;
    let c = s.wait_counts(1000, 1000).await;
    assert_eq!(
        c,
        Counts {
            rows: 1000,
            tokens: 1000
        }
    );
    // The same records again (a provider retry, a redelivery): stored, never
    // counted twice. (Raw rows may already be merged away, so wait on the loader.)
    s.send_complaints(&batch).await;
    wait_for(
        "the loader to insert the resent records",
        Duration::from_secs(120),
        || async {
            (loader.metric("ricochet_loader_rows_inserted_total").await? >= 2000.0).then_some(())
        },
    )
    .await;
    assert_eq!(s.counts().await.tokens, 1000);
    let hourly: u64 =
        s.ch.client()
            .query("SELECT uniqExactMerge(tokens) FROM complaints_hourly")
            .fetch_one()
            .await
            .unwrap();
    assert_eq!(hourly, 1000, "the hourly roll-up is exact too");
    let delivery = DeliveryRecord {
        esp: "esp-a.example".into(),
        sender: "shop-1".into(),
        campaign: None,
        from_domain: None,
        provider: "mail.example".into(),
        hour: 1_789_995_600,
        delivered: 77,
        received_at_ms: 1,
    };
    s.send(
        &s.deliveries,
        "esp-a.example/shop-1",
        &serde_json::to_vec(&delivery).unwrap(),
    )
    .await;
    wait_for("the delivery row", Duration::from_secs(60), || async {
        let d: u64 =
            s.ch.client()
                .query("SELECT sum(delivered) FROM deliveries FINAL")
                .fetch_one()
                .await
                .ok()?;
        (d == 77).then_some(())
    })
    .await;
    wait_for(
        "the delivery insert to be counted",
        Duration::from_secs(10),
        || async {
            (loader.metric("ricochet_loader_rows_inserted_total").await? >= 2001.0).then_some(())
        },
    )
    .await;
    let ready = reqwest::get(loader.metrics.replace("/metrics", "/readyz"))
        .await
        .unwrap();
    assert_eq!(ready.status(), reqwest::StatusCode::OK);
    let final_rows: u64 =
        s.ch.client()
            .query("SELECT count() FROM complaints FINAL")
            .fetch_one()
            .await
            .unwrap();
    assert_eq!(final_rows, 1000, "FINAL collapses the duplicates");
}

#[tokio::test]
async fn a_loader_killed_mid_batch_loses_nothing_and_counts_nothing_twice() {
    let s = Setup::new(kafka(), clickhouse("it_loader_kill")).await;
    // Large, slow batches: the kill lands while records are read but not written.
    let mut loader = s.loader(&[
        "--batch-ms",
        "60000",
        "--batch-rows",
        "1000000",
        "--instance-id",
        "loader-0",
    ]);
    let batch = records(3000, "shop");
    s.send_complaints(&batch).await;
    wait_for(
        "the loader to read records",
        Duration::from_secs(60),
        || async {
            (loader
                .metric("ricochet_loader_records_consumed_total")
                .await?
                > 0.0)
                .then_some(())
        },
    )
    .await;
    loader.kill9();
    assert_eq!(s.counts().await.tokens, 0, "killed before its first flush");
    let _restarted = s.loader(&["--instance-id", "loader-0"]);
    let c = s.wait_counts(3000, 3000).await;
    assert_eq!(c.tokens, 3000);
}

#[tokio::test]
async fn a_poison_record_goes_to_the_dead_letter_topic_and_the_rest_flows() {
    let s = Setup::new(kafka(), clickhouse("it_loader_dlq")).await;
    let loader = s.loader(&[]);
    let good = records(2, "shop");
    // Same key: same partition, so the poison sits between the two good records.
    s.send(&s.complaints, "k", &serde_json::to_vec(&good[0]).unwrap())
        .await;
    s.send(&s.complaints, "k", b"{this is not json").await;
    s.send(&s.complaints, "k", &serde_json::to_vec(&good[1]).unwrap())
        .await;
    s.wait_counts(2, 2).await;
    let dead = consume_exactly(&s.kafka, &s.dead, 1, Duration::from_secs(60)).await;
    let d: serde_json::Value = serde_json::from_slice(&dead[0].1).unwrap();
    assert_eq!(d["reason"], "not-json");
    assert_eq!(d["source_topic"], s.complaints.as_str());
    assert_eq!(d["offset"].as_i64(), Some(1), "the source offset is kept");
    assert_eq!(d["payload_base64"], "e3RoaXMgaXMgbm90IGpzb24=");
    assert_eq!(
        loader.metric("ricochet_loader_dead_letters_total").await,
        Some(1.0)
    );
}

#[tokio::test]
async fn two_loaders_split_the_partitions_and_the_totals_are_exact() {
    let s = Setup::new(kafka(), clickhouse("it_loader_two")).await;
    let a = s.loader(&[]);
    let b = s.loader(&[]);
    // Both members must be in the group before the records arrive.
    for l in [&a, &b] {
        wait_for("a loader to serve metrics", Duration::from_secs(30), || {
            l.metric("ricochet_loader_consumed")
        })
        .await;
    }
    let mut expected = 0;
    let deadline = std::time::Instant::now() + Duration::from_secs(120);
    loop {
        s.send_complaints(&records(300, &unique("s"))).await;
        expected += 300;
        s.wait_counts(expected, expected).await;
        let (ca, cb) = (
            a.metric("ricochet_loader_records_consumed_total")
                .await
                .unwrap_or(0.0),
            b.metric("ricochet_loader_records_consumed_total")
                .await
                .unwrap_or(0.0),
        );
        if ca > 0.0 && cb > 0.0 {
            assert_eq!(
                (ca + cb) as u64,
                expected,
                "every record read exactly once across the group"
            );
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "one loader never got a partition (a={ca}, b={cb})"
        );
    }
    assert_eq!(
        s.counts().await,
        Counts {
            rows: expected,
            tokens: expected
        }
    );
}

#[tokio::test]
async fn clickhouse_down_for_a_while_loses_nothing() {
    let mut ch = ClickHouseServer::start().await;
    let s = Setup::new(kafka(), ch.config()).await;
    let loader = s.loader(&["--max-backoff-ms", "500"]);
    s.send_complaints(&records(500, "before")).await;
    s.wait_counts(500, 500).await;

    ch.stop();
    s.send_complaints(&records(500, "during")).await;
    wait_for(
        "the loader to hit the outage",
        Duration::from_secs(60),
        || async {
            (loader
                .metric("ricochet_loader_clickhouse_errors_total")
                .await?
                > 0.0)
                .then_some(())
        },
    )
    .await;
    let ready = reqwest::get(loader.metrics.replace("/metrics", "/readyz"))
        .await
        .unwrap();
    assert_eq!(
        ready.status(),
        reqwest::StatusCode::SERVICE_UNAVAILABLE,
        "not ready while inserts fail"
    );
    let free = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    ch.restart(free).await;
    let c = s.wait_counts(1000, 1000).await;
    assert_eq!(c.tokens, 1000);
}
