//! From send log to suppression list: tokens minted with `--send-log`,
//! complaints about them loaded into the real ClickHouse, the feed written
//! by the scoring library and served by the ESP API over HTTP, and
//! `ricochet report complaints` turning it into the list of exactly the
//! complained recipients.
#![cfg(feature = "integration")]

use std::path::Path;
use std::process::{Command, Output};
use std::time::Duration;

use ricochet_integration_tests::{clickhouse, complaint_row, drop_database, insert_rows};
use ricochet_registry::RegistryHandle;
use ricochet_scoring::api::{router, ApiState};
use ricochet_scoring::feed::FeedWriter;
use ricochet_storage::{ComplaintRow, Migrator};
use ricochet_token::verify::unix_now;
use ricochet_token::{Algorithm, SigningKey};
use serde_json::Value;

const ESP: &str = "esp-a.example";

fn ricochet(dir: &Path, args: &[&str]) -> Output {
    let out = Command::new(env!("CARGO_BIN_EXE_ricochet"))
        .args(args)
        .current_dir(dir)
        .env("RICOCHET_REGISTRY", dir.join("registry.toml"))
        .output()
        .expect("run ricochet");
    assert!(
        out.status.success(),
        "ricochet {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

/// Mints a token for `rcpt` with the send log; returns its claims.
fn mint(dir: &Path, rcpt: &str) -> Value {
    let out = ricochet(
        dir,
        &[
            "token",
            "mint",
            "--key",
            "esp.jwk",
            "--iss",
            ESP,
            "--sub",
            "shop-1",
            "--nature",
            "marketing",
            "--campaign",
            "spring",
            "--recipient",
            rcpt,
            "--send-log",
            "sent.log",
            "--show-claims",
        ],
    );
    serde_json::from_slice(&out.stderr).expect("claims on stderr")
}

/// The complaint a loader would store for a token.
fn row(claims: &Value, code: &str) -> ComplaintRow {
    let s = |k: &str| claims[k].as_str().unwrap().to_string();
    ComplaintRow {
        campaign: s("cmp"),
        rcb: s("rcb"),
        ..complaint_row(
            &s("jti"),
            ESP,
            &s("sub"),
            "mail.example",
            code,
            unix_now() * 1000 - 1000,
        )
    }
}

#[tokio::test]
async fn the_suppression_list_holds_exactly_the_complained_recipients() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let jwks = ricochet(d, &["keys", "new", "--kid", "esp-1", "--out", "esp.jwk"]);
    std::fs::write(d.join("esp.jwks"), &jwks.stdout).unwrap();
    ricochet(
        d,
        &[
            "registry", "add-esp", "--id", ESP, "--name", "A", "--jwks", "esp.jwks",
        ],
    );
    let recipients = [
        "alice@mail.example",
        "bob@mail.example",
        "carol@mail.example",
        "dan@mail.example",
        "erin@mail.example",
    ];
    let claims: Vec<Value> = recipients.iter().map(|r| mint(d, r)).collect();
    let log = std::fs::read_to_string(d.join("sent.log")).unwrap();
    assert_eq!(log.lines().count(), 5, "one line per minted token");

    // Alice and Bob complain, Carol says not-spam, Dan's log line is
    // rewritten to another address, Erin never complains.
    let ch = clickhouse("it_cli_suppression");
    Migrator::new(ch.clone()).unwrap().run().await.unwrap();
    let rows = vec![
        row(&claims[0], "unwanted"),
        row(&claims[1], "phishing"),
        row(&claims[2], "not-spam"),
        row(&claims[3], "unwanted"),
    ];
    insert_rows(&ch, "complaints", &rows).await;
    let dan = claims[3]["jti"].as_str().unwrap();
    let log = log.replace(
        &format!("{dan},dan@mail.example"),
        &format!("{dan},mallory@mail.example"),
    );
    std::fs::write(d.join("sent.log"), log).unwrap();
    let mut writer = FeedWriter::open(ch.client(), ricochet_scoring::partition::Partition::WHOLE)
        .await
        .unwrap();
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    let mut fed = 0;
    while fed < 4 {
        assert!(
            std::time::Instant::now() < deadline,
            "the feed took {fed} of 4"
        );
        fed += writer.pass().await.unwrap().fed;
        tokio::time::sleep(Duration::from_millis(50)).await;
    }

    let key = SigningKey::generate(Algorithm::EdDSA, "ricochet-1").unwrap();
    let registry = RegistryHandle::open(d.join("registry.toml")).unwrap();
    let metrics = ricochet_scoring::metrics::Metrics::new();
    let state = ApiState::new(ch.client(), registry, key, metrics, 10);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum_serve(listener, state).await });

    let d2 = d.to_path_buf();
    let out = tokio::task::spawn_blocking(move || {
        ricochet(
            &d2,
            &[
                "report",
                "complaints",
                "--url",
                &url,
                "--key",
                "esp.jwk",
                "--esp",
                ESP,
                "--send-log",
                "sent.log",
                "--out",
                "suppress.csv",
            ],
        )
    })
    .await
    .unwrap();
    let csv = std::fs::read_to_string(d.join("suppress.csv")).unwrap();
    let lines: Vec<&str> = csv.lines().collect();
    assert_eq!(lines[0], "recipient,sender,campaign,code,reported_at");
    // Feed order is load order, then jti: sorted here.
    let mut listed: Vec<&str> = lines[1..].to_vec();
    listed.sort();
    let who: Vec<&str> = listed
        .iter()
        .map(|l| l.split(',').next().unwrap())
        .collect();
    assert_eq!(who, ["alice@mail.example", "bob@mail.example"]);
    assert!(
        listed[1].contains(",shop-1,spring,phishing,"),
        "{}",
        listed[1]
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains(&format!(
            "not suppressed: {dan}: the send log says mallory@mail.example"
        )),
        "{stderr}"
    );
    assert!(
        stderr.contains("2 suppressed, 1 not-spam, 0 not in the send log, 1 rcb mismatches"),
        "{stderr}"
    );
    assert!(stderr.contains("next cursor: 4"), "{stderr}");
    drop_database(&ch).await;
}

/// Serves the ESP API on `listener`.
async fn axum_serve(listener: tokio::net::TcpListener, state: ApiState) {
    let _ = axum::serve(listener, router(state)).await;
}
