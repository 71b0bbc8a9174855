//! The ESP API over real HTTP, on penalties a real scoring run wrote to the real ClickHouse.
#![cfg(feature = "integration")]

mod common;

use common::{sender_offenders, EspApi};
use reqwest::StatusCode;
use ricochet_integration_tests::{clickhouse, complaint_row, drop_database, insert_rows};
use ricochet_scoring::engine::score_once;
use ricochet_scoring::Policy;
use ricochet_storage::{ClickHouseConfig, ComplaintRow, DeliveryRow, Migrator};
use ricochet_token::verify::unix_now;
use serde_json::Value;

async fn seed(ch: &ClickHouseConfig, esp: &str, sender: &str, complaints: u64, now: i64) {
    let delivery = DeliveryRow {
        esp: esp.into(),
        sender: sender.into(),
        provider: "p.example".into(),
        campaign: String::new(),
        from_domain: String::new(),
        hour: (now / 1000 / 3600 * 3600) as u32,
        delivered: 10_000,
        received_at: now,
    };
    insert_rows(ch, "deliveries", &[delivery]).await;
    let rows: Vec<ComplaintRow> = (0..complaints)
        .map(|i| {
            complaint_row(
                &format!("{esp}-{sender}-{i:012}").replace('.', "_"),
                esp,
                sender,
                "p.example",
                "unwanted",
                now - 1000,
            )
        })
        .collect();
    insert_rows(ch, "complaints", &rows).await;
}

#[tokio::test]
async fn each_esp_pulls_only_its_own_offenders_with_a_signature_that_verifies() {
    let ch = clickhouse("it_esp_api");
    Migrator::new(ch.clone()).unwrap().run().await.unwrap();
    let now = unix_now() * 1000;
    seed(&ch, "esp-a.example", "a-bad", 80, now).await;
    seed(&ch, "esp-a.example", "a-worse", 200, now).await;
    seed(&ch, "esp-a.example", "a-good", 0, now).await;
    seed(&ch, "esp-b.example", "b-bad", 80, now).await;
    let run = score_once(&ch.client(), &Policy::default(), now)
        .await
        .unwrap();
    let sender_changes = run.changes.iter().filter(|c| c.level == "sender").count();
    assert_eq!(sender_changes, 3);
    let api = EspApi::start(&ch, &["esp-a.example", "esp-b.example"]).await;

    for bad in ["limit=0", "limit=1001", "since=-1"] {
        let resp = api
            .get(&format!("/v1/offenders?{bad}"), "esp-a.example")
            .await;
        assert_eq!(resp.status(), StatusCode::BAD_REQUEST, "{bad}");
        let body: Value = resp.json().await.unwrap();
        assert_eq!(body["reason"], "bad-query", "{bad}");
    }
    let resp = api
        .get("/v1/offenders?since=0&limit=1", "esp-a.example")
        .await;
    assert_eq!(resp.status(), StatusCode::OK);
    let page1 = api.verified_json(resp).await;
    assert_eq!(page1["items"].as_array().unwrap().len(), 1);
    let items = api.offenders("esp-a.example").await;
    assert_eq!(items[0], page1["items"][0], "pages follow the cursor");
    assert_eq!(
        sender_offenders(&items),
        ["a-bad", "a-worse"],
        "ESP A sees exactly its own offenders"
    );
    let worse = items.iter().find(|i| i["sender"] == "a-worse").unwrap();
    assert_eq!(worse["to_tier"], "exclude");
    assert_eq!(worse["level"], "sender");
    assert_eq!(worse["key"], "a-worse");
    assert_eq!(worse["evidence"]["windows"]["24h"]["weighted"], 200.0);

    let b = api.offenders("esp-b.example").await;
    assert_eq!(
        sender_offenders(&b),
        ["b-bad"],
        "ESP B never sees ESP A's senders"
    );
    assert!(b.iter().all(|i| i["esp"] == "esp-b.example"));

    let resp = api
        .get("/v1/senders/a-bad/reputation", "esp-a.example")
        .await;
    assert_eq!(resp.status(), StatusCode::OK);
    let rep = api.verified_json(resp).await;
    assert_eq!(
        rep["tier"], "suspend",
        "80 on 10,000: lower bound 0.64 %, past SES's 0.5 % pause line"
    );
    assert!(rep["explanation"].as_str().unwrap().contains("Wilson"));
    assert!(
        rep.get("judged_by").is_none(),
        "it has a verdict of its own"
    );
    let day = rep["windows"]
        .as_array()
        .unwrap()
        .iter()
        .find(|w| w["window"] == "24h")
        .expect("a 24h window");
    assert_eq!(day["complaints"], 80);
    assert_eq!(
        day["complaints_by_code"],
        serde_json::json!({"unwanted": 80})
    );
    assert_eq!(
        day["complaints_by_provider"],
        serde_json::json!({"p.example": 80})
    );
    let resp = api
        .get("/v1/senders/a-bad/reputation", "esp-b.example")
        .await;
    assert_eq!(
        resp.status(),
        StatusCode::NOT_FOUND,
        "B asking for A's sender finds nothing of its own"
    );

    // An ESP cannot read another's offenders by claiming its id.
    let resp = api
        .get_as("/v1/offenders", "esp-b.example", "esp-a.example")
        .await;
    assert_eq!(resp.status(), StatusCode::FORBIDDEN);
    let url = &api.url;
    let resp = api
        .http
        .get(format!("{url}/v1/offenders"))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::UNAUTHORIZED);
    // Every route of the OpenAPI spec is served (never 404/405).
    for (_, path) in ricochet_scoring::api::ROUTES {
        let url = format!("{url}{}", path.replace("{sender}", "a-bad"));
        let status = api.http.get(url).send().await.unwrap().status();
        assert!(
            status != StatusCode::NOT_FOUND && status != StatusCode::METHOD_NOT_ALLOWED,
            "{path}: {status}"
        );
    }
    drop_database(&ch).await;
}
