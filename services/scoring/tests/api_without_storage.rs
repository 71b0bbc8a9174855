//! The ESP and provider APIs over real HTTP with no ClickHouse behind them
//! (the client points at a closed loopback port): everything decided before
//! storage is read — who is calling, which audience, whose key, the
//! provider list served from memory — runs in `cargo test` without the
//! stack, and storage that cannot be reached is a documented 503, not a
//! panic.

mod common;

use std::collections::BTreeMap;
use std::sync::Arc;

use common::EspApi;
use reqwest::StatusCode;
use ricochet_kafka::{Level, Tier};
use ricochet_scoring::listed::{Board, ListedKey};
use ricochet_storage::ClickHouseConfig;
use serde_json::Value;
use tokio::sync::watch;

const ESP_A: &str = "esp-a";
const ESP_B: &str = "esp-b";
const MX1: &str = "mx-one";
const MX2: &str = "mx-two";

/// ClickHouse settings whose URL nothing listens on.
async fn unreachable_storage() -> ClickHouseConfig {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    drop(listener);
    ClickHouseConfig {
        url: format!("http://127.0.0.1:{port}"),
        ..ClickHouseConfig::from_env().unwrap()
    }
}

/// The API with two ESPs and two providers, and the board sender.
async fn start() -> (EspApi, watch::Sender<Arc<Board>>) {
    let (tx, rx) = watch::channel(Arc::new(Board::default()));
    let api = EspApi::start_with(
        &unreachable_storage().await,
        &[ESP_A, ESP_B],
        &[MX1, MX2],
        Some(rx),
    )
    .await;
    (api, tx)
}

/// Every ESP route with its path parameters filled in.
fn esp_routes() -> Vec<String> {
    (ricochet_scoring::api::ROUTES.iter())
        .map(|(_, r)| *r)
        .filter(|r| r.starts_with("/v1/"))
        .map(|r| r.replace("{sender}", "s1").replace("{campaign}", "c1"))
        .collect()
}

/// Every provider route with its path parameters filled in.
fn provider_routes() -> Vec<String> {
    (ricochet_scoring::provider_api::ROUTES.iter())
        .map(|(_, r)| {
            r.replace("{esp}", ESP_A)
                .replace("{sender}", "s1")
                .replace("{campaign}", "c1")
                .replace("{domain}", "example.com")
        })
        .collect()
}

async fn reason(resp: reqwest::Response) -> String {
    let body: Value = resp.json().await.unwrap();
    body["reason"].as_str().unwrap_or_default().to_string()
}

#[tokio::test]
async fn callers_without_the_right_credentials_are_refused_on_every_route() {
    let (api, _board) = start().await;
    for route in esp_routes().into_iter().chain(provider_routes()) {
        let url = format!("{}{route}", api.url);
        let resp = api.http.get(&url).send().await.unwrap();
        assert_eq!(resp.status(), StatusCode::UNAUTHORIZED, "{route}");
        assert_eq!(reason(resp).await, "missing-credentials", "{route}");
        let resp = api
            .http
            .get(&url)
            .bearer_auth("a.b.c")
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), StatusCode::UNAUTHORIZED, "{route}");
    }
    // A provider's token is for another audience and another key list.
    for route in esp_routes() {
        let resp = api.get_provider(&route, MX1, &[]).await;
        assert_eq!(resp.status(), StatusCode::UNAUTHORIZED, "{route}");
    }
    for route in provider_routes() {
        let resp = api.get(&route, ESP_A).await;
        assert_eq!(resp.status(), StatusCode::UNAUTHORIZED, "{route}");
    }
}

#[tokio::test]
async fn one_participant_cannot_pass_for_another() {
    let (api, _board) = start().await;
    for route in esp_routes() {
        let resp = api.get_as(&route, ESP_A, ESP_B).await;
        assert_eq!(resp.status(), StatusCode::FORBIDDEN, "{route}");
        assert_eq!(reason(resp).await, "key-of-another-participant");
    }
    for route in provider_routes() {
        let resp = api.get_provider_as(&route, MX2, MX1).await;
        assert_eq!(resp.status(), StatusCode::FORBIDDEN, "{route}");
    }
}

#[tokio::test]
async fn storage_out_of_reach_is_a_503_with_retry_after() {
    let (api, _board) = start().await;
    let storage_routes = esp_routes()
        .into_iter()
        .chain(provider_routes())
        .filter(|r| r != "/v1/reputation/listed");
    for route in storage_routes {
        let resp = if route.starts_with("/v1/reputation/") {
            api.get_provider(&route, MX1, &[]).await
        } else {
            api.get(&route, ESP_A).await
        };
        assert_eq!(resp.status(), StatusCode::SERVICE_UNAVAILABLE, "{route}");
        assert!(resp.headers().contains_key("retry-after"), "{route}");
        assert_eq!(reason(resp).await, "storage-unavailable", "{route}");
    }
}

fn throttled(esp: &str, sender: &str) -> (ListedKey, Tier) {
    ((Level::Sender, esp.into(), sender.into()), Tier::Throttle)
}

#[tokio::test]
async fn the_provider_list_is_served_from_memory_with_etags_and_changes() {
    let (api, board) = start().await;
    let path = "/v1/reputation/listed";
    let resp = api.get_provider(path, MX1, &[]).await;
    assert_eq!(resp.status(), StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(reason(resp).await, "not-ready");

    let none = BTreeMap::new();
    let first = Board::default()
        .next(
            [throttled(ESP_A, "s1"), throttled(ESP_B, "s2")],
            1_000,
            &none,
        )
        .unwrap();
    board.send_replace(Arc::new(first.clone()));
    let resp = api.get_provider(path, MX1, &[]).await;
    assert_eq!(resp.status(), StatusCode::OK);
    let etag = resp.headers()["etag"].to_str().unwrap().to_string();
    assert_eq!(etag, "\"1000\"");
    let full = api.verified_json(resp).await;
    assert_eq!(
        (
            full["full"].clone(),
            full["listed"].as_array().unwrap().len()
        ),
        (true.into(), 2)
    );

    let resp = api
        .get_provider(path, MX2, &[("if-none-match", &etag)])
        .await;
    assert_eq!(resp.status(), StatusCode::NOT_MODIFIED);

    let ok = ((Level::Sender, ESP_B.into(), "s2".into()), Tier::Ok);
    let second = first
        .next([throttled(ESP_A, "s1"), ok], 2_000, &none)
        .unwrap();
    board.send_replace(Arc::new(second));
    let resp = api
        .get_provider(
            &format!("{path}?since=1000"),
            MX1,
            &[("if-none-match", &etag)],
        )
        .await;
    assert_eq!(resp.status(), StatusCode::OK, "a new version answers again");
    let changes = api.verified_json(resp).await;
    assert_eq!(changes["full"], false, "{changes}");
    assert_eq!(changes["listed"].as_array().unwrap().len(), 0, "{changes}");
    assert_eq!(changes["removed"].as_array().unwrap().len(), 1, "{changes}");

    let resp = api
        .get_provider(&format!("{path}?since=-1"), MX1, &[])
        .await;
    assert_eq!(resp.status(), StatusCode::BAD_REQUEST);
    assert_eq!(reason(resp).await, "bad-query");
}

#[test]
fn the_esp_api_spec_matches_its_routes() {
    common::assert_spec_matches("esp-api.json", &ricochet_scoring::api::ROUTES);
}

#[test]
fn the_provider_api_spec_matches_its_routes() {
    common::assert_spec_matches("provider-api.json", &ricochet_scoring::provider_api::ROUTES);
}
