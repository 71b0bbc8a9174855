//! `ricochet audit verify` against penalties written by a real scoring run.
#![cfg(feature = "integration")]

use std::process::Command;

use ricochet_integration_tests::{clickhouse, complaint_row, drop_database, insert_rows};
use ricochet_scoring::engine::score_once;
use ricochet_scoring::Policy;
use ricochet_storage::{ComplaintRow, DeliveryRow, Migrator};

#[tokio::test]
async fn audit_verify_passes_an_intact_chain_and_names_the_rewritten_row() {
    let ch = clickhouse("it_audit");
    Migrator::new(ch.clone()).unwrap().run().await.unwrap();
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64;
    let client = ch.client();
    let deliveries: Vec<DeliveryRow> = ["s1", "s2"]
        .iter()
        .map(|sender| DeliveryRow {
            esp: "esp-a.example".into(),
            sender: sender.to_string(),
            provider: "p.example".into(),
            campaign: String::new(),
            from_domain: String::new(),
            hour: (now / 1000 / 3600 * 3600) as u32,
            delivered: 5_000,
            received_at: now,
        })
        .collect();
    insert_rows(&ch, "deliveries", &deliveries).await;
    let rows: Vec<ComplaintRow> = ["s1", "s2"]
        .iter()
        .flat_map(|sender| {
            (0..100).map(move |i| {
                complaint_row(
                    &format!("{sender}x{i:020}"),
                    "esp-a.example",
                    sender,
                    "p.example",
                    "phishing",
                    now - 1000,
                )
            })
        })
        .collect();
    insert_rows(&ch, "complaints", &rows).await;
    let run = score_once(&client, &Policy::default(), now).await.unwrap();
    let levels: Vec<(&str, &str)> = run
        .changes
        .iter()
        .map(|c| (c.level.as_str(), c.to_tier.as_str()))
        .collect();
    assert_eq!(
        levels,
        [
            ("sender", "exclude"),
            ("sender", "exclude"),
            ("esp", "exclude")
        ],
        "both senders and the ESP as a whole rise to exclude"
    );

    let audit = || {
        Command::new(env!("CARGO_BIN_EXE_ricochet"))
            .args(["audit", "verify", "--esp", "esp-a.example"])
            .env("RICOCHET_CLICKHOUSE_URL", &ch.url)
            .env("RICOCHET_CLICKHOUSE_DATABASE", &ch.database)
            .output()
            .unwrap()
    };
    let ok = audit();
    assert!(
        ok.status.success(),
        "{}",
        String::from_utf8_lossy(&ok.stderr)
    );
    assert!(
        String::from_utf8_lossy(&ok.stdout).starts_with("chain intact: esp-a.example, 3 row(s)")
    );

    client
        .query("ALTER TABLE penalties UPDATE evidence = '{}' WHERE seq = 3 SETTINGS mutations_sync = 2")
        .execute()
        .await
        .unwrap();
    let broken = audit();
    assert_eq!(broken.status.code(), Some(2));
    let out = String::from_utf8_lossy(&broken.stdout);
    assert!(out.contains("row seq 3 was altered"), "{out}");
    drop_database(&ch).await;
}
