//! Ingest's HTTP behaviour over real sockets, with a real registry file and
//! accepted items published to memory: authentication, limits, verdicts,
//! rate and admission limits, the ARF route, metrics and readiness. Needs no
//! broker (what reaches Kafka is tested in `kafka.rs`).

mod arf_corpus;
mod common;

use std::collections::BTreeSet;
use std::time::Duration;

use common::{complaint, vectors, World, AUD, NOW};
use reqwest::StatusCode;
use ricochet_integration_tests::wait_for;
use ricochet_token::bearer::mint_bearer;
use ricochet_token::{mint, Algorithm, Jwk, Nature, SigningKey, TokenRequest};
use serde_json::{json, Value};

#[tokio::test]
async fn every_token_vector_gets_its_verdict() {
    // Batch verification (the default), with the smallest batches, off the
    // pool, and one signature at a time: the same verdicts each way.
    for args in [
        &[][..],
        &["--verify-batch=2"],
        &["--verify-mode=blocking"],
        &["--signature-check=single"],
    ] {
        vectors_get_their_verdicts(args).await;
    }
}

async fn vectors_get_their_verdicts(args: &[&str]) {
    let w = World::in_memory(args).await;
    let v = vectors();
    let valid = v["valid"].as_array().unwrap();
    let invalid = v["invalid"].as_array().unwrap();
    let items: Vec<Value> = valid
        .iter()
        .chain(invalid)
        .map(|t| complaint(t["token"].as_str().unwrap(), "unwanted"))
        .collect();
    let (status, body) = w
        .post("/v1/complaints", &json!({ "complaints": items }))
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let results = body["results"].as_array().unwrap();
    for (i, t) in valid.iter().enumerate() {
        assert_eq!(
            results[i]["verdict"], "accepted",
            "{args:?}: valid vector {}: {}",
            t["name"], results[i]
        );
    }
    for (i, t) in invalid.iter().enumerate() {
        let r = &results[valid.len() + i];
        assert_eq!(
            r["verdict"], "rejected",
            "{args:?}: invalid vector {}",
            t["name"]
        );
        assert_eq!(
            r["reason"], t["error"],
            "{args:?}: invalid vector {}: {}",
            t["name"], r["detail"]
        );
    }
    assert_eq!(w.published(&w.complaints_topic).len(), valid.len());
}

