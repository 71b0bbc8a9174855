//! `ricochet complaint submit` against a real ingest (in-process) and the real broker.
#![cfg(feature = "integration")]

use std::process::Command;

use clap::Parser;
use ricochet_ingest::{serve, AppState, IngestConfig};
use ricochet_integration_tests::{consume_exactly, kafka, unique};
use ricochet_kafka::ensure_topics;

fn ricochet(dir: &std::path::Path, args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_ricochet"))
        .args(args)
        .current_dir(dir)
        .env("RICOCHET_REGISTRY", dir.join("registry.toml"))
        .output()
        .expect("run ricochet")
}

/// A token of `esp-a.example` (key `esp-1.jwk` in `dir`) for `rcpt`.
fn mint_token(dir: &std::path::Path, rcpt: &str) -> String {
    let out = ricochet(
        dir,
        &[
            "token",
            "mint",
            "--key",
            "esp-1.jwk",
            "--iss",
            "esp-a.example",
            "--sub",
            "shop-1",
            "--nature",
            "marketing",
            "--recipient",
            rcpt,
        ],
    );
    String::from_utf8(out.stdout).unwrap().trim().to_string()
}

/// A registered ESP (`esp-1.jwk`) and provider (`mail-1.jwk`) in a
/// temporary folder, and a real ingest (in-process) on the real broker.
struct Setup {
    dir: tempfile::TempDir,
    url: String,
    kafka: ricochet_kafka::KafkaConfig,
    topic: String,
    stop: tokio::sync::oneshot::Sender<()>,
}

async fn setup(prefix: &str) -> Setup {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    for (kind, id, kid, extra) in [
        ("add-esp", "esp-a.example", "esp-1", vec![]),
        (
            "add-provider",
            "mail.example",
            "mail-1",
            vec!["--domain", "mail.example"],
        ),
    ] {
        let jwks = ricochet(
            d,
            &["keys", "new", "--kid", kid, "--out", &format!("{kid}.jwk")],
        );
        std::fs::write(d.join(format!("{kid}.jwks")), &jwks.stdout).unwrap();
        let mut args = vec!["registry", kind, "--id", id, "--name", id, "--jwks"];
        let jwks_file = format!("{kid}.jwks");
        args.push(&jwks_file);
        args.extend(extra);
        assert!(ricochet(d, &args).status.success());
    }
    let topic = unique(prefix);
    let kafka = kafka();
    ensure_topics(&kafka, &[&topic]).await.unwrap();
    let config = IngestConfig::parse_from([
        "ricochet-ingest".to_string(),
        format!("--registry={}", d.join("registry.toml").display()),
        format!("--complaints-topic={topic}"),
    ]);
    let state = AppState::new(config, &kafka).unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    tokio::spawn(serve(state, listener, async move {
        let _ = stopped.await;
    }));

    Setup {
        dir,
        url,
        kafka,
        topic,
        stop,
    }
}

#[tokio::test]
async fn a_provider_submits_complaints_and_sees_each_verdict() {
    let Setup {
        dir,
        url,
        kafka,
        topic,
        stop,
    } = setup("it-cli-complaints").await;
    let d = dir.path();
    let mint = |rcpt: &str| mint_token(d, rcpt);
    let (good, elsewhere) = (mint("carol@mail.example"), mint("dave@elsewhere.example"));
    let d2 = d.to_path_buf();
    let url2 = url.clone();
    let out = tokio::task::spawn_blocking(move || {
        ricochet(
            &d2,
            &[
                "complaint",
                "submit",
                "--url",
                &url2,
                "--key",
                "mail-1.jwk",
                "--provider",
                "mail.example",
                "--recipient",
                "carol@mail.example",
                &good,
                &elsewhere,
            ],
        )
    })
    .await
    .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(
        out.status.code(),
        Some(2),
        "a rejected item gives exit code 2: {stdout}"
    );
    assert!(stdout.contains("accepted 1, rejected 1"), "{stdout}");
    assert!(stdout.contains("domain-not-hosted"), "{stdout}");
    let messages = consume_exactly(&kafka, &topic, 1, std::time::Duration::from_secs(60)).await;
    let record: serde_json::Value = serde_json::from_slice(&messages[0].1).unwrap();
    assert_eq!(
        record["recipient_proven"], true,
        "the --recipient proof was sent and matched"
    );
    let _ = stop.send(());
}

#[tokio::test]
async fn a_maildir_of_arf_reports_is_submitted_with_a_summary_of_verdicts() {
    let Setup {
        dir,
        url,
        kafka,
        topic,
        stop: _stop,
    } = setup("it-cli-arf").await;
    let d = dir.path();
    let token = mint_token(d, "carol@mail.example");
    let report = |token_line: &str| {
        format!(
            "From: <fbl@mail.example>\r\nMIME-Version: 1.0\r\nContent-Type: multipart/report; report-type=feedback-report; boundary=\"b\"\r\n\r\n\
             --b\r\nContent-Type: text/plain\r\n\r\nA complaint.\r\n\
             --b\r\nContent-Type: message/feedback-report\r\n\r\nFeedback-Type: abuse\r\nVersion: 1\r\n\r\n\
             --b\r\nContent-Type: text/rfc822-headers\r\n\r\nFrom: shop@esp-a.example\r\n{token_line}Subject: sale\r\n\r\n--b--\r\n"
        )
    };
    let maildir = d.join("fbl");
    for sub in ["cur", "new", "tmp"] {
        std::fs::create_dir_all(maildir.join(sub)).unwrap();
    }
    std::fs::write(
        maildir.join("cur/1:2,S"),
        report(&format!("Complaint-Token: {token}\r\n")),
    )
    .unwrap();
    std::fs::write(maildir.join("new/2"), report("")).unwrap();
    std::fs::write(maildir.join("new/3"), "not a report").unwrap();

    let d2 = d.to_path_buf();
    let out = tokio::task::spawn_blocking(move || {
        ricochet(
            &d2,
            &[
                "arf",
                "submit",
                "--url",
                &url,
                "--key",
                "mail-1.jwk",
                "--provider",
                "mail.example",
                "fbl",
            ],
        )
    })
    .await
    .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(
        out.status.code(),
        Some(2),
        "{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(stdout.contains("3 report(s)"), "{stdout}");
    assert!(stdout.contains("1  accepted"), "{stdout}");
    assert!(stdout.contains("1  rejected: no-token"), "{stdout}");
    assert!(stdout.contains("1  not a report: not-mime"), "{stdout}");
    let records = consume_exactly(&kafka, &topic, 1, std::time::Duration::from_secs(30)).await;
    let record: serde_json::Value = serde_json::from_slice(&records[0].1).unwrap();
    assert_eq!(record["code"], "unwanted");
}
