//! Scoring partitioned by ESP against the real ClickHouse: two instances
//! over one database reach the tiers one instance reaches over the same
//! rows, at every level (a From domain carried by ESPs of both instances
//! included), each ESP's chain is written by its own instance only, and
//! each carrier of a penalized domain is told in its own chain.
#![cfg(feature = "integration")]

mod common;

use std::collections::BTreeMap;

use common::seed::seed;
use ricochet_integration_tests::{clickhouse, drop_database};
use ricochet_scoring::chain::verify_chain;
use ricochet_scoring::engine::{score_once, Scorer};
use ricochet_scoring::partition::Partition;
use ricochet_scoring::store::penalties::penalty_chain;
use ricochet_scoring::Policy;
use ricochet_storage::{ClickHouseConfig, Migrator};
use ricochet_token::verify::unix_now;

const DOMAIN: &str = "spread.example";

/// Two ESP ids owned by each of two instances (by ClickHouse's own hash).
async fn esps_by_instance(ch: &ClickHouseConfig) -> [Vec<String>; 2] {
    let mut out: [Vec<String>; 2] = Default::default();
    for i in 0..20 {
        let esp = format!("esp-{i}.example");
        let owner: u64 = ch
            .client()
            .query("SELECT toUInt64(cityHash64(?) % 2)")
            .bind(&esp)
            .fetch_one()
            .await
            .unwrap();
        let list = &mut out[owner as usize];
        if list.len() < 2 {
            list.push(esp);
        }
    }
    assert!(out.iter().all(|l| l.len() == 2), "{out:?}");
    out
}

/// The world: every ESP has a clean book and one bad sender; the domain
/// is sent From by one sender at an ESP of each instance, and only their
/// sum reaches a tier.
async fn seed_world(ch: &ClickHouseConfig, esps: &[Vec<String>; 2], at_ms: i64) {
    for esp in esps.iter().flatten() {
        seed(ch, esp, "good", 20, (5_000, 1), ("", ""), at_ms).await;
        seed(ch, esp, "bad", 1, (5_000, 60), ("", ""), at_ms).await;
    }
    seed(
        ch,
        &esps[0][0],
        "spread",
        1,
        (3_000, 12),
        ("", DOMAIN),
        at_ms,
    )
    .await;
    seed(
        ch,
        &esps[1][0],
        "spread",
        1,
        (3_000, 12),
        ("", DOMAIN),
        at_ms,
    )
    .await;
}

/// Every tier in force other than `ok`, at every level.
async fn tiers(ch: &ClickHouseConfig) -> BTreeMap<(String, String, String), String> {
    let senders: Vec<(String, String, String)> = ch
        .client()
        .query("SELECT toString(esp), sender, toString(tier) FROM sender_standing FINAL WHERE tier != 'ok'")
        .fetch_all()
        .await
        .unwrap();
    let groups: Vec<(String, String, String, String)> = ch
        .client()
        .query("SELECT toString(level), toString(esp), key, toString(tier) FROM group_standing FINAL WHERE tier != 'ok'")
        .fetch_all()
        .await
        .unwrap();
    let senders = (senders.into_iter()).map(|(e, s, t)| (("sender".into(), e, s), t));
    let groups = groups.into_iter().map(|(l, e, k, t)| ((l, e, k), t));
    senders.chain(groups).collect()
}

/// Instance 1, then the owner of the domain level, then instance 1 again
/// (which tells its ESPs what the owner decided), at `now_ms`.
async fn run_round(scorers: &mut [Scorer; 2], now_ms: i64) {
    scorers[1].run(now_ms).await.unwrap();
    scorers[0].run(now_ms).await.unwrap();
    scorers[1].run(now_ms).await.unwrap();
}

/// The domain rows of `esp`'s chain, as (to tier, rule).
async fn domain_rows(ch: &ClickHouseConfig, esp: &str) -> Vec<(String, String)> {
    let chain = penalty_chain(&ch.client(), esp).await.unwrap();
    verify_chain(&chain).unwrap_or_else(|e| panic!("{esp}'s chain: {e}"));
    (chain.into_iter())
        .filter(|e| e.level == "domain")
        .map(|e| (e.to_tier, e.rule))
        .collect()
}

