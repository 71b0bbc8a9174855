//! Reputation levels against the real ClickHouse and the ESP API over real
//! HTTP: a spammer that spreads its mail over fresh sender ids, each under
//! the minimum volume, is caught at the ESP and campaign levels, and a clean
//! ESP with one bad sender is not penalized as a whole.
#![cfg(feature = "integration")]

mod common;

use common::seed::seed;
use common::{sender_offenders, EspApi};
use reqwest::StatusCode;
use ricochet_integration_tests::{clickhouse, complaint_row, drop_database, insert_rows};
use ricochet_scoring::chain::verify_chain;
use ricochet_scoring::engine::{score_once, Scorer};
use ricochet_scoring::store::penalties::penalty_chain;
use ricochet_scoring::{Level, Policy, Tier};
use ricochet_storage::{ClickHouseConfig, ComplaintRow, Migrator};
use ricochet_token::verify::unix_now;
use serde_json::Value;

const ESP: &str = "esp-a.example";
const CAMPAIGN: &str = "spring-blast";

/// A migrated database holding [`clean_book`] for [`ESP`], and a scorer
/// that made its first (full) run on it, with nothing to change.
async fn clean_start(name: &str) -> (ClickHouseConfig, Scorer, i64) {
    let ch = clickhouse(name);
    Migrator::new(ch.clone()).unwrap().run().await.unwrap();
    let now = unix_now() * 1000;
    clean_book(&ch, ESP, now).await;
    let mut scorer = Scorer::new(ch.client(), Policy::default());
    assert!(scorer.run(now).await.unwrap().changes.is_empty());
    (ch, scorer, now)
}

/// 50 clean senders of 5,000 messages with one complaint each (0.02 %).
async fn clean_book(ch: &ClickHouseConfig, esp: &str, at_ms: i64) {
    seed(ch, esp, "good", 50, (5_000, 1), ("", ""), at_ms).await;
}

fn changes_at(run: &ricochet_scoring::engine::RunReport, level: Level) -> Vec<(String, String)> {
    run.changes
        .iter()
        .filter(|c| c.level == level.as_str())
        .map(|c| (c.sender.clone(), c.to_tier.clone()))
        .collect()
}

#[tokio::test]
async fn ids_under_the_minimum_volume_are_caught_at_the_esp_and_campaign_levels() {
    let ch = clickhouse("it_levels");
    Migrator::new(ch.clone()).unwrap().run().await.unwrap();
    let now = unix_now() * 1000;
    clean_book(&ch, ESP, now).await;
    let mut scorer = Scorer::new(ch.client(), Policy::default());
    let first = scorer.run(now).await.unwrap();
    assert!(first.changes.is_empty(), "{:?}", first.changes);
    assert_eq!(first.groups.get(&Level::Esp), Some(&1));

    // 36,000 messages at 1 % over 40 fresh ids of 900, all one campaign.
    seed(&ch, ESP, "fresh", 40, (900, 9), (CAMPAIGN, ""), now).await;
    let run = scorer.run(now + 1_000).await.unwrap();
    assert!(!run.full, "an incremental run catches it");
    assert_eq!(
        changes_at(&run, Level::Sender),
        [],
        "no id alone has enough volume"
    );
    // ESP: 410 / 286,000 = 0.14 %, lower bound 0.13 % > 0.10 %.
    assert_eq!(
        changes_at(&run, Level::Esp),
        [(String::new(), "warning".into())]
    );
    // Campaign: 360 / 36,000 = 1 %, lower bound 0.9 % > 0.5 %.
    assert_eq!(
        changes_at(&run, Level::Campaign),
        [(CAMPAIGN.into(), "suspend".into())]
    );
    assert_eq!(
        run.group_tiers.get(&(Level::Campaign, Tier::Suspend)),
        Some(&1)
    );
    verify_chain(&penalty_chain(&ch.client(), ESP).await.unwrap()).unwrap();

    // A new scorer's full run finds the same standings and changes nothing.
    let again = score_once(&ch.client(), &Policy::default(), now + 2_000)
        .await
        .unwrap();
    assert!(again.changes.is_empty(), "{:?}", again.changes);

    let api = EspApi::start(&ch, &[ESP, "esp-b.example"]).await;
    let items = api.offenders(ESP).await;
    assert_eq!(sender_offenders(&items), Vec::<String>::new());
    let levels: Vec<(&str, &str, &str)> = items
        .iter()
        .map(|i| {
            let s = |k: &str| i[k].as_str().unwrap();
            (s("level"), s("key"), s("to_tier"))
        })
        .collect();
    assert_eq!(
        levels,
        [("esp", "", "warning"), ("campaign", CAMPAIGN, "suspend")]
    );
    assert_eq!(items[1]["sender"], Value::Null);
    assert_eq!(items[1]["evidence"]["level"], "campaign");
    assert_eq!(items[1]["evidence"]["windows"]["24h"]["delivered"], 36_000);

    let esp = api
        .verified_json(api.get("/v1/esp/reputation", ESP).await)
        .await;
    assert_eq!(
        (&esp["level"], &esp["tier"]),
        (&"esp".into(), &"warning".into())
    );
    let path = format!("/v1/campaigns/{CAMPAIGN}/reputation");
    let campaign = api.verified_json(api.get(&path, ESP).await).await;
    assert_eq!(campaign["tier"], "suspend");
    let day = &campaign["windows"].as_array().unwrap()[1];
    assert_eq!(
        (&day["window"], &day["complaints"]),
        (&"24h".into(), &360.into())
    );

    // An id with too little data of its own is judged by its ESP and campaign.
    let fresh = api
        .verified_json(api.get("/v1/senders/fresh-7/reputation", ESP).await)
        .await;
    assert_eq!(fresh["tier"], "ok");
    assert_eq!(
        fresh["judged_by"],
        serde_json::json!([
            {"level": "esp", "key": "", "tier": "warning"},
            {"level": "campaign", "key": CAMPAIGN, "tier": "suspend"},
        ])
    );

    // Another ESP reads none of it.
    let resp = api.get(&path, "esp-b.example").await;
    assert_eq!(resp.status(), StatusCode::NOT_FOUND);
    let resp = api.get("/v1/esp/reputation", "esp-b.example").await;
    assert_eq!(resp.status(), StatusCode::NOT_FOUND);
    assert!(api.offenders("esp-b.example").await.is_empty());
    let resp = api.get_as(&path, "esp-b.example", ESP).await;
    assert_eq!(resp.status(), StatusCode::FORBIDDEN);
    drop_database(&ch).await;
}

