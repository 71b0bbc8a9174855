//! The real ClickHouse: migrations and the complaints/deliveries schema.
#![cfg(feature = "integration")]

use clickhouse::Row;
use ricochet_integration_tests::{clickhouse, complaint_row};
use ricochet_storage::{ComplaintRow, DeliveryRow, Migration, MigrationError, Migrator};
use serde::Deserialize;

fn complaint(jti: &str, provider: &str, offset: u64) -> ComplaintRow {
    ComplaintRow {
        token_iat: 1_790_000_000,
        token_exp: 1_790_000_000 + 14 * 86_400,
        reported_at: 1_790_000_100_000,
        received_at: 1_790_000_101_000 + offset as i64,
        kafka_offset: offset,
        ..complaint_row(jti, "esp-a.example", "acct-1", provider, "unwanted", 0)
    }
}

#[derive(Row, Deserialize)]
struct Counts {
    rows: u64,
    tokens: u64,
    final_rows: u64,
}

#[tokio::test]
async fn migrate_insert_and_count_each_token_once() {
    let config = clickhouse("it_schema");
    let report = Migrator::new(config.clone())
        .unwrap()
        .run()
        .await
        .expect("migrate");
    assert!(report
        .applied
        .iter()
        .any(|m| m.ends_with("_complaints.sql")));
    assert_eq!(report.already_applied, 0);
    let again = Migrator::new(config.clone())
        .unwrap()
        .run()
        .await
        .expect("migrate again");
    assert!(again.applied.is_empty(), "second run applies nothing");
    assert_eq!(again.already_applied, report.applied.len());

    let client = config.client();
    // Two inserts: three tokens, one of them delivered twice (as after a retry).
    for batch in [
        vec![
            complaint("AAAAAAAAAAAAAAAAAAAAAA", "mail.example", 1),
            complaint("BBBBBBBBBBBBBBBBBBBBBB", "mail.example", 2),
        ],
        vec![
            complaint("AAAAAAAAAAAAAAAAAAAAAA", "other.example", 3),
            complaint("CCCCCCCCCCCCCCCCCCCCCC", "mail.example", 4),
        ],
    ] {
        let mut insert = client.insert::<ComplaintRow>("complaints").await.unwrap();
        for row in &batch {
            insert.write(row).await.unwrap();
        }
        insert.end().await.unwrap();
    }
    let counts: Counts = client
        .query("SELECT count() AS rows, uniqExact(jti) AS tokens, assumeNotNull((SELECT count() FROM complaints FINAL)) AS final_rows FROM complaints")
        .fetch_one()
        .await
        .unwrap();
    assert_eq!(counts.rows, 4, "both copies are stored until a merge");
    assert_eq!(
        counts.tokens, 3,
        "uniqExact counts each token once before merges"
    );
    assert_eq!(counts.final_rows, 3, "FINAL collapses the duplicate");

    let back: Vec<ComplaintRow> = client
        .query("SELECT ?fields FROM complaints FINAL WHERE jti = ?")
        .bind("BBBBBBBBBBBBBBBBBBBBBB")
        .fetch_all()
        .await
        .unwrap();
    assert_eq!(
        back,
        vec![complaint("BBBBBBBBBBBBBBBBBBBBBB", "mail.example", 2)]
    );

    // The token reported through two providers is flagged.
    let flagged: Vec<String> = client
        .query("SELECT jti FROM multi_provider_tokens")
        .fetch_all()
        .await
        .unwrap();
    assert_eq!(flagged, vec!["AAAAAAAAAAAAAAAAAAAAAA".to_string()]);
    // The hourly roll-up stays exact: per provider, and across providers.
    let per_sender: u64 = client
        .query("SELECT uniqExactMerge(tokens) FROM complaints_hourly WHERE esp = 'esp-a.example' AND sender = 'acct-1'")
        .fetch_one()
        .await
        .unwrap();
    assert_eq!(
        per_sender, 3,
        "three tokens, one of them inserted twice through two providers"
    );
    let by_provider: Vec<(String, u64)> = client
        .query("SELECT provider, uniqExactMerge(tokens) FROM complaints_hourly GROUP BY provider ORDER BY provider")
        .fetch_all()
        .await
        .unwrap();
    assert_eq!(
        by_provider,
        vec![
            ("mail.example".to_string(), 3),
            ("other.example".to_string(), 1)
        ]
    );

    // Deliveries: a corrected report for the same hour replaces the first;
    // reports for two campaigns of that hour add up (a sender's count is
    // the sum over its campaigns).
    let mut insert = client.insert::<DeliveryRow>("deliveries").await.unwrap();
    for (campaign, delivered, received_at) in [
        ("", 100, 1),
        ("", 150, 2),
        ("c1", 40, 1),
        ("c2", 9, 1),
        ("c1", 30, 3),
    ] {
        insert
            .write(&DeliveryRow {
                esp: "esp-a.example".into(),
                sender: "acct-1".into(),
                provider: "mail.example".into(),
                campaign: campaign.into(),
                from_domain: String::new(),
                hour: 1_790_000_000 / 3600 * 3600,
                delivered,
                received_at,
            })
            .await
            .unwrap();
    }
    insert.end().await.unwrap();
    let delivered: u64 = client
        .query("SELECT sum(delivered) FROM deliveries FINAL")
        .fetch_one()
        .await
        .unwrap();
    assert_eq!(delivered, 150 + 30 + 9);
    let rolled_up: u64 = client
        .query("SELECT sum(d) FROM (SELECT argMaxMerge(delivered) AS d FROM deliveries_hourly GROUP BY esp, sender, hour, provider, campaign)")
        .fetch_one()
        .await
        .unwrap();
    assert_eq!(
        rolled_up,
        150 + 30 + 9,
        "the roll-up keeps the newest report too"
    );

    config
        .server_client()
        .query(&format!("DROP DATABASE `{}`", config.database))
        .execute()
        .await
        .unwrap();
}

