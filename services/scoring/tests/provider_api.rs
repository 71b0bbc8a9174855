//! The provider API over real HTTP, on standings real scoring runs wrote to
//! the real ClickHouse: the list an MTA polls (versions, changes, ETag), a
//! standing with only the caller's own complaints, and every other tenant
//! refused.
#![cfg(feature = "integration")]

mod common;

use std::sync::Arc;

use common::EspApi;
use reqwest::StatusCode;
use ricochet_integration_tests::{clickhouse, complaint_row, drop_database, insert_rows};
use ricochet_scoring::engine::Scorer;
use ricochet_scoring::listed::{Board, Publisher};
use ricochet_scoring::Policy;
use ricochet_storage::{ClickHouseConfig, ComplaintRow, DeliveryRow, Migrator};
use ricochet_token::verify::unix_now;
use serde_json::{json, Value};
use tokio::sync::watch;

const BAD: &str = "esp-a.example";
const CLEAN: &str = "esp-b.example";
const MX1: &str = "mx-one.example";
const MX2: &str = "mx-two.example";
const CAMPAIGN: &str = "spring-blast";
const DOMAIN: &str = "deals.example";

/// One sender's hour of mail: `delivered` messages and complaints from
/// each provider in `complaints`.
struct Mail<'a> {
    esp: &'a str,
    sender: String,
    delivered: u64,
    complaints: &'a [(&'a str, u64)],
    campaign: &'a str,
    from_domain: &'a str,
}

async fn seed(ch: &ClickHouseConfig, mail: &[Mail<'_>], at_ms: i64) {
    let mut deliveries = vec![];
    let mut rows: Vec<ComplaintRow> = vec![];
    for m in mail {
        deliveries.push(DeliveryRow {
            esp: m.esp.into(),
            sender: m.sender.clone(),
            provider: MX1.into(),
            campaign: m.campaign.into(),
            from_domain: m.from_domain.into(),
            hour: (at_ms / 1000 / 3600 * 3600) as u32,
            delivered: m.delivered,
            received_at: at_ms,
        });
        for (provider, n) in m.complaints {
            for i in 0..*n {
                let jti = format!("{}-{}-{provider}-{i:06}", m.esp, m.sender).replace('.', "_");
                rows.push(ComplaintRow {
                    campaign: m.campaign.into(),
                    from_domain: m.from_domain.into(),
                    ..complaint_row(&jti, m.esp, &m.sender, provider, "unwanted", at_ms - 1000)
                });
            }
        }
    }
    insert_rows(ch, "deliveries", &deliveries).await;
    insert_rows(ch, "complaints", &rows).await;
}

/// A clean ESP: one sender of 5,000 messages with one complaint.
fn clean_mail() -> Vec<Mail<'static>> {
    vec![Mail {
        esp: CLEAN,
        sender: "b-good".into(),
        delivered: 5_000,
        complaints: &[(MX1, 1)],
        campaign: "",
        from_domain: "",
    }]
}

/// A dirty ESP: 40 fresh ids of 900 messages at 1 % (one campaign, one
/// From domain), and one sender with 80 complaints on 10,000 from two
/// providers.
fn dirty_mail() -> Vec<Mail<'static>> {
    let mut mail: Vec<Mail> = (0..40)
        .map(|i| Mail {
            esp: BAD,
            sender: format!("fresh-{i}"),
            delivered: 900,
            complaints: &[(MX1, 9)],
            campaign: CAMPAIGN,
            from_domain: DOMAIN,
        })
        .collect();
    mail.push(Mail {
        esp: BAD,
        sender: "a-bad".into(),
        delivered: 10_000,
        complaints: &[(MX1, 50), (MX2, 30)],
        campaign: "",
        from_domain: "",
    });
    mail
}

/// Scores at `now_ms` and publishes the board, as the service's loop does.
async fn run(scorer: &mut Scorer, board: &Publisher, now_ms: i64) {
    scorer.run(now_ms).await.unwrap();
    board.publish(scorer.standings(), now_ms).await.unwrap();
}

