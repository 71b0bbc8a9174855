//! Ricochet in the mail flow, end to end, with two real Postfix instances
//! on loopback: the ESP's (smtpd with the sign milter, relaying) and the
//! provider's (smtpd with the check milter, delivering to a maildir).
//!
//! A message sent through the ESP arrives signed and checked; two
//! recipients make two messages with two tokens; forged and misdirected
//! tokens are marked invalid with their reason; a recipient policy refuses
//! marketing with 550; the delivered message, submitted by the complaint
//! button (`ricochet complaint submit --message`), is stored with its
//! recipient proven and reaches the ESP's feed, whose suppression list
//! names the recipient; the check milter's delivery counts reach
//! ClickHouse. Ingest, loader and scoring run as processes on the shared
//! stack, with topics and a database of their own.
#![cfg(feature = "integration")]

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use ricochet_harness::participants::{own_key, register};
use ricochet_harness::postfix::{Postfix, Route, Settings};
use ricochet_harness::process::{free_port, start_milter, ServiceProcess};
use ricochet_harness::smtp;
use ricochet_integration_tests::{clickhouse, kafka, unique, wait_for, workspace_binary};
use ricochet_kafka::ensure_topics;
use ricochet_registry::ParticipantKind;
use ricochet_storage::{ClickHouseConfig, Migrator};
use ricochet_token::key_file::write_private;
use ricochet_token::verify::unix_now;
use ricochet_token::{mint, Algorithm, Nature, SigningKey, TokenRequest};

const ESP: &str = "esp-flow.example";
const PROVIDER: &str = "mail-flow.example";
/// A domain without a policy, and one whose policy refuses marketing.
const OPEN: &str = "open.flow.example";
const STRICT: &str = "strict.flow.example";
/// Domains whose policies refuse marketing with the other two actions.
const HOLD: &str = "hold.flow.example";
const MARK: &str = "mark.flow.example";
const WAIT: Duration = Duration::from_secs(90);

/// Everything the test started, kept alive until it ends.
struct World {
    dir: tempfile::TempDir,
    ch: ClickHouseConfig,
    ingest: ServiceProcess,
    scoring: ServiceProcess,
    esp_mta: Postfix,
    provider_mta: Postfix,
    esp_key: SigningKey,
    _services: Vec<ServiceProcess>,
}

impl World {
    fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }
}

/// Keys, registry, the recipient policy, and the pipeline's processes.
async fn pipeline(dir: &Path) -> (ClickHouseConfig, Vec<ServiceProcess>, SigningKey) {
    let registry = dir.join("registry.toml");
    let esp = register(
        &registry,
        ParticipantKind::Esp,
        ESP,
        (Algorithm::EdDSA, "flow-esp"),
        &[],
    )
    .unwrap();
    write_private(&dir.join("esp.jwk"), &esp.private_jwk()).unwrap();
    let kind = ParticipantKind::Provider;
    let provider = register(
        &registry,
        kind,
        PROVIDER,
        (Algorithm::EdDSA, "flow-mail"),
        &[OPEN, STRICT, HOLD, MARK],
    )
    .unwrap();
    write_private(&dir.join("provider.jwk"), &provider.private_jwk()).unwrap();
    own_key(&dir.join("ricochet.jwk"), "flow-ricochet").unwrap();
    publish_policy(dir);

    let kafka = kafka();
    let topics: Vec<String> = ["complaints", "deliveries", "dead", "penalties", "feedback"]
        .iter()
        .map(|t| unique(&format!("flow-{t}")))
        .collect();
    let names: Vec<&str> = topics.iter().map(String::as_str).collect();
    ensure_topics(&kafka, &names).await.unwrap();
    let ch = clickhouse("flow");
    Migrator::new(ch.clone()).unwrap().run().await.unwrap();
    let policies = dir.join("policies");
    let envs = [
        ("RICOCHET_KAFKA_BROKERS", kafka.brokers.as_str()),
        ("RICOCHET_CLICKHOUSE_URL", ch.url.as_str()),
        ("RICOCHET_CLICKHOUSE_DATABASE", ch.database.as_str()),
        ("RICOCHET_TOPIC_COMPLAINTS", names[0]),
        ("RICOCHET_TOPIC_DELIVERIES", names[1]),
        ("RICOCHET_TOPIC_DEAD_LETTER", names[2]),
        ("RICOCHET_TOPIC_PENALTIES", names[3]),
        ("RICOCHET_TOPIC_FEEDBACK", names[4]),
        ("RICOCHET_REGISTRY", registry.to_str().unwrap()),
        ("RICOCHET_POLICY_DIR", policies.to_str().unwrap()),
    ];
    let group = unique("flow-loader");
    let key = dir.join("ricochet.jwk");
    let services = vec![
        service("ricochet-ingest", &[], &envs).await,
        service(
            "ricochet-loader",
            &["--group", &group, "--batch-ms", "200"],
            &envs,
        )
        .await,
        service(
            "ricochet-scoring",
            &[
                "--signing-key",
                key.to_str().unwrap(),
                "--interval-secs",
                "1",
            ],
            &envs,
        )
        .await,
    ];
    (ch, services, esp)
}