#[tokio::test]
async fn each_authentication_failure_has_its_status_and_reason() {
    use base64::Engine;
    let w = World::in_memory(&[]).await;
    let b64 = |b: &[u8]| base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(b);
    let unsigned = |header: Value, claims: Value, sig: &[u8]| {
        format!(
            "Bearer {}.{}.{}",
            b64(header.to_string().as_bytes()),
            b64(claims.to_string().as_bytes()),
            b64(sig)
        )
    };
    let claims =
        json!({"iss": "mail.example", "aud": AUD, "iat": NOW, "exp": NOW + 60, "jti": "abc"});
    let hs256 = {
        let h = json!({"alg": "HS256", "typ": "JWT", "kid": "mail-1"});
        let input = format!(
            "{}.{}",
            b64(h.to_string().as_bytes()),
            b64(claims.to_string().as_bytes())
        );
        let secret = serde_json::to_vec(&w.provider_key.public_jwk()).unwrap();
        let key = ring::hmac::Key::new(ring::hmac::HMAC_SHA256, &secret);
        format!(
            "Bearer {input}.{}",
            b64(ring::hmac::sign(&key, input.as_bytes()).as_ref())
        )
    };
    let foreign = SigningKey::from_jwk(&Jwk {
        kid: "live-esp-1".into(),
        ..w.esp_key.private_jwk()
    })
    .unwrap();
    let unknown = SigningKey::generate(Algorithm::ES256, "mail-2").unwrap();
    let cases: Vec<(&str, Option<String>, u16, &str)> = vec![
        ("no header", None, 401, "missing-credentials"),
        (
            "basic scheme",
            Some("Basic bWFpbDpwYXNz".into()),
            401,
            "malformed-credentials",
        ),
        ("garbage", Some("Bearer not-a-jwt".into()), 401, "malformed"),
        (
            "expired",
            Some(format!(
                "Bearer {}",
                mint_bearer(&w.provider_key, "mail.example", AUD, NOW - 1000, 300).unwrap()
            )),
            401,
            "expired",
        ),
        (
            "wrong audience",
            Some(format!(
                "Bearer {}",
                mint_bearer(&w.provider_key, "mail.example", "ricochet-esp-api", NOW, 60).unwrap()
            )),
            401,
            "wrong-audience",
        ),
        (
            "exp too far",
            Some(format!(
                "Bearer {}",
                mint_bearer(&w.provider_key, "mail.example", AUD, NOW, 3600).unwrap()
            )),
            401,
            "exp-too-far",
        ),
        (
            "alg none",
            Some(unsigned(
                json!({"alg": "none", "kid": "mail-1"}),
                claims.clone(),
                b"",
            )),
            401,
            "alg-not-allowed",
        ),
        (
            "hs256 keyed with the public key",
            Some(hs256),
            401,
            "alg-not-allowed",
        ),
        (
            "unknown kid",
            Some(format!(
                "Bearer {}",
                mint_bearer(&unknown, "mail.example", AUD, NOW, 60).unwrap()
            )),
            401,
            "unknown-kid",
        ),
        (
            "an ESP's key claiming to be the provider",
            Some(format!(
                "Bearer {}",
                mint_bearer(&foreign, "mail.example", AUD, NOW, 60).unwrap()
            )),
            403,
            "key-of-another-participant",
        ),
        (
            "an ESP calling the provider API",
            Some(format!(
                "Bearer {}",
                mint_bearer(&w.esp_key, "esp-live.example", AUD, NOW, 60).unwrap()
            )),
            401,
            "unknown-issuer",
        ),
        (
            "a complaint token as bearer",
            Some(format!("Bearer {}", w.token("s", "mail.example"))),
            401,
            "wrong-type",
        ),
    ];
    let body = serde_json::to_vec(
        &json!({"complaints": [complaint(&w.token("s", "mail.example"), "unwanted")]}),
    )
    .unwrap();
    for (what, auth, status, reason) in cases {
        let (s, headers, problem) = w
            .post_raw("/v1/complaints", auth.as_deref(), body.clone())
            .await;
        assert_eq!(s.as_u16(), status, "{what}: {problem}");
        assert_eq!(problem["reason"], reason, "{what}: {problem}");
        assert_eq!(
            headers["content-type"], "application/problem+json",
            "{what}"
        );
    }
    assert!(
        w.published(&w.complaints_topic).is_empty(),
        "nothing unauthenticated is published"
    );
}

#[tokio::test]
async fn size_and_syntax_errors_fail_the_whole_request() {
    let w = World::in_memory(&[]).await;
    let auth = w.bearer();
    let big = vec![b' '; 1024 * 1024 + 1];
    let (s, _, p) = w.post_raw("/v1/complaints", Some(&auth), big).await;
    assert_eq!(
        (s.as_u16(), p["reason"].as_str()),
        (413, Some("body-too-large"))
    );
    let many: Vec<Value> = (0..1001)
        .map(|_| json!({"token": "x", "code": "unwanted", "reported_at": "2026-09-21T14:13:00Z"}))
        .collect();
    let (s, p) = w
        .post("/v1/complaints", &json!({ "complaints": many }))
        .await;
    assert_eq!(
        (s.as_u16(), p["reason"].as_str()),
        (413, Some("too-many-items"))
    );
    let (s, _, p) = w
        .post_raw(
            "/v1/complaints",
            Some(&auth),
            b"{\"complaints\": [\n  {\"token\": \"a\",}\n]}".to_vec(),
        )
        .await;
    assert_eq!(
        (s.as_u16(), p["reason"].as_str()),
        (400, Some("malformed-body")),
        "{p}"
    );
    assert_eq!(p["location"]["line"], 2, "{p}");
    let (s, p) = w
        .post(
            "/v1/complaints",
            &json!({"complaints": [{"token": "a", "code": 5, "reported_at": "x"}]}),
        )
        .await;
    assert_eq!(s.as_u16(), 400);
    assert_eq!(p["location"]["path"], "complaints[0].code", "{p}");
    let (s, p) = w.post("/v1/complaints", &json!({"complaint": []})).await;
    assert_eq!(
        (s.as_u16(), p["reason"].as_str()),
        (400, Some("malformed-body"))
    );
    assert!(w.published(&w.complaints_topic).is_empty());
}

