//! The cluster form of the shipped migrations: generated for both kinds of
//! cluster without a statement left over, and shaped as a sharded schema.

use ricochet_storage::cluster::{cluster_migrations, ClusterSpec};
use ricochet_storage::migrations::embedded;

fn statements(coordinated: bool) -> Vec<String> {
    let spec = ClusterSpec {
        cluster: "ricochet".into(),
        coordinated,
    };
    cluster_migrations(&embedded().unwrap(), &spec)
        .unwrap()
        .into_iter()
        .flat_map(|(_, s)| s)
        .collect()
}

fn find<'a>(all: &'a [String], start: &str) -> &'a str {
    all.iter()
        .find(|s| s.starts_with(start))
        .unwrap_or_else(|| panic!("no statement starting {start:?}"))
}

#[test]
fn every_table_gets_a_shard_table_and_a_distributed_front() {
    let all = statements(true);
    let local = find(
        &all,
        "CREATE TABLE IF NOT EXISTS complaints_local ON CLUSTER ricochet",
    );
    assert!(local.contains("ENGINE = ReplicatedReplacingMergeTree('/clickhouse/tables/{shard}/{database}/complaints_local', '{replica}')"), "{local}");
    assert!(local.contains("ORDER BY (esp, sender, jti)"), "{local}");
    let front = find(
        &all,
        "CREATE TABLE IF NOT EXISTS complaints ON CLUSTER ricochet",
    );
    assert_eq!(front, "CREATE TABLE IF NOT EXISTS complaints ON CLUSTER ricochet AS complaints_local ENGINE = Distributed(ricochet, currentDatabase(), complaints_local, cityHash64(esp, sender))");
    let deliveries = find(&all, "CREATE TABLE IF NOT EXISTS deliveries_local");
    assert!(deliveries.contains("ReplicatedReplacingMergeTree('/clickhouse/tables/{shard}/{database}/deliveries_local', '{replica}', received_at)"), "{deliveries}");
    let reports = find(&all, "CREATE TABLE IF NOT EXISTS complaint_reports ON");
    assert!(reports.ends_with("cityHash64(esp, sender))"), "{reports}");
    let dispatch = find(&all, "CREATE TABLE IF NOT EXISTS penalty_dispatch ON");
    assert!(dispatch.ends_with("cityHash64(esp))"), "{dispatch}");
}

#[test]
fn views_and_alters_go_where_their_rows_are() {
    let all = statements(true);
    let mv = find(
        &all,
        "CREATE MATERIALIZED VIEW IF NOT EXISTS complaints_hourly_mv",
    );
    assert!(
        mv.contains("TO complaints_hourly_local") && mv.contains("FROM complaints_local"),
        "{mv}"
    );
    let view = find(
        &all,
        "CREATE VIEW IF NOT EXISTS multi_provider_tokens ON CLUSTER ricochet",
    );
    assert!(
        view.contains("FROM complaint_reports") && !view.contains("_local"),
        "a view reads the whole cluster: {view}"
    );
    let add = find(
        &all,
        "ALTER TABLE deliveries_local ON CLUSTER ricochet ADD COLUMN IF NOT EXISTS campaign",
    );
    assert!(add.contains("MODIFY ORDER BY"), "{add}");
    let front = find(
        &all,
        "ALTER TABLE deliveries ON CLUSTER ricochet ADD COLUMN IF NOT EXISTS campaign",
    );
    assert!(
        !front.contains("ORDER BY"),
        "the sorting key is the shard table's: {front}"
    );
    let materialize = find(
        &all,
        "ALTER TABLE complaints_local ON CLUSTER ricochet MATERIALIZE COLUMN",
    );
    assert!(
        materialize.ends_with("SETTINGS mutations_sync = 2"),
        "{materialize}"
    );
    assert!(!all
        .iter()
        .any(|s| s.starts_with("ALTER TABLE complaints ON CLUSTER ricochet MATERIALIZE")));
    let query = find(
        &all,
        "ALTER TABLE deliveries_hourly_mv ON CLUSTER ricochet MODIFY QUERY",
    );
    assert!(query.contains("FROM deliveries_local"), "{query}");
    find(
        &all,
        "DROP TABLE IF EXISTS scoring_group_scope ON CLUSTER ricochet SYNC",
    );
    let scope = find(
        &all,
        "CREATE TABLE IF NOT EXISTS scoring_scope ON CLUSTER ricochet",
    );
    assert!(
        scope.contains("ENGINE = MergeTree"),
        "a work list is kept whole on each node: {scope}"
    );
    assert!(
        !all.iter().any(|s| s.contains("scoring_scope_local")),
        "work lists are not sharded"
    );
}

#[test]
fn without_coordination_engines_stay_plain_and_no_statement_is_on_cluster() {
    let all = statements(false);
    assert!(
        all.iter()
            .all(|s| !s.contains("ON CLUSTER") && !s.contains("Replicated")),
        "{all:#?}"
    );
    let front = find(
        &all,
        "CREATE TABLE IF NOT EXISTS complaints AS complaints_local",
    );
    assert!(
        front.contains("Distributed(ricochet, currentDatabase(), complaints_local"),
        "{front}"
    );
    assert!(find(&all, "CREATE TABLE IF NOT EXISTS complaints_local")
        .contains("ENGINE = ReplacingMergeTree"));
}
