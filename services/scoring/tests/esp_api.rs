//! The ESP API over real HTTP, on penalties a real scoring run wrote to the real ClickHouse.

use std::collections::BTreeMap;

use reqwest::StatusCode;
use ricochet_integration_tests::{clickhouse, complaint_row, drop_database, insert_rows};
use ricochet_registry::{add_participant, NewParticipant, ParticipantKind, RegistryHandle};
use ricochet_scoring::api::{router, ApiState, AUDIENCE, SIGNATURE_HEADER};
use ricochet_scoring::engine::score_once;
use ricochet_scoring::Policy;
use ricochet_storage::{ClickHouseConfig, ComplaintRow, DeliveryRow, Migrator};
use ricochet_token::bearer::mint_bearer;
use ricochet_token::detached::verify_detached;
use ricochet_token::verify::unix_now;
use ricochet_token::{Algorithm, JwkSet, SigningKey};
use serde_json::Value;

async fn seed(ch: &ClickHouseConfig, esp: &str, sender: &str, complaints: u64, now: i64) {
    let delivery = DeliveryRow {
        esp: esp.into(),
        sender: sender.into(),
        provider: "p.example".into(),
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
    assert_eq!(run.changes.len(), 3);

    let dir = tempfile::tempdir().unwrap();
    let registry = dir.path().join("registry.toml");
    let (ka, kb) = (
        SigningKey::generate(Algorithm::EdDSA, "a-1").unwrap(),
        SigningKey::generate(Algorithm::ES256, "b-1").unwrap(),
    );
    for (id, k) in [("esp-a.example", &ka), ("esp-b.example", &kb)] {
        add_participant(
            &registry,
            &NewParticipant {
                kind: ParticipantKind::Esp,
                id: id.into(),
                name: id.into(),
                keys: vec![k.public_jwk()],
                domains: vec![],
                webhook_url: None,
            },
        )
        .unwrap();
    }
    let ricochet_key = SigningKey::generate(Algorithm::EdDSA, "ricochet-2026-11").unwrap();
    let state = ApiState::new(
        ch.client(),
        RegistryHandle::open(&registry).unwrap(),
        ricochet_key,
        ricochet_scoring::metrics::Metrics::new(),
        10,
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, router(state)).await });
    let http = reqwest::Client::new();

    // Ricochet's public keys, as an ESP would fetch and pin them.
    let jwks: JwkSet = http
        .get(format!("{url}/.well-known/jwks.json"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let ricochet_keys = jwks.verifying_keys().unwrap();
    let get = |path: String, key: &SigningKey, iss: &str| {
        let bearer = mint_bearer(key, iss, AUDIENCE, unix_now(), 60).unwrap();
        http.get(format!("{url}{path}")).bearer_auth(bearer).send()
    };
    let verified_json =
        |resp: reqwest::Response, keys: BTreeMap<String, ricochet_token::VerifyingKey>| async move {
            let sig = resp.headers()[SIGNATURE_HEADER]
                .to_str()
                .unwrap()
                .to_string();
            let body = resp.bytes().await.unwrap();
            verify_detached(&sig, &body, &keys).expect("the response signature verifies");
            let mut tampered = body.to_vec();
            tampered[5] ^= 1;
            assert!(verify_detached(&sig, &tampered, &keys).is_err());
            serde_json::from_slice::<Value>(&body).unwrap()
        };

    for bad in ["limit=0", "limit=1001", "since=-1"] {
        let resp = get(format!("/v1/offenders?{bad}"), &ka, "esp-a.example")
            .await
            .unwrap();
        assert_eq!(resp.status(), StatusCode::BAD_REQUEST, "{bad}");
        let body: Value = resp.json().await.unwrap();
        assert_eq!(body["reason"], "bad-query", "{bad}");
    }
    let resp = get("/v1/offenders?since=0&limit=1".into(), &ka, "esp-a.example")
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    let page1 = verified_json(resp, ricochet_keys.clone()).await;
    assert_eq!(page1["items"].as_array().unwrap().len(), 1);
    let next = page1["next"].as_u64().unwrap();
    let resp = get(format!("/v1/offenders?since={next}"), &ka, "esp-a.example")
        .await
        .unwrap();
    let page2 = verified_json(resp, ricochet_keys.clone()).await;
    let mut senders: Vec<&str> = page1["items"]
        .as_array()
        .unwrap()
        .iter()
        .chain(page2["items"].as_array().unwrap())
        .map(|i| i["sender"].as_str().unwrap())
        .collect();
    senders.sort();
    assert_eq!(
        senders,
        ["a-bad", "a-worse"],
        "ESP A sees exactly its own offenders"
    );
    let worse = page1["items"]
        .as_array()
        .unwrap()
        .iter()
        .chain(page2["items"].as_array().unwrap())
        .find(|i| i["sender"] == "a-worse")
        .unwrap();
    assert_eq!(worse["to_tier"], "exclude");
    assert_eq!(worse["evidence"]["windows"]["24h"]["weighted"], 200.0);

    let resp = get("/v1/offenders".into(), &kb, "esp-b.example")
        .await
        .unwrap();
    let b = verified_json(resp, ricochet_keys.clone()).await;
    let b_senders: Vec<&str> = b["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["sender"].as_str().unwrap())
        .collect();
    assert_eq!(b_senders, ["b-bad"], "ESP B never sees ESP A's senders");

    let resp = get("/v1/senders/a-bad/reputation".into(), &ka, "esp-a.example")
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    let rep = verified_json(resp, ricochet_keys.clone()).await;
    assert_eq!(
        rep["tier"], "suspend",
        "80 on 10,000: lower bound 0.64 %, past SES's 0.5 % pause line"
    );
    assert!(rep["explanation"].as_str().unwrap().contains("Wilson"));
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
    let resp = get("/v1/senders/a-bad/reputation".into(), &kb, "esp-b.example")
        .await
        .unwrap();
    assert_eq!(
        resp.status(),
        StatusCode::NOT_FOUND,
        "B asking for A's sender finds nothing of its own"
    );

    // An ESP cannot read another's offenders by claiming its id.
    let resp = get("/v1/offenders".into(), &kb, "esp-a.example")
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::FORBIDDEN);
    let resp = http
        .get(format!("{url}/v1/offenders"))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::UNAUTHORIZED);
    // Every route of the OpenAPI spec is served (never 404/405).
    for (_, path) in ricochet_scoring::api::ROUTES {
        let url = format!("{url}{}", path.replace("{sender}", "a-bad"));
        let status = http.get(url).send().await.unwrap().status();
        assert!(
            status != StatusCode::NOT_FOUND && status != StatusCode::METHOD_NOT_ALLOWED,
            "{path}: {status}"
        );
    }
    drop_database(&ch).await;
}

#[test]
fn the_openapi_spec_matches_the_routes() {
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../schemas/openapi/esp-api.json"
    );
    let spec: Value = serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
    assert_eq!(spec["openapi"], "3.1.0");
    let mut documented = std::collections::BTreeSet::new();
    for (p, ops) in spec["paths"].as_object().unwrap() {
        for m in ops.as_object().unwrap().keys() {
            documented.insert((m.clone(), p.clone()));
        }
    }
    let served: std::collections::BTreeSet<(String, String)> = ricochet_scoring::api::ROUTES
        .iter()
        .map(|(m, p)| (m.to_string(), p.to_string()))
        .collect();
    assert_eq!(
        documented, served,
        "schemas/openapi/esp-api.json and api::ROUTES differ"
    );
}