/// The provider publishes its policies refusing marketing (STRICT with
/// reject, HOLD with quarantine, MARK with a header) the way an operator
/// does; a domain it does not host is refused.
fn publish_policy(dir: &Path) {
    let cases = [
        (STRICT, "reject", true),
        (HOLD, "quarantine", true),
        (MARK, "header", true),
        ("elsewhere.example", "reject", false),
    ];
    for (domain, action, ok) in cases {
        let file = dir.join(format!("{domain}.policy.json"));
        let policy = format!(
            r#"{{"version": 1, "domain": "{domain}", "effective_from": "2026-01-01T00:00:00Z",
                "natures": {{"refuse": ["marketing"]}}, "action": "{action}"}}"#
        );
        std::fs::write(&file, policy).unwrap();
        let out = Command::new(workspace_binary("ricochet"))
            .args([
                "policy",
                "publish",
                "--provider",
                PROVIDER,
                "--dir",
                "policies",
            ])
            .arg(&file)
            .current_dir(dir)
            .env("RICOCHET_REGISTRY", dir.join("registry.toml"))
            .output()
            .unwrap();
        assert_eq!(
            out.status.success(),
            ok,
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
}

async fn service(name: &str, args: &[&str], envs: &[(&str, &str)]) -> ServiceProcess {
    let mut p = ServiceProcess::spawn(&workspace_binary(name), "--listen", args, envs).unwrap();
    p.wait_ready().await.unwrap();
    p
}

/// A milter in `mode`, ready; returns it with its milter address.
async fn milter(mode: &str, args: &[&str]) -> (ServiceProcess, SocketAddr) {
    start_milter(&workspace_binary("ricochet-milter"), mode, args)
        .await
        .unwrap()
}

