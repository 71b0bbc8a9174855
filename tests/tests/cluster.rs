//! A two-shard ClickHouse cluster of the test's own (two libchdb servers
//! with a `remote_servers` entry, no coordination service): the cluster
//! form of the migrations applied node by node, complaints inserted through
//! the `Distributed` tables from either node, and every count exact.
#![cfg(feature = "integration")]

use clickhouse::Row;
use ricochet_integration_tests::{complaint_row, ClickHouseCluster};
use ricochet_storage::cluster::ClusterSpec;
use ricochet_storage::{ClickHouseConfig, ComplaintRow, Migrator};
use serde::Deserialize;

/// Inserts through `node`'s Distributed `complaints`, acknowledged only
/// once every row is on its shard (the cluster setting's foreground inserts).
async fn insert_through(node: &ClickHouseConfig, rows: &[ComplaintRow]) {
    assert!(node.cluster.is_some());
    let client = node.client();
    let mut insert = client.insert::<ComplaintRow>("complaints").await.unwrap();
    for r in rows {
        insert.write(r).await.unwrap();
    }
    insert.end().await.unwrap();
}

#[derive(Row, Deserialize, Debug, PartialEq)]
struct Counts {
    tokens: u64,
    final_rows: u64,
    hourly: u64,
}

#[tokio::test]
async fn a_two_shard_cluster_counts_each_token_once() {
    let cluster = ClickHouseCluster::start(2).await;
    let nodes = cluster.configs();
    let spec = ClusterSpec {
        cluster: ClickHouseCluster::NAME.into(),
        coordinated: false,
    };
    let report = Migrator::for_cluster(nodes.clone(), &spec)
        .unwrap()
        .run()
        .await
        .unwrap();
    assert!(report.applied.len() >= 18, "{report:?}");
    let again = Migrator::for_cluster(nodes.clone(), &spec)
        .unwrap()
        .run()
        .await
        .unwrap();
    assert!(
        again.applied.is_empty(),
        "the cluster set is idempotent too"
    );

    let now_ms = 1_796_000_000_000;
    let rows: Vec<ComplaintRow> = (0..10_000)
        .map(|i| {
            let sender = format!("sender-{}", i % 97);
            complaint_row(
                &format!("jti-{i:06}"),
                "esp-a.example",
                &sender,
                "mail.example",
                "unwanted",
                now_ms,
            )
        })
        .collect();
    insert_through(&nodes[0], &rows).await;
    // Half of them again, through the other node: a provider's retry.
    insert_through(&nodes[1], &rows[..5_000]).await;

    for node in &nodes {
        let counts = node
            .client()
            .query(
                "SELECT assumeNotNull((SELECT uniqExact(jti) FROM complaints)) AS tokens,
                        assumeNotNull((SELECT count() FROM complaints FINAL)) AS final_rows,
                        assumeNotNull((SELECT uniqExactMerge(tokens) FROM complaints_hourly)) AS hourly",
            )
            .fetch_one::<Counts>()
            .await
            .unwrap();
        let expected = Counts {
            tokens: 10_000,
            final_rows: 10_000,
            hourly: 10_000,
        };
        assert_eq!(counts, expected, "through {}", node.url);
        assert_eq!(
            counts.hourly, 10_000,
            "each shard's materialized view saw its own rows"
        );
    }
    work_lists_are_the_nodes_own(&nodes[0]).await;
    for node in &nodes {
        let on_shard = node
            .client()
            .query("SELECT count() FROM complaints_local FINAL")
            .fetch_one::<u64>()
            .await
            .unwrap();
        assert!(
            (2_000..8_000).contains(&on_shard),
            "{} holds {on_shard} of 10,000 tokens: both shards hold a share",
            node.url
        );
    }
}

/// Scoring's work lists live whole on the node scoring talks to: truncated
/// there, and read by every shard through `GLOBAL IN` (every sender of the
/// list is found, whichever shard holds its rows).
async fn work_lists_are_the_nodes_own(node: &ClickHouseConfig) {
    let client = node.client();
    let exec = |sql: &'static str| {
        let client = client.clone();
        async move { client.query(sql).execute().await.unwrap() }
    };
    exec("INSERT INTO scoring_scope SELECT DISTINCT esp, sender FROM complaints").await;
    let count = |sql: &'static str| {
        let client = client.clone();
        async move { client.query(sql).fetch_one::<u64>().await.unwrap() }
    };
    assert_eq!(count("SELECT count() FROM scoring_scope").await, 97);
    let listed = "SELECT uniqExact(jti) FROM complaints
                  WHERE (esp, sender) GLOBAL IN (SELECT esp, sender FROM scoring_scope)";
    assert_eq!(
        count(listed).await,
        10_000,
        "both shards test against the one list"
    );
    exec("TRUNCATE TABLE scoring_scope").await;
    assert_eq!(
        count("SELECT count() FROM scoring_scope").await,
        0,
        "a truncate empties it"
    );
}
