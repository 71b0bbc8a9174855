//! Scoring runs against the real ClickHouse with the migrated schema.
#![cfg(feature = "integration")]

use ricochet_integration_tests::{clickhouse, complaint_row, drop_database, insert_rows};
use ricochet_scoring::chain::PenaltyEntry;
use ricochet_scoring::chain::{verify_chain, ChainError};
use ricochet_scoring::engine::{score_once, RunReport, Scorer};
use ricochet_scoring::store::penalties::penalty_chain;
use ricochet_scoring::{Policy, Tier};
use ricochet_storage::{ClickHouseConfig, ComplaintRow, DeliveryRow, Migrator};

const DAY_MS: i64 = 86_400_000;

/// The test's "now": the real time, so the reputation table's 30-day TTL keeps the rows.
fn t0() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64
}

fn complaint(jti: String, sender: &str, provider: &str, at_ms: i64) -> ComplaintRow {
    complaint_row(&jti, "esp-a.example", sender, provider, "unwanted", at_ms)
}

/// A complaint through `p1.example` from the account `reporter`.
fn complaint_from(jti: String, sender: &str, reporter: String, at_ms: i64) -> ComplaintRow {
    ComplaintRow {
        reporter,
        ..complaint(jti, sender, "p1.example", at_ms)
    }
}

fn delivery(sender: &str, delivered: u64, at_ms: i64) -> DeliveryRow {
    DeliveryRow {
        esp: "esp-a.example".into(),
        sender: sender.into(),
        provider: "p1.example".into(),
        campaign: String::new(),
        from_domain: String::new(),
        hour: (at_ms / 1000 / 3600 * 3600) as u32,
        delivered,
        received_at: at_ms,
    }
}

async fn deliver(ch: &ClickHouseConfig, sender: &str, delivered: u64, at_ms: i64) {
    insert_rows(ch, "deliveries", &[delivery(sender, delivered, at_ms)]).await;
}

/// The sender-level tier changes of a run (the ESP level moves too when
/// one of a few senders does).
fn sender_changes(run: &RunReport) -> Vec<&PenaltyEntry> {
    run.changes.iter().filter(|c| c.level == "sender").collect()
}

/// A row of `reputation`, names as plain strings.
#[derive(Debug, PartialEq, ::clickhouse::Row, serde::Deserialize)]
struct SnapshotRow {
    esp: String,
    sender: String,
    window: String,
    computed_at: i64,
    delivered: u64,
    complaints: u64,
    complaints_by_code: Vec<(String, u64)>,
    complaints_by_provider: Vec<(String, u64)>,
    weighted: f64,
    tier: String,
}

async fn complain(ch: &ClickHouseConfig, rows: Vec<ComplaintRow>) {
    insert_rows(ch, "complaints", &rows).await;
}