#[tokio::test]
async fn a_provider_over_its_rate_gets_429_with_retry_after() {
    let w = World::in_memory(&["--rate-per-sec=1", "--burst=2"]).await;
    let body = json!({"complaints": []});
    let mut statuses = vec![];
    for _ in 0..3 {
        let (s, h, _) = w
            .post_raw(
                "/v1/complaints",
                Some(&w.bearer()),
                serde_json::to_vec(&body).unwrap(),
            )
            .await;
        statuses.push(s.as_u16());
        if s == StatusCode::TOO_MANY_REQUESTS {
            assert!(h["retry-after"].to_str().unwrap().parse::<u64>().unwrap() >= 1);
        }
    }
    assert_eq!(statuses, [200, 200, 429]);
}

#[tokio::test]
async fn the_openapi_spec_matches_the_routes() {
    let w = World::in_memory(&[]).await;
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../schemas/openapi/ingest.json"
    );
    let spec: Value = serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
    assert_eq!(spec["openapi"], "3.1.0");
    let mut in_spec = BTreeSet::new();
    for (p, ops) in spec["paths"].as_object().unwrap() {
        for method in ops.as_object().unwrap().keys() {
            in_spec.insert((method.clone(), p.clone()));
        }
    }
    let served: BTreeSet<(String, String)> = ricochet_ingest::app::ROUTES
        .iter()
        .map(|(m, p)| (m.to_string(), p.to_string()))
        .collect();
    assert_eq!(
        in_spec, served,
        "schemas/openapi/ingest.json and app::ROUTES differ"
    );
    // Each documented operation is really routed (not the fallback's 404
    // `not-found`, no 405), and nothing else is.
    for (method, p) in &in_spec {
        let req = w.http.request(
            method.to_uppercase().parse().unwrap(),
            format!("{}{}", w.url, p.replace("{domain}", "mail.example")),
        );
        let resp = req.send().await.unwrap();
        let status = resp.status();
        let body: Value = resp.json().await.unwrap_or(Value::Null);
        assert!(
            body["reason"] != "not-found" && status != StatusCode::METHOD_NOT_ALLOWED,
            "{method} {p}: {status} {body}"
        );
    }
    let status = w
        .http
        .get(format!("{}/v1/complaints", w.url))
        .send()
        .await
        .unwrap()
        .status();
    assert_eq!(status, StatusCode::METHOD_NOT_ALLOWED);
    let resp = w
        .http
        .post(format!("{}/v1/nothing", w.url))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::NOT_FOUND);
    assert_eq!(resp.headers()["content-type"], "application/problem+json");
}

#[tokio::test]
async fn metrics_and_readiness_report_what_happened() {
    let w = World::in_memory(&[]).await;
    let items = vec![
        complaint(&w.token("shop-1", "mail.example"), "unwanted"),
        complaint(&w.token("shop-1", "other.example"), "unwanted"),
    ];
    let (status, _) = w
        .post("/v1/complaints", &json!({ "complaints": items }))
        .await;
    assert_eq!(status, StatusCode::OK);
    let metrics = w
        .http
        .get(format!("{}/metrics", w.url))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    for line in [
        r#"ricochet_ingest_items_total{reason="none",route="/v1/complaints",verdict="accepted"} 1"#,
        r#"ricochet_ingest_items_total{reason="domain-not-hosted",route="/v1/complaints",verdict="rejected"} 1"#,
        r#"ricochet_ingest_requests_total{route="/v1/complaints",status="200"} 1"#,
        r#"ricochet_ingest_kafka_produce_seconds_count{topic="#,
        r#"ricochet_ingest_verify_seconds_count{route="/v1/complaints"} 1"#,
    ] {
        assert!(metrics.contains(line), "missing {line} in\n{metrics}");
    }
    assert_eq!(
        w.http
            .get(format!("{}/healthz", w.url))
            .send()
            .await
            .unwrap()
            .status(),
        StatusCode::OK
    );
    let url = format!("{}/readyz", w.url);
    let http = w.http.clone();
    ricochet_integration_tests::wait_for("readyz to report ready", Duration::from_secs(30), || {
        let (http, url) = (http.clone(), url.clone());
        async move { (http.get(&url).send().await.ok()?.status() == StatusCode::OK).then_some(()) }
    })
    .await;
}