#[tokio::test]
async fn a_changed_applied_migration_is_refused() {
    let config = clickhouse("it_checksum");
    let v1 = Migration::new(
        "0001_t.sql",
        "CREATE TABLE IF NOT EXISTS t (x UInt8) ENGINE = Log;",
    )
    .unwrap();
    Migrator::with_migrations(config.clone(), vec![v1])
        .run()
        .await
        .expect("first run");
    let edited = Migration::new(
        "0001_t.sql",
        "CREATE TABLE IF NOT EXISTS t (x UInt16) ENGINE = Log;",
    )
    .unwrap();
    let err = Migrator::with_migrations(config.clone(), vec![edited])
        .run()
        .await
        .unwrap_err();
    assert!(
        matches!(err, MigrationError::ChecksumMismatch { ref name, .. } if name == "0001_t.sql"),
        "{err}"
    );
    let err = Migrator::with_migrations(config.clone(), vec![])
        .run()
        .await
        .unwrap_err();
    assert!(
        matches!(err, MigrationError::UnknownApplied { version: 1, .. }),
        "{err}"
    );
    config
        .server_client()
        .query(&format!("DROP DATABASE `{}`", config.database))
        .execute()
        .await
        .unwrap();
}

/// The cluster form of every migration, both kinds (with a coordination
/// service: `ON CLUSTER` and `Replicated*` engines; without: plain), is
/// accepted by ClickHouse's own parser (`formatQuery`). The replicated
/// kind cannot run here (libchdb has no Keeper client); this is its check.
#[tokio::test]
async fn the_cluster_schema_parses_in_clickhouse() {
    use ricochet_storage::cluster::{cluster_migrations, ClusterSpec};
    let client = clickhouse("cluster_parse").server_client();
    let migrations = ricochet_storage::migrations::embedded().unwrap();
    let mut checked = 0;
    for coordinated in [true, false] {
        let spec = ClusterSpec {
            cluster: "ricochet".into(),
            coordinated,
        };
        for (name, statements) in cluster_migrations(&migrations, &spec).unwrap() {
            for sql in statements {
                let formatted = client
                    .query("SELECT formatQuery(?)")
                    .bind(&sql)
                    .fetch_one::<String>()
                    .await
                    .unwrap_or_else(|e| panic!("{name}: ClickHouse refuses {sql}: {e}"));
                assert!(!formatted.is_empty());
                checked += 1;
            }
        }
    }
    assert!(checked > 60, "{checked} statements");
}