#[tokio::test]
async fn a_clean_esp_with_one_bad_sender_gets_no_esp_level_penalty() {
    let ch = clickhouse("it_levels_clean");
    Migrator::new(ch.clone()).unwrap().run().await.unwrap();
    let now = unix_now() * 1000;
    clean_book(&ch, ESP, now).await;
    // 100 complaints on 5,000: 2 %, far past every line for this sender.
    seed(&ch, ESP, "bad", 1, (5_000, 100), ("", ""), now).await;
    let run = score_once(&ch.client(), &Policy::default(), now)
        .await
        .unwrap();
    assert_eq!(
        changes_at(&run, Level::Sender),
        [("bad-0".to_string(), "exclude".to_string())]
    );
    // The book: 150 / 255,000 = 0.06 %, below the warning line.
    assert_eq!(changes_at(&run, Level::Esp), []);
    assert_eq!(run.group_tiers.get(&(Level::Esp, Tier::Ok)), Some(&1));
    drop_database(&ch).await;
}

#[tokio::test]
async fn a_from_domain_keeps_its_history_when_it_moves_to_another_esp() {
    let ch = clickhouse("it_levels_domain");
    Migrator::new(ch.clone()).unwrap().run().await.unwrap();
    let now = unix_now() * 1000;
    const B: &str = "esp-b.example";
    const DOM: &str = "spam.example";
    // At ESP A, one sender's mail From spam.example draws 2 %.
    clean_book(&ch, ESP, now).await;
    seed(&ch, ESP, "promo", 1, (5_000, 100), ("", DOM), now).await;
    let mut scorer = Scorer::new(ch.client(), Policy::default());
    let first = scorer.run(now).await.unwrap();
    assert_eq!(
        changes_at(&first, Level::Domain),
        [(DOM.to_string(), "exclude".to_string())]
    );
    let domain_rows =
        |run: &ricochet_scoring::engine::RunReport| -> Vec<(String, String, String, String)> {
            run.changes
                .iter()
                .filter(|c| c.level == "domain")
                .map(|c| {
                    (
                        c.esp.clone(),
                        c.from_tier.clone(),
                        c.to_tier.clone(),
                        c.rule.clone(),
                    )
                })
                .collect()
        };
    assert_eq!(domain_rows(&first)[0].0, ESP);

    // It moves to ESP B under a fresh id below the minimum volume.
    seed(&ch, B, "fresh", 1, (900, 2), ("", DOM), now).await;
    let moved = scorer.run(now + 1_000).await.unwrap();
    assert_eq!(
        changes_at(&moved, Level::Sender),
        [],
        "the id alone says nothing"
    );
    assert_eq!(
        domain_rows(&moved),
        [(
            B.into(),
            "ok".into(),
            "exclude".into(),
            "tier-in-force".into()
        )],
        "B learns the domain's tier in force; A is not told twice"
    );
    let api = EspApi::start(&ch, &[ESP, B]).await;
    let b = api.offenders(B).await;
    let row = b
        .iter()
        .find(|i| i["level"] == "domain")
        .expect("a domain row for B");
    assert_eq!(
        (&row["key"], &row["to_tier"]),
        (&DOM.into(), &"exclude".into())
    );
    // The evidence is the domain's across both ESPs: 5,900 delivered.
    assert_eq!(row["evidence"]["windows"]["24h"]["delivered"], 5_900);
    // The fresh id is judged by its ESP and by the domain it sends From.
    let fresh = api
        .verified_json(api.get("/v1/senders/fresh-0/reputation", B).await)
        .await;
    assert_eq!(
        fresh["judged_by"],
        serde_json::json!([
            {"level": "esp", "key": "", "tier": "ok"},
            {"level": "domain", "key": DOM, "tier": "exclude"},
        ])
    );
    verify_chain(&penalty_chain(&ch.client(), B).await.unwrap()).unwrap();

    // A new scorer rebuilds what each ESP was told: nothing new to write.
    let again = score_once(&ch.client(), &Policy::default(), now + 2_000)
        .await
        .unwrap();
    assert_eq!(domain_rows(&again), []);
    drop_database(&ch).await;
}