async fn start(ch: &ClickHouseConfig, board: watch::Receiver<Arc<Board>>) -> EspApi {
    EspApi::start_with(ch, &[BAD, CLEAN], &[MX1, MX2], Some(board)).await
}

/// The list as `provider` sees it, with its ETag.
async fn listed(api: &EspApi, provider: &str, query: &str) -> (Value, String) {
    let resp = api
        .get_provider(&format!("/v1/reputation/listed{query}"), provider, &[])
        .await;
    assert_eq!(resp.status(), StatusCode::OK);
    let etag = resp.headers()["etag"].to_str().unwrap().to_string();
    (api.verified_json(resp).await, etag)
}

fn row(level: &str, esp: &str, key: &str, tier: &str, since: i64) -> Value {
    json!([level, esp, key, tier, since])
}

#[tokio::test]
async fn a_provider_polls_the_list_of_throttled_keys_and_gets_only_the_changes() {
    let ch = clickhouse("it_provider_list");
    Migrator::new(ch.clone()).unwrap().run().await.unwrap();
    let (board, rx) = Publisher::new(ch.client());
    let api = start(&ch, rx).await;
    let resp = api.get_provider("/v1/reputation/listed", MX1, &[]).await;
    assert_eq!(resp.status(), StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(resp.json::<Value>().await.unwrap()["reason"], "not-ready");

    let t0 = unix_now() * 1000;
    seed(&ch, &clean_mail(), t0).await;
    let mut scorer = Scorer::new(ch.client(), Policy::default());
    run(&mut scorer, &board, t0).await;
    let (first, etag) = listed(&api, MX1, "").await;
    assert_eq!(
        (first["full"].clone(), first["listed"].clone()),
        (json!(true), json!([]))
    );
    assert_eq!(etag, format!("\"{}\"", first["version"]));
    let resp = api
        .get_provider("/v1/reputation/listed", MX1, &[("if-none-match", &etag)])
        .await;
    assert_eq!(resp.status(), StatusCode::NOT_MODIFIED, "nothing changed");

    // The dirty ESP's mail arrives; the next run lists it at every level.
    seed(&ch, &dirty_mail(), t0).await;
    let t1 = t0 + 1_000;
    run(&mut scorer, &board, t1).await;
    let v1 = first["version"].as_i64().unwrap();
    let resp = api
        .get_provider("/v1/reputation/listed", MX1, &[("if-none-match", &etag)])
        .await;
    assert_eq!(
        resp.status(),
        StatusCode::OK,
        "the old ETag no longer matches"
    );
    let (changes, _) = listed(&api, MX2, &format!("?since={v1}")).await;
    assert_eq!(changes["full"], json!(false));
    assert_eq!(changes["version"], json!(t1));
    let expected = [
        row("sender", BAD, "a-bad", "suspend", t1),
        row("esp", BAD, "", "suspend", t1),
        row("campaign", BAD, CAMPAIGN, "suspend", t1),
        row("domain", "", DOMAIN, "suspend", t1),
    ];
    assert_eq!(changes["listed"], json!(expected), "{changes}");
    assert_eq!(changes["removed"], json!([]));
    let (now_current, _) = listed(&api, MX1, &format!("?since={t1}")).await;
    assert_eq!(
        now_current["listed"],
        json!([]),
        "nothing after the current version"
    );

    // After a restart the board starts over: an old version gets the whole
    // list, dated from the penalty log.
    let (board, rx) = Publisher::new(ch.client());
    let restarted = start(&ch, rx).await;
    let mut scorer = Scorer::new(ch.client(), Policy::default());
    run(&mut scorer, &board, t1 + 1_000).await;
    let (full, _) = listed(&restarted, MX1, &format!("?since={v1}")).await;
    assert_eq!(full["full"], json!(true));
    let mut listed_rows = full["listed"].as_array().unwrap().clone();
    let mut expected = expected.to_vec();
    let key = |v: &Value| v.to_string();
    listed_rows.sort_by_key(key);
    expected.sort_by_key(key);
    assert_eq!(
        listed_rows, expected,
        "since when comes from the penalty log"
    );

    for bad in ["soon", "-1"] {
        let resp = api
            .get_provider(&format!("/v1/reputation/listed?since={bad}"), MX1, &[])
            .await;
        assert_eq!(resp.status(), StatusCode::BAD_REQUEST, "{bad}");
        assert_eq!(resp.json::<Value>().await.unwrap()["reason"], "bad-query");
    }
    drop_database(&ch).await;
}

#[tokio::test]
async fn a_standing_shows_only_the_callers_own_complaints_and_other_tenants_are_refused() {
    let ch = clickhouse("it_provider_standing");
    Migrator::new(ch.clone()).unwrap().run().await.unwrap();
    let (board, rx) = Publisher::new(ch.client());
    let api = start(&ch, rx).await;
    let t0 = unix_now() * 1000;
    seed(&ch, &clean_mail(), t0).await;
    seed(&ch, &dirty_mail(), t0).await;
    let mut scorer = Scorer::new(ch.client(), Policy::default());
    run(&mut scorer, &board, t0).await;

    let path = format!("/v1/reputation/esps/{BAD}/senders/a-bad");
    for (provider, own) in [(MX1, 50), (MX2, 30)] {
        let resp = api.get_provider(&path, provider, &[]).await;
        assert_eq!(resp.status(), StatusCode::OK);
        let body = api.verified_json(resp).await;
        assert_eq!(
            (body["tier"].clone(), body["tier_since_ms"].clone()),
            (json!("suspend"), json!(t0))
        );
        assert_eq!(body["provider"], provider);
        let day = body["windows"]
            .as_array()
            .unwrap()
            .iter()
            .find(|w| w["window"] == "24h")
            .unwrap();
        assert_eq!(day["complaints"], 80, "every provider's complaints count");
        assert_eq!(
            day["your_complaints"], own,
            "{provider} sees its own share only"
        );
        assert!(day.get("complaints_by_provider").is_none(), "{day}");
    }
    for (path, tier) in [
        (format!("/v1/reputation/esps/{BAD}"), "suspend"),
        (
            format!("/v1/reputation/esps/{BAD}/campaigns/{CAMPAIGN}"),
            "suspend",
        ),
        (
            format!("/v1/reputation/domains/{}", DOMAIN.to_uppercase()),
            "suspend",
        ),
        (format!("/v1/reputation/esps/{CLEAN}"), "ok"),
    ] {
        let resp = api.get_provider(&path, MX2, &[]).await;
        assert_eq!(resp.status(), StatusCode::OK, "{path}");
        assert_eq!(api.verified_json(resp).await["tier"], tier, "{path}");
    }
    let resp = api
        .get_provider(
            &format!("/v1/reputation/esps/{CLEAN}/senders/nobody"),
            MX1,
            &[],
        )
        .await;
    assert_eq!(resp.status(), StatusCode::NOT_FOUND);
    assert_eq!(
        resp.json::<Value>().await.unwrap()["reason"],
        "unknown-sender"
    );

    // An ESP's token is refused on every provider route, a provider's on
    // the ESP API, and one provider cannot pass for another.
    for (_, route) in ricochet_scoring::provider_api::ROUTES {
        let route = route
            .replace("{esp}", BAD)
            .replace("{sender}", "a-bad")
            .replace("{campaign}", CAMPAIGN)
            .replace("{domain}", DOMAIN);
        let resp = api.get(&route, BAD).await;
        assert_eq!(resp.status(), StatusCode::UNAUTHORIZED, "{route}");
        let resp = api.get_provider(&route, MX1, &[]).await;
        assert_eq!(resp.status(), StatusCode::OK, "{route}");
    }
    let resp = api.get_provider("/v1/offenders", MX1, &[]).await;
    assert_eq!(resp.status(), StatusCode::UNAUTHORIZED);
    let resp = api.get_provider("/v1/esp/reputation", MX1, &[]).await;
    assert_eq!(resp.status(), StatusCode::UNAUTHORIZED);
    let forged = api.get_provider_as("/v1/reputation/listed", MX2, MX1).await;
    assert_eq!(forged.status(), StatusCode::FORBIDDEN);
    drop_database(&ch).await;
}