async fn world() -> World {
    let dir = tempfile::tempdir().unwrap();
    let d = |n: &str| dir.path().join(n).to_str().unwrap().to_string();
    let (ch, mut services, esp_key) = pipeline(dir.path()).await;
    std::fs::write(
        d("senders.toml"),
        "[envelope]\n\"@shop.example\" = \"shop-42\"\n",
    )
    .unwrap();
    let sign_args = [
        "--esp",
        ESP,
        "--key",
        &d("esp.jwk"),
        "--send-log",
        &d("sent.log"),
        "--senders",
        &d("senders.toml"),
    ];
    let (sign, sign_addr) = milter("sign", &sign_args).await;
    let ingest_url = services[0].url.clone();
    let check_args = [
        "--registry",
        &d("registry.toml"),
        "--policies",
        &d("policies"),
        "--counts-file",
        &d("counts.json"),
        "--report-secs",
        "1",
        "--ingest-url",
        &ingest_url,
        "--provider",
        PROVIDER,
        "--provider-key",
        &d("provider.jwk"),
    ];
    let (check, check_addr) = milter("check", &check_args).await;
    let (provider_port, esp_port) = (free_port().unwrap(), free_port().unwrap());
    let domains = [OPEN, STRICT, HOLD, MARK].map(String::from).to_vec();
    let provider_mta = Postfix::start(
        &dir.path().join("postfix"),
        &Settings {
            name: "provider".into(),
            port: provider_port,
            route: Route::Deliver(domains),
            milter: Some(check_addr),
        },
    )
    .await
    .unwrap();
    let esp_mta = Postfix::start(
        &dir.path().join("postfix"),
        &Settings {
            name: "esp".into(),
            port: esp_port,
            route: Route::RelayTo(provider_port),
            milter: Some(sign_addr),
        },
    )
    .await
    .unwrap();
    let scoring = services.remove(2);
    let ingest = services.remove(0);
    services.extend([sign, check]);
    World {
        dir,
        ch,
        ingest,
        scoring,
        esp_mta,
        provider_mta,
        esp_key,
        _services: services,
    }
}

fn message(to: &str, nature: &str) -> String {
    format!(
        "From: Shop <news@shop.example>\nTo: {to}\nSubject: spring sale\n\
         Message-Nature: {nature}\nMessage-Campaign: spring\n\nHello.\n"
    )
}