#[tokio::test]
async fn tiers_rise_on_evidence_fall_after_a_week_and_the_chain_catches_tampering() {
    let ch = clickhouse("it_scoring");
    Migrator::new(ch.clone()).unwrap().run().await.unwrap();
    let policy = Policy::default();
    let client = ch.client();
    #[allow(non_snake_case)]
    let T0 = t0();

    // bad: 60 complaints on 10,000 (0.6 %, lower bound 0.47 %) → throttle.
    // good: 1 complaint, reported through two providers, on 10,000 → ok, counted once.
    // tiny: 5 on 100 → insufficient data, never a tier.
    deliver(&ch, "bad", 10_000, T0).await;
    deliver(&ch, "good", 10_000, T0).await;
    deliver(&ch, "tiny", 100, T0).await;
    let mut rows: Vec<ComplaintRow> = (0..60)
        .map(|i| complaint(format!("bad{i:020}"), "bad", "p1.example", T0 - 60_000))
        .collect();
    rows.push(complaint(
        "good00000000000000000001".into(),
        "good",
        "p1.example",
        T0 - 60_000,
    ));
    rows.push(complaint(
        "good00000000000000000001".into(),
        "good",
        "p2.example",
        T0 - 30_000,
    ));
    rows.extend(
        (0..5).map(|i| complaint(format!("tiny{i:019}"), "tiny", "p1.example", T0 - 60_000)),
    );
    complain(&ch, rows).await;

    // blaster: one campaign draws 60 complaints in an hour on 100,000 messages:
    // no tier (0.06 %), but a burst to flag.
    deliver(&ch, "blaster", 100_000, T0).await;
    let blast: Vec<ComplaintRow> = (0..60)
        .map(|i| ComplaintRow {
            campaign: "spring-blast".into(),
            ..complaint(
                format!("blast{i:019}"),
                "blaster",
                "p1.example",
                T0 - 60_000,
            )
        })
        .collect();
    complain(&ch, blast).await;

    let run = score_once(&client, &policy, T0).await.unwrap();
    assert_eq!(run.senders, 4);
    assert_eq!(run.bursts.len(), 1, "{:?}", run.bursts);
    assert_eq!(
        (
            run.bursts[0].sender.as_str(),
            run.bursts[0].campaign.as_str(),
            run.bursts[0].complaints
        ),
        ("blaster", "spring-blast", 60)
    );
    let changes = sender_changes(&run);
    assert_eq!(changes.len(), 1, "{:?}", run.changes);
    let change = changes[0];
    assert_eq!(
        (
            change.sender.as_str(),
            change.from_tier.as_str(),
            change.to_tier.as_str(),
            change.rule.as_str()
        ),
        ("bad", "ok", "throttle", "rise-on-lower-bound")
    );
    let evidence: serde_json::Value = serde_json::from_str(&change.evidence).unwrap();
    assert_eq!(evidence["windows"]["24h"]["delivered"], 10_000);
    assert_eq!(evidence["windows"]["24h"]["weighted"], 60.0);
    let good_weighted: f64 = client
        .query("SELECT weighted FROM reputation WHERE level = 'sender' AND sender = 'good' AND window = '24h'")
        .fetch_one()
        .await
        .unwrap();
    assert_eq!(
        good_weighted, 1.0,
        "a token reported by two providers counts once"
    );
    // Every column of one snapshot as written (they go in column blocks).
    let bad: SnapshotRow = client
        .query(
            "SELECT toString(esp) AS esp, sender, toString(window) AS window,
                    toUnixTimestamp64Milli(computed_at) AS computed_at, delivered, complaints,
                    complaints_by_code, complaints_by_provider, weighted,
                    toString(tier) AS tier
             FROM reputation WHERE level = 'sender' AND sender = 'bad' AND window = '24h'",
        )
        .fetch_one()
        .await
        .unwrap();
    assert_eq!(
        bad,
        SnapshotRow {
            esp: "esp-a.example".into(),
            sender: "bad".into(),
            window: "24h".into(),
            computed_at: T0,
            delivered: 10_000,
            complaints: 60,
            complaints_by_code: vec![("unwanted".into(), 60)],
            complaints_by_provider: vec![("p1.example".into(), 60)],
            weighted: 60.0,
            tier: "throttle".into(),
        }
    );
    let tiny: String = client
        .query("SELECT toString(tier) FROM reputation WHERE level = 'sender' AND sender = 'tiny' AND window = '24h'")
        .fetch_one()
        .await
        .unwrap();
    assert_eq!(tiny, "insufficient-data");

    // The same data again: nothing changes, nothing is appended.
    let again = score_once(&client, &policy, T0 + 10_000).await.unwrap();
    assert!(again.changes.is_empty());

    // Clean weeks later: the cool-down starts, and the tier falls only after seven
    // days below, and only as far as the evidence of the longest window allows.
    deliver(&ch, "bad", 10_000, T0 + 8 * DAY_MS).await;
    assert!(score_once(&client, &policy, T0 + 8 * DAY_MS)
        .await
        .unwrap()
        .changes
        .is_empty());
    deliver(&ch, "bad", 10_000, T0 + 14 * DAY_MS).await;
    assert!(
        score_once(&client, &policy, T0 + 14 * DAY_MS)
            .await
            .unwrap()
            .changes
            .is_empty(),
        "six days below is not seven"
    );
    deliver(&ch, "bad", 10_000, T0 + 15 * DAY_MS).await;
    let fall = score_once(&client, &policy, T0 + 15 * DAY_MS)
        .await
        .unwrap();
    let fell = sender_changes(&fall);
    assert_eq!(fell.len(), 1);
    assert_eq!(
        (fell[0].to_tier.as_str(), fell[0].rule.as_str()),
        ("warning", "fall-after-cool-down"),
        "the 30-day window still holds 60 complaints on 40,000 deliveries (0.15 %)"
    );
    assert_eq!(fall.per_tier.get(&Tier::Throttle), None);

    let chain = penalty_chain(&client, "esp-a.example").await.unwrap();
    assert_eq!(chain.len(), 2);
    assert_eq!(verify_chain(&chain), Ok(()));

    // Rewriting history breaks the chain at the rewritten row.
    client
        .query("ALTER TABLE penalties UPDATE to_tier = 'warning' WHERE seq = 1 SETTINGS mutations_sync = 2")
        .execute()
        .await
        .unwrap();
    let chain = penalty_chain(&client, "esp-a.example").await.unwrap();
    assert_eq!(verify_chain(&chain), Err(ChainError::Altered { seq: 1 }));

    drop_database(&ch).await;
}