#[tokio::test]
async fn a_revoked_esp_key_is_refused_once_the_registry_reloads() {
    let w = World::in_memory(&[]).await;
    let before = w.token("s-revoke", "mail.example");
    let (status, body) = w
        .post(
            "/v1/complaints",
            &json!({"complaints": [complaint(&before, "unwanted")]}),
        )
        .await;
    assert_eq!(
        (status, body["accepted"].as_u64()),
        (StatusCode::OK, Some(1)),
        "{body}"
    );

    // The ESP rotates after a leak: its old key goes, a new one takes its kid.
    let old_x = w.esp_key.public_jwk().x.clone();
    let new_key = SigningKey::generate(Algorithm::EdDSA, "live-esp-1").unwrap();
    let new_x = new_key.public_jwk().x.clone();
    w.rewrite_registry(|t| {
        assert!(t.contains(&old_x));
        t.replace(&old_x, &new_x)
    });
    // Tokens signed with the revoked key are refused within the reload period.
    let reason = wait_for("the registry reload", Duration::from_secs(15), || async {
        let t = w.token("s-revoke", "mail.example");
        let (_, body) = w
            .post(
                "/v1/complaints",
                &json!({"complaints": [complaint(&t, "unwanted")]}),
            )
            .await;
        let r = body["results"][0]["reason"].as_str().map(String::from);
        r.filter(|_| body["rejected"] == 1)
    })
    .await;
    assert_eq!(reason, "bad-signature");
    // And the new key works.
    let req = TokenRequest::new(
        "esp-live.example",
        "s-revoke",
        Nature::Marketing,
        "u-new@mail.example",
        NOW - 600,
    );
    let fresh = mint(&new_key, &req).unwrap().0;
    let (_, body) = w
        .post(
            "/v1/complaints",
            &json!({"complaints": [complaint(&fresh, "unwanted")]}),
        )
        .await;
    assert_eq!(body["accepted"], 1, "{body}");
}

/// A bearer token is verified once and then remembered, but only for the
/// registry it was verified with: once the provider's key is revoked, the
/// very same token is refused.
#[tokio::test]
async fn a_remembered_bearer_token_is_refused_once_its_key_is_revoked() {
    let w = World::in_memory(&[]).await;
    let bearer = w.bearer();
    let post = |token: String| {
        let body = json!({"complaints": [complaint(&token, "unwanted")]});
        let bytes = serde_json::to_vec(&body).unwrap();
        let bearer = bearer.clone();
        let w = &w;
        async move { w.post_raw("/v1/complaints", Some(&bearer), bytes).await }
    };
    for _ in 0..3 {
        let (status, _, body) = post(w.token("s-bearer", "mail.example")).await;
        assert_eq!(
            (status, body["accepted"].as_u64()),
            (StatusCode::OK, Some(1))
        );
    }
    let old_x = w.provider_key.public_jwk().x.clone();
    let new_key = SigningKey::generate(Algorithm::EdDSA, "p-rotated").unwrap();
    w.rewrite_registry(|t| {
        assert!(t.contains(&old_x));
        t.replace(&old_x, &new_key.public_jwk().x)
    });
    let (status, reason) = wait_for("the registry reload", Duration::from_secs(15), || async {
        let (status, _, body) = post(w.token("s-bearer", "mail.example")).await;
        let reason = body["reason"].as_str().map(String::from);
        (status != StatusCode::OK).then_some((status, reason))
    })
    .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert_eq!(reason.as_deref(), Some("bad-signature"));
}

#[tokio::test]
async fn a_client_that_stops_sending_its_body_times_out() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let w = World::in_memory(&["--request-timeout-ms=1000"]).await;
    let addr = w.url.trim_start_matches("http://").to_string();
    let mut conn = tokio::net::TcpStream::connect(&addr).await.unwrap();
    let head = format!(
        "POST /v1/complaints HTTP/1.1\r\nhost: {addr}\r\nauthorization: {}\r\ncontent-type: application/json\r\ncontent-length: 5000\r\n\r\n{{\"complaints\": [",
        w.bearer()
    );
    conn.write_all(head.as_bytes()).await.unwrap();
    let started = std::time::Instant::now();
    let mut answer = vec![0u8; 4096];
    let n = tokio::time::timeout(Duration::from_secs(10), conn.read(&mut answer))
        .await
        .expect("the server answers a stalled body")
        .unwrap();
    let text = String::from_utf8_lossy(&answer[..n]);
    assert!(text.starts_with("HTTP/1.1 503"), "{text}");
    assert!(text.contains("timeout"), "{text}");
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "{:?}",
        started.elapsed()
    );
}