/// A delivered message's header `name`, unfolded.
fn header(file: &Path, name: &str) -> Option<String> {
    let text = std::fs::read_to_string(file).unwrap();
    let head = text
        .split("\n\n")
        .next()
        .unwrap()
        .replace("\n\t", " ")
        .replace("\n ", " ");
    head.lines()
        .find_map(|l| l.strip_prefix(&format!("{name}: ")).map(str::to_string))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mail_is_signed_checked_and_complained_about_end_to_end() {
    let w = world().await;
    signed_and_checked(&w).await;
    forged_and_misdirected_tokens_are_invalid(&w).await;
    policy_refuses_marketing_with_550(&w).await;
    policy_holds_or_marks_as_its_action_says(&w).await;
    an_esp_asks_the_published_policy(&w);
    complaint_button_reaches_the_feed_and_suppression_list(&w).await;
    delivery_counts_reach_clickhouse(&w).await;
}

async fn signed_and_checked(w: &World) {
    let alice = format!("alice@{OPEN}");
    let out = smtp::send(
        w.esp_mta.smtp,
        "news@shop.example",
        &[&alice],
        &message(&alice, "marketing"),
    )
    .await
    .unwrap();
    assert_eq!(out.accepted, vec![alice.clone()]);
    let files = w.provider_mta.wait_delivered(1, WAIT).await.unwrap();
    let result = header(&files[0], "Complaint-Token-Result").expect("a result header");
    assert!(
        result.starts_with(&format!(
            "valid; esp={ESP}; sender=shop-42; nature=marketing"
        )),
        "{result}"
    );
    assert!(
        header(&files[0], "Message-Nature").is_none(),
        "internal headers are removed"
    );

    let (carol, dave) = (format!("carol@{OPEN}"), format!("dave@{OPEN}"));
    let out = smtp::send(
        w.esp_mta.smtp,
        "news@shop.example",
        &[&carol, &dave],
        &message(&carol, "newsletter"),
    )
    .await
    .unwrap();
    assert_eq!((out.accepted.len(), out.transactions), (2, 2), "{out:?}");
    let files = w.provider_mta.wait_delivered(3, WAIT).await.unwrap();
    let tokens: Vec<String> = files[1..]
        .iter()
        .map(|f| header(f, "Complaint-Token").unwrap())
        .collect();
    assert_ne!(tokens[0], tokens[1], "each recipient gets its own token");
    for f in &files[1..] {
        assert!(header(f, "Complaint-Token-Result")
            .unwrap()
            .starts_with("valid;"));
    }
    let log = std::fs::read_to_string(w.path("sent.log")).unwrap();
    assert_eq!(log.lines().count(), 3, "{log}");
    assert!(log.contains(&carol) && log.contains(&dave) && log.contains(&alice));
}

/// Sent straight to the provider, as a forger would.
async fn forged_and_misdirected_tokens_are_invalid(w: &World) {
    let first = &w.provider_mta.delivered()[0];
    let token = header(first, "Complaint-Token").unwrap();
    let mut forged = token.clone().into_bytes();
    let last = forged.len() - 5;
    forged[last] = if forged[last] == b'A' { b'B' } else { b'A' };
    let forged = String::from_utf8(forged).unwrap();
    let bob = format!("bob@{OPEN}");
    for (tok, reason) in [
        (forged.as_str(), "bad-signature"),
        (token.as_str(), "recipient-mismatch"),
    ] {
        let before = w.provider_mta.delivered().len();
        let text = format!(
            "From: news@shop.example\nComplaint-Token: {tok}\nComplaint-Token-Result: valid; forged\nSubject: x\n\nx\n"
        );
        smtp::send(w.provider_mta.smtp, "news@shop.example", &[&bob], &text)
            .await
            .unwrap();
        let files = w
            .provider_mta
            .wait_delivered(before + 1, WAIT)
            .await
            .unwrap();
        let got = header(files.last().unwrap(), "Complaint-Token-Result").unwrap();
        assert_eq!(got, format!("invalid; reason={reason}"));
        let text = std::fs::read_to_string(files.last().unwrap()).unwrap();
        assert!(
            !text.contains("valid; forged"),
            "the sender's own result header is removed"
        );
    }
}

async fn policy_refuses_marketing_with_550(w: &World) {
    let erin = format!("erin@{STRICT}");
    let request = TokenRequest::new(ESP, "shop-42", Nature::Marketing, &erin, unix_now());
    let (token, _) = mint(&w.esp_key, &request).unwrap();
    let text = format!("From: news@shop.example\nComplaint-Token: {token}\nSubject: sale\n\nbuy\n");
    let out = smtp::send(w.provider_mta.smtp, "news@shop.example", &[&erin], &text)
        .await
        .unwrap();
    let (_, reply) = out.refused.first().expect("refused");
    assert_eq!(reply.code, 550, "{reply:?}");
    assert!(
        reply.text.contains("5.7.1") && reply.text.contains("nature-refused: marketing"),
        "{reply:?}"
    );
    let request = TokenRequest::new(ESP, "shop-42", Nature::Account, &erin, unix_now());
    let (token, _) = mint(&w.esp_key, &request).unwrap();
    let text = format!("From: news@shop.example\nComplaint-Token: {token}\nSubject: login\n\nhi\n");
    let out = smtp::send(w.provider_mta.smtp, "news@shop.example", &[&erin], &text)
        .await
        .unwrap();
    assert_eq!(out.accepted, vec![erin], "the policy accepts account mail");
}

async fn policy_holds_or_marks_as_its_action_says(w: &World) {
    let send = |rcpt: String| async move {
        let request = TokenRequest::new(ESP, "shop-42", Nature::Marketing, &rcpt, unix_now());
        let (token, _) = mint(&w.esp_key, &request).unwrap();
        let text =
            format!("From: news@shop.example\nComplaint-Token: {token}\nSubject: sale\n\nbuy\n");
        let out = smtp::send(w.provider_mta.smtp, "news@shop.example", &[&rcpt], &text).await;
        assert_eq!(
            out.unwrap().accepted,
            vec![rcpt],
            "quarantine and header accept the mail"
        );
    };
    let (gina, hank) = (format!("gina@{HOLD}"), format!("hank@{MARK}"));
    send(gina.clone()).await;
    wait_for("the message in the hold queue", WAIT, || async {
        (w.provider_mta.held() == 1).then_some(())
    })
    .await;
    send(hank.clone()).await;
    let to = |who: &str| {
        let who = who.to_string();
        move |f: &PathBuf| header(f, "Delivered-To").as_deref() == Some(who.as_str())
    };
    let marked = wait_for("the marked message", WAIT, || async {
        w.provider_mta.delivered().into_iter().find(to(&hank))
    })
    .await;
    let policy = header(&marked, "Complaint-Token-Policy");
    assert_eq!(
        policy.as_deref(),
        Some("refused; reason=nature-refused: marketing")
    );
    assert!(
        !w.provider_mta.delivered().iter().any(to(&gina)),
        "the held message is not delivered"
    );
}

fn an_esp_asks_the_published_policy(w: &World) {
    for (nature, code, says) in [
        ("marketing", 2, "refused: nature-refused: marketing"),
        ("account", 0, "accepted"),
    ] {
        let out = ricochet(
            w,
            &[
                "policy",
                "check",
                "--url",
                &w.ingest.url,
                "--domain",
                STRICT,
                "--nature",
                nature,
            ],
        );
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert_eq!(
            out.status.code(),
            Some(code),
            "{stdout}{}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(stdout.starts_with(says), "{stdout}");
    }
}

fn ricochet(w: &World, args: &[&str]) -> std::process::Output {
    Command::new(workspace_binary("ricochet"))
        .args(args)
        .current_dir(w.dir.path())
        .output()
        .unwrap()
}

async fn complaint_button_reaches_the_feed_and_suppression_list(w: &World) {
    let first = w.provider_mta.delivered()[0].clone();
    let out = ricochet(
        w,
        &[
            "complaint",
            "submit",
            "--url",
            &w.ingest.url,
            "--key",
            "provider.jwk",
            "--provider",
            PROVIDER,
            "--message",
            first.to_str().unwrap(),
        ],
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(stdout.contains("accepted 1, rejected 0"), "{stdout}");
    let client = w.ch.client();
    let proven = wait_for("the complaint in ClickHouse", WAIT, || {
        let client = client.clone();
        async move {
            client
                .query("SELECT toUInt8(recipient_proven) FROM complaints FINAL WHERE esp = ?")
                .bind(ESP)
                .fetch_optional::<u8>()
                .await
                .ok()
                .flatten()
        }
    })
    .await;
    assert_eq!(proven, 1, "the delivered-to address proves the binding");
    let csv = wait_for("the suppression list", WAIT, || async {
        let out = ricochet(
            w,
            &[
                "report",
                "complaints",
                "--url",
                &w.scoring.url,
                "--key",
                "esp.jwk",
                "--esp",
                ESP,
                "--send-log",
                "sent.log",
            ],
        );
        let csv = String::from_utf8_lossy(&out.stdout).into_owned();
        (out.status.success() && csv.lines().count() > 1).then_some(csv)
    })
    .await;
    let rows: Vec<&str> = csv.lines().skip(1).collect();
    assert_eq!(rows.len(), 1, "{csv}");
    assert!(
        rows[0].starts_with(&format!("alice@{OPEN},shop-42,spring,unwanted,")),
        "{csv}"
    );
}

async fn delivery_counts_reach_clickhouse(w: &World) {
    let client = w.ch.client();
    // alice, carol, dave, erin's account mail and hank's marked marketing:
    // five valid tokens delivered (the refused and the held are not).
    wait_for("the milter's delivery counts", WAIT, || {
        let client = client.clone();
        async move {
            let n = client
                .query("SELECT sum(delivered) FROM deliveries FINAL WHERE esp = ? AND sender = 'shop-42'")
                .bind(ESP)
                .fetch_one::<u64>()
                .await
                .ok()?;
            (n == 5).then_some(())
        }
    })
    .await;
}