#[tokio::test]
async fn incremental_runs_rescore_only_senders_with_new_rows_or_sliding_windows() {
    let ch = clickhouse("it_scoring_incr");
    Migrator::new(ch.clone()).unwrap().run().await.unwrap();
    let policy = Policy::default();
    let client = ch.client();
    #[allow(non_snake_case)]
    let T0 = t0();
    for s in ["steady", "rising", "quiet"] {
        deliver(&ch, s, 10_000, T0).await;
    }
    complain(
        &ch,
        (0..5)
            .map(|i| complaint(format!("st{i:022}"), "steady", "p1.example", T0 - 1_000))
            .collect(),
    )
    .await;

    let mut scorer = Scorer::new(client.clone(), policy.clone());
    // Rows loaded before a run are all it needs to see here.
    scorer.load_margin_ms = 0;
    let first = scorer.run(T0).await.unwrap();
    assert!(first.full);
    assert_eq!(first.senders, 3);
    assert_eq!(first.per_tier.get(&Tier::Ok), Some(&3));

    let idle = scorer.run(T0 + 1_000).await.unwrap();
    assert!(!idle.full);
    assert_eq!(idle.senders, 0, "nothing new, nothing due");

    // 60 complaints on 10,000 for one sender: only it is rescored, and it rises.
    complain(
        &ch,
        (0..60)
            .map(|i| complaint(format!("ri{i:022}"), "rising", "p1.example", T0 + 1_500))
            .collect(),
    )
    .await;
    let rise = scorer.run(T0 + 2_000).await.unwrap();
    assert!(!rise.full);
    assert_eq!(rise.senders, 1);
    let changes = sender_changes(&rise);
    assert_eq!(changes.len(), 1);
    assert_eq!(
        (changes[0].sender.as_str(), changes[0].to_tier.as_str()),
        ("rising", "throttle")
    );
    assert_eq!(rise.per_tier.get(&Tier::Throttle), Some(&1));
    assert_eq!(rise.per_tier.get(&Tier::Ok), Some(&2));

    // An hour later every sender's delivery hour and complaints have left the
    // 1 h window: all are due although no row came.
    let slid = scorer.run(T0 + 3_600_000 + 2_000).await.unwrap();
    assert!(!slid.full);
    assert_eq!(slid.senders, 3);
    assert!(slid.changes.is_empty());
    let next = scorer.run(T0 + 3_600_000 + 3_000).await.unwrap();
    assert_eq!(
        next.senders, 0,
        "the next rows leave the 24 h window in a day"
    );

    // What the incremental runs left is what a full run derives from scratch.
    let full = score_once(&client, &policy, T0 + 3_600_000 + 2_000)
        .await
        .unwrap();
    assert!(full.changes.is_empty());
    assert_eq!(full.per_tier, slid.per_tier);

    drop_database(&ch).await;
}

#[tokio::test]
async fn a_few_accounts_bombing_a_sender_count_at_most_the_reporter_cap_each() {
    let ch = clickhouse("it_scoring_cap");
    Migrator::new(ch.clone()).unwrap().run().await.unwrap();
    let client = ch.client();
    #[allow(non_snake_case)]
    let T0 = t0();
    deliver(&ch, "bombed", 10_000, T0).await;
    // 40 complaints from 2 accounts: uncapped, 0.4 % (throttle); capped at 3
    // each, 6 on 10,000 (ok).
    let rows = (0..40)
        .map(|i| {
            let attacker = format!("attacker-{}", i % 2);
            complaint_from(format!("bo{i:022}"), "bombed", attacker, T0 - 60_000)
        })
        .collect();
    complain(&ch, rows).await;
    let run = score_once(&client, &Policy::default(), T0).await.unwrap();
    assert!(run.changes.is_empty(), "{:?}", run.changes);
    let weighted: f64 = client
        .query("SELECT weighted FROM reputation WHERE level = 'sender' AND sender = 'bombed' AND window = '24h'")
        .fetch_one()
        .await
        .unwrap();
    assert_eq!(weighted, 6.0);

    drop_database(&ch).await;
}