#[tokio::test]
async fn oversized_headers_are_refused_without_reaching_the_handler() {
    let w = World::in_memory(&[]).await;
    let resp = w
        .http
        .post(format!("{}/v1/complaints", w.url))
        .header(
            "authorization",
            format!("Bearer {}", "a".repeat(1024 * 1024)),
        )
        .body("{}")
        .send()
        .await;
    match resp {
        Ok(r) => assert_eq!(r.status(), StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE),
        // hyper may also close the connection on an over-long head.
        Err(e) => assert!(
            e.is_request() || e.is_connect() || e.to_string().contains("connection"),
            "{e}"
        ),
    }
    // The service is unharmed.
    let (status, _) = w.post("/v1/complaints", &json!({"complaints": []})).await;
    assert!(status.is_client_error() || status.is_success(), "{status}");
}

#[tokio::test]
async fn an_arf_report_lands_as_a_complaint_and_a_report_without_token_is_refused() {
    let w = World::in_memory(&[]).await;
    let token = w.token("s-arf", "mail.example");
    let post = |body: Vec<u8>| {
        w.http
            .post(format!("{}/v1/arf", w.url))
            .header("authorization", w.bearer())
            .header("content-type", "message/rfc822")
            .body(body)
            .send()
    };
    // RFC 5965's simple report (no Arrival-Date: dated on receipt).
    let resp = post(arf_corpus::report("rfc5965-simple.eml", &token))
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    let body: Value = resp.json().await.unwrap();
    assert_eq!(body["accepted"], 1, "{body}");
    let jti = body["results"][0]["jti"].as_str().unwrap().to_string();
    let records = w.published(&w.complaints_topic);
    assert_eq!(records.len(), 1);
    let record = &records[0];
    assert_eq!(record["jti"], jti.as_str());
    assert_eq!(record["code"], "unwanted");
    assert_eq!(record["provider"], "mail.example");

    let resp = post(arf_corpus::report("no-token.eml", &token))
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    let body: Value = resp.json().await.unwrap();
    assert_eq!(body["results"][0]["reason"], "no-token", "{body}");

    let resp = post(b"hello".to_vec()).await.unwrap();
    assert_eq!(resp.status(), StatusCode::BAD_REQUEST);
    let body: Value = resp.json().await.unwrap();
    assert_eq!(body["reason"], "not-mime", "{body}");
}

#[tokio::test]
async fn past_its_admission_limit_ingest_answers_503_at_once() {
    use tokio::io::AsyncWriteExt;
    let w = World::in_memory(&["--request-timeout-ms=20000", "--max-in-flight=16"]).await;
    let addr = w.url.trim_start_matches("http://").to_string();
    // Fill every admission slot with a request whose body never finishes.
    let mut held = vec![];
    for _ in 0..16 {
        let mut conn = tokio::net::TcpStream::connect(&addr).await.unwrap();
        let head = format!(
            "POST /v1/complaints HTTP/1.1\r\nhost: {addr}\r\nauthorization: {}\r\ncontent-type: application/json\r\ncontent-length: 100000\r\n\r\n{{",
            w.bearer()
        );
        conn.write_all(head.as_bytes()).await.unwrap();
        held.push(conn);
    }
    // Wait until ingest holds them all, then one more request is turned away quickly.
    let (status, body) = wait_for("every slot taken", Duration::from_secs(30), || async {
        let (s, b) = w.post("/v1/complaints", &json!({"complaints": []})).await;
        (s == StatusCode::SERVICE_UNAVAILABLE).then_some((s, b))
    })
    .await;
    assert_eq!(body["reason"], "overloaded", "{status} {body}");
    let started = std::time::Instant::now();
    let (status, _) = w.post("/v1/complaints", &json!({"complaints": []})).await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
    assert!(
        started.elapsed() < Duration::from_secs(1),
        "{:?}",
        started.elapsed()
    );
    // Slots free again once the stalled clients go.
    drop(held);
    wait_for("slots freed", Duration::from_secs(30), || async {
        let (s, _) = w.post("/v1/complaints", &json!({"complaints": []})).await;
        (s != StatusCode::SERVICE_UNAVAILABLE).then_some(())
    })
    .await;
}