#[tokio::test]
async fn an_incremental_run_scores_every_level_from_the_books() {
    let (ch, mut scorer, now) = clean_start("it_levels_incremental").await;
    // Rows for the launderer arrive after the full run: only the next,
    // incremental run can see them, through its senders' slices.
    seed(
        &ch,
        ESP,
        "fresh",
        40,
        (900, 9),
        (CAMPAIGN, "spam.example"),
        now,
    )
    .await;
    let second = scorer.run(now + 1_000).await.unwrap();
    assert!(!second.full);
    assert_eq!(changes_at(&second, Level::Esp).len(), 1);
    assert_eq!(
        changes_at(&second, Level::Campaign),
        [(CAMPAIGN.to_string(), "suspend".to_string())]
    );
    assert_eq!(
        changes_at(&second, Level::Domain),
        [("spam.example".to_string(), "suspend".to_string())]
    );
    // A new scorer reads everything again and finds the same standings:
    // the books of the incremental run were exact.
    let full = score_once(&ch.client(), &Policy::default(), now + 2_000)
        .await
        .unwrap();
    assert!(full.full);
    assert_eq!(full.changes.len(), 0, "{:?}", full.changes);
    drop_database(&ch).await;
}

#[tokio::test]
async fn one_account_reporting_across_sender_ids_is_capped_at_the_campaign_level() {
    let (ch, mut scorer, now) = clean_start("it_levels_group_cap").await;
    // 40 ids of 900 messages, each reported three times (the cap) as
    // phishing, all by one account: 120 complaints in 36,000 messages would
    // put the campaign over a tier, but one account adds at most the cap at
    // any level.
    seed(&ch, ESP, "fresh", 40, (900, 0), (CAMPAIGN, ""), now).await;
    let rows: Vec<ComplaintRow> = (0..120)
        .map(|i| {
            let (jti, sender) = (format!("bomb-{i:04}"), format!("fresh-{}", i % 40));
            let row = complaint_row(&jti, ESP, &sender, "p1.example", "phishing", now - 1000);
            ComplaintRow {
                campaign: CAMPAIGN.into(),
                reporter: "bomber".into(),
                ..row
            }
        })
        .collect();
    insert_rows(&ch, "complaints", &rows).await;
    let second = scorer.run(now + 1_000).await.unwrap();
    assert!(!second.full);
    assert_eq!(
        changes_at(&second, Level::Campaign),
        [],
        "capped in an incremental run"
    );
    // Without the cap the same rows do put the campaign over a tier.
    let uncapped = Policy {
        max_per_reporter: 1_000,
        ..Policy::default()
    };
    let full = score_once(&ch.client(), &uncapped, now + 2_000)
        .await
        .unwrap();
    assert_eq!(
        changes_at(&full, Level::Campaign).len(),
        1,
        "{:?}",
        full.changes
    );
    drop_database(&ch).await;
}