#[tokio::test]
async fn two_instances_reach_the_tiers_of_one_and_each_writes_only_its_esps() {
    let (split, whole) = (
        clickhouse("it_partitioned"),
        clickhouse("it_partition_whole"),
    );
    for ch in [&split, &whole] {
        Migrator::new(ch.clone()).unwrap().run().await.unwrap();
    }
    let esps = esps_by_instance(&split).await;
    let now = unix_now() * 1000;
    for ch in [&split, &whole] {
        seed_world(ch, &esps, now).await;
    }
    let mut scorers = [0, 1].map(|i| {
        Scorer::new(split.client(), Policy::default()).partitioned(Partition::new(i, 2).unwrap())
    });
    run_round(&mut scorers, now).await;
    score_once(&whole.client(), &Policy::default(), now)
        .await
        .unwrap();
    let expected = tiers(&whole).await;
    assert!(
        expected.keys().any(|k| k.0 == "domain"),
        "the domain reaches a tier on one instance: {expected:?}"
    );
    assert_eq!(tiers(&split).await, expected);
    // The owner judged the domain on both instances' shares.
    let delivered: u64 = split
        .client()
        .query("SELECT delivered FROM reputation WHERE level = 'domain' AND sender = ? AND window = '24h' ORDER BY computed_at DESC LIMIT 1")
        .bind(DOMAIN)
        .fetch_one()
        .await
        .unwrap();
    assert_eq!(delivered, 6_000);

    // Each instance's ESPs, and only those, have chains written by it:
    // every chain verifies, and both carriers of the domain were told.
    let domain_tier = expected
        .iter()
        .find(|(k, _)| k.0 == "domain")
        .map(|(_, t)| t.clone())
        .unwrap();
    for esp in [&esps[0][0], &esps[1][0]] {
        let rows = domain_rows(&split, esp).await;
        assert_eq!(rows.len(), 1, "{esp}: {rows:?}");
        assert_eq!(rows[0].0, domain_tier, "{esp}");
    }
    for esp in [&esps[0][1], &esps[1][1]] {
        assert!(
            domain_rows(&split, esp).await.is_empty(),
            "{esp} carries no domain"
        );
    }
    let writers: Vec<(String, u64)> = split
        .client()
        .query("SELECT toString(esp), count() FROM penalties GROUP BY esp HAVING count() != uniqExact(seq)")
        .fetch_all()
        .await
        .unwrap();
    assert!(writers.is_empty(), "a chain with two writers: {writers:?}");

    // More of the domain's mail at instance 1's ESP, scored incrementally:
    // the owner sees the share change and the tiers still match.
    let later = now + 60_000;
    for ch in [&split, &whole] {
        seed(ch, &esps[1][1], "late", 1, (2_000, 30), ("", DOMAIN), later).await;
    }
    run_round(&mut scorers, later).await;
    score_once(&whole.client(), &Policy::default(), later)
        .await
        .unwrap();
    let expected = tiers(&whole).await;
    assert_eq!(tiers(&split).await, expected);
    // The new carrier first hears the tier in force, then any change the
    // owner decided on the new share.
    let rows = domain_rows(&split, &esps[1][1]).await;
    assert_eq!(rows[0].1, "tier-in-force", "{rows:?}");
    let key = ("domain".to_string(), String::new(), DOMAIN.to_string());
    assert_eq!(rows.last().map(|r| &r.0), expected.get(&key), "{rows:?}");
    drop_database(&split).await;
    drop_database(&whole).await;
}

#[tokio::test]
async fn a_domain_penalized_by_one_instance_is_told_by_two_after_the_switch() {
    let ch = clickhouse("it_partition_switch");
    Migrator::new(ch.clone()).unwrap().run().await.unwrap();
    let esps = esps_by_instance(&ch).await;
    let now = unix_now() * 1000;
    seed_world(&ch, &esps, now).await;
    // One instance scores everything: the domain gets its tier, and no
    // decision row (a single instance tells carriers itself).
    score_once(&ch.client(), &Policy::default(), now)
        .await
        .unwrap();
    let key = ("domain".to_string(), String::new(), DOMAIN.to_string());
    let tier = tiers(&ch)
        .await
        .get(&key)
        .cloned()
        .expect("the domain has a tier");
    // Now two instances, and instance 1's other ESP starts carrying it.
    seed(&ch, &esps[1][1], "moved", 1, (500, 0), ("", DOMAIN), now).await;
    let mut scorers = [0, 1].map(|i| {
        Scorer::new(ch.client(), Policy::default()).partitioned(Partition::new(i, 2).unwrap())
    });
    run_round(&mut scorers, now + 1_000).await;
    let rows = domain_rows(&ch, &esps[1][1]).await;
    assert_eq!(
        rows,
        [(tier.clone(), "tier-in-force".to_string())],
        "the new carrier learns the tier set before the switch"
    );
    // The carriers told before the switch are not told again.
    assert_eq!(domain_rows(&ch, &esps[0][0]).await.len(), 1);
    assert_eq!(domain_rows(&ch, &esps[1][0]).await.len(), 1);
    drop_database(&ch).await;
}