#[tokio::test]
async fn a_sink_that_refuses_gives_503_and_reports_no_item_accepted() {
    let w = World::in_memory(&[]).await;
    let common::Sink::Memory(memory) = &w.sink else {
        unreachable!()
    };
    memory.set_down(true);
    let body = json!({"complaints": [complaint(&w.token("s", "mail.example"), "unwanted")]});
    let (s, headers, problem) = w
        .post_raw(
            "/v1/complaints",
            Some(&w.bearer()),
            serde_json::to_vec(&body).unwrap(),
        )
        .await;
    assert_eq!(s, StatusCode::SERVICE_UNAVAILABLE, "{problem}");
    assert_eq!(problem["reason"], "kafka-unavailable");
    assert!(headers.contains_key("retry-after"));
    assert!(problem.get("results").is_none(), "{problem}");
    memory.set_down(false);
    let (s, body) = w.post("/v1/complaints", &body).await;
    assert_eq!((s, body["accepted"].as_u64()), (StatusCode::OK, Some(1)));
    assert_eq!(w.published(&w.complaints_topic).len(), 1);
}

/// A policy directory for `mail.example` refusing marketing (from long
/// before the test clock), and an ingest reading it.
async fn world_with_policy() -> World {
    let dir = tempfile::tempdir().unwrap();
    let policy = r#"{"version": 1, "domain": "mail.example", "effective_from": "2020-01-01T00:00:00Z",
        "natures": {"refuse": ["marketing"]}}"#;
    ricochet_policy::store::publish(dir.path(), policy).unwrap();
    let arg = format!("--policies={}", dir.path().display());
    let w = World::in_memory(&[&arg]).await;
    std::mem::forget(dir);
    w
}

#[tokio::test]
async fn the_well_known_policy_is_served_cacheable_and_names_what_has_none() {
    let w = world_with_policy().await;
    let url = |d: &str| format!("{}/.well-known/ricochet-policy/{d}", w.url);
    let resp = w.http.get(url("MAIL.example")).send().await.unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    let etag = resp.headers()["etag"].to_str().unwrap().to_string();
    assert_eq!(resp.headers()["cache-control"], "public, max-age=300");
    let body: Value = resp.json().await.unwrap();
    assert_eq!(body["natures"]["refuse"][0], "marketing", "{body}");
    let again = w
        .http
        .get(url("mail.example"))
        .header("if-none-match", &etag)
        .send()
        .await
        .unwrap();
    assert_eq!(again.status(), StatusCode::NOT_MODIFIED);
    for (domain, status, reason) in [
        ("other.example", StatusCode::NOT_FOUND, "no-policy"),
        ("not_a_domain!", StatusCode::NOT_FOUND, "not-a-domain"),
    ] {
        let resp = w.http.get(url(domain)).send().await.unwrap();
        assert_eq!(resp.status(), status, "{domain}");
        let body: Value = resp.json().await.unwrap();
        assert_eq!(body["reason"], reason);
    }
}

#[tokio::test]
async fn a_policy_violation_the_policy_contradicts_is_refused_per_item() {
    let w = world_with_policy().await;
    let marketing = w.token("s-pol", "mail.example");
    let recipient = "someone@mail.example";
    let req = TokenRequest::new(
        "esp-live.example",
        "s-pol",
        Nature::Account,
        recipient,
        NOW - 600,
    );
    let account = mint(&w.esp_key, &req).unwrap().0;
    let item = |t: &str| complaint(t, "policy-violation");
    let (status, body) = w
        .post(
            "/v1/complaints",
            &json!({"complaints": [item(&marketing), item(&account)]}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["results"][0]["verdict"], "accepted", "{body}");
    assert_eq!(
        body["results"][1]["reason"], "no-policy-violation",
        "{body}"
    );
    assert_eq!(w.published(&w.complaints_topic).len(), 1);
}