#[tokio::test]
async fn thousands_of_heavy_reporters_are_capped_in_one_run() {
    // 10,000 senders, each reported 10 times by one account: every one is a
    // suspect with a heavy reporter. Their lists are far larger than a
    // ClickHouse query may be, so they must not travel in the query text.
    let ch = clickhouse("it_scoring_many_heavy");
    Migrator::new(ch.clone()).unwrap().run().await.unwrap();
    let client = ch.client();
    #[allow(non_snake_case)]
    let T0 = t0();
    let senders: Vec<String> = (0..10_000).map(|i| format!("sender-{i:05}")).collect();
    let deliveries: Vec<DeliveryRow> = senders.iter().map(|s| delivery(s, 1_000, T0)).collect();
    insert_rows(&ch, "deliveries", &deliveries).await;
    let rows: Vec<ComplaintRow> = senders
        .iter()
        .flat_map(|s| {
            (0..10).map(move |i| {
                complaint_from(
                    format!("{s}-{i:02}"),
                    s,
                    format!("bomber-of-{s}"),
                    T0 - 60_000,
                )
            })
        })
        .collect();
    complain(&ch, rows).await;

    let run = score_once(&client, &Policy::default(), T0).await.unwrap();
    assert_eq!(run.senders, 10_000);
    let (capped, max): (u64, f64) = client
        .query("SELECT countIf(weighted = 3), max(weighted) FROM reputation WHERE level = 'sender' AND window = '24h'")
        .fetch_one()
        .await
        .unwrap();
    assert_eq!(
        (capped, max),
        (10_000, 3.0),
        "each bomber counts at most 3 complaints"
    );

    drop_database(&ch).await;
}

#[tokio::test]
async fn senders_with_deliveries_complaints_or_both_are_read_once_each() {
    // Complaints and deliveries come as two streams joined in (esp, sender)
    // order: a sender in one stream only must neither be lost nor take the
    // other stream's next sender's counts.
    let ch = clickhouse("it_scoring_join");
    Migrator::new(ch.clone()).unwrap().run().await.unwrap();
    let client = ch.client();
    #[allow(non_snake_case)]
    let T0 = t0();
    // (sender, delivered, complaints), for each of two ESPs; names chosen so
    // that one ESP's last sender sorts after the other's first.
    let senders = [
        ("a-both", 1_000, 2),
        ("b-deliveries-only", 2_000, 0),
        ("c-complaints-only", 0, 3),
        ("d-both", 4_000, 4),
        ("e-complaints-only", 0, 5),
    ];
    let mut deliveries = vec![];
    let mut complaints = vec![];
    for esp in ["esp-a.example", "esp-b.example"] {
        for (sender, delivered, n) in senders {
            if delivered > 0 {
                deliveries.push(DeliveryRow {
                    esp: esp.into(),
                    ..delivery(sender, delivered, T0 - 60_000)
                });
            }
            for i in 0..n {
                let jti = format!("{esp}-{sender}-{i}");
                complaints.push(complaint_row(
                    &jti,
                    esp,
                    sender,
                    "p1.example",
                    "unwanted",
                    T0 - 60_000,
                ));
            }
        }
    }
    insert_rows(&ch, "deliveries", &deliveries).await;
    complain(&ch, complaints).await;

    let run = score_once(&client, &Policy::default(), T0).await.unwrap();
    assert_eq!(run.senders, 10);
    let rows: Vec<(String, String, u64, u64)> = client
        .query(
            "SELECT esp, sender, delivered, complaints FROM reputation
             WHERE level = 'sender' AND window = '24h' ORDER BY esp, sender",
        )
        .fetch_all()
        .await
        .unwrap();
    let expected: Vec<(String, String, u64, u64)> = ["esp-a.example", "esp-b.example"]
        .iter()
        .flat_map(|esp| {
            senders
                .iter()
                .map(move |(s, d, n)| (esp.to_string(), s.to_string(), *d, *n))
        })
        .collect();
    assert_eq!(rows, expected);

    drop_database(&ch).await;
}
