//! The milter over real sockets, spoken to by a milter client the way
//! Postfix speaks (no MTA needed): what each mode answers, and malformed
//! traffic closing only its own connection.

use std::net::SocketAddr;
use std::path::Path;
use std::time::Duration;

use clap::Parser;
use miltr_client::Client;
use miltr_common::actions::Action;
use miltr_common::commands::{Connect, Family, Header};
use miltr_common::modifications::{ModificationAction, ModificationResponse};
use miltr_common::optneg::OptNeg;
use miltr_server::Milter;
use ricochet_milter::config::{Cli, Mode};
use ricochet_milter::metrics::MilterMetrics;
use ricochet_milter::server::{self, Limits};
use ricochet_milter::setup;
use ricochet_milter::sign::SignMilter;
use ricochet_token::binding::recipient_binding;
use ricochet_token::key_file::write_private;
use ricochet_token::verify::unix_now;
use ricochet_token::{verify, Algorithm, IssuerKeys, SigningKey, VerifyOptions};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio_util::compat::TokioAsyncReadCompatExt;

const ESP: &str = "esp-m.example";

/// Starts `make`'s milters on a loopback port.
async fn serve<M, F>(make: F) -> SocketAddr
where
    M: Milter + 'static,
    M::Error: std::fmt::Display,
    F: Fn() -> M + Send + Sync + 'static,
{
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let limits = Limits {
        max_connections: 16,
        idle_timeout: Duration::from_secs(5),
    };
    let metrics = MilterMetrics::new();
    tokio::spawn(server::run(
        listener,
        make,
        limits,
        metrics,
        std::future::pending(),
    ));
    addr
}

/// A sign milter with `extra` flags; its ESP key.
async fn sign_milter(dir: &Path, extra: &[&str]) -> (SocketAddr, SigningKey) {
    let key = SigningKey::generate(Algorithm::EdDSA, "m-1").unwrap();
    write_private(&dir.join("esp.jwk"), &key.private_jwk()).unwrap();
    std::fs::write(
        dir.join("senders.toml"),
        "[sasl]\nshop = \"shop-1\"\n[envelope]\n\"@shop.example\" = \"shop-1\"\n",
    )
    .unwrap();
    let d = |n: &str| dir.join(n).display().to_string();
    let mut args = vec![
        "ricochet-milter".to_string(),
        "sign".into(),
        "--esp".into(),
        ESP.into(),
        "--key".into(),
        d("esp.jwk"),
        "--send-log".into(),
        d("sent.log"),
        "--senders".into(),
        d("senders.toml"),
    ];
    args.extend(extra.iter().map(|a| a.to_string()));
    let Mode::Sign(config) = Cli::parse_from(args).mode else {
        unreachable!()
    };
    let signer = setup::signer(&config, MilterMetrics::new()).unwrap();
    (serve(move || SignMilter::new(signer.clone())).await, key)
}

/// One message through a milter connection: envelope, headers, body.
async fn message(
    addr: SocketAddr,
    rcpts: &[&str],
    headers: &[(&str, &str)],
) -> (Vec<Result<(), String>>, Option<ModificationResponse>) {
    let stream = TcpStream::connect(addr).await.unwrap();
    let client = Client::new(OptNeg::default());
    let mut c = client.connect_via(stream.compat()).await.unwrap();
    c.connect(Connect::new(
        b"client",
        Family::Inet,
        Some(2525),
        b"127.0.0.1",
    ))
    .await
    .unwrap();
    c.helo(b"client".as_slice()).await.unwrap();
    c.mail(b"<news@shop.example>".as_slice()).await.unwrap();
    let mut replies = vec![];
    for r in rcpts {
        replies.push(
            c.recipient(format!("<{r}>").as_bytes())
                .await
                .map_err(|e| format!("{e:?}")),
        );
    }
    if replies.iter().all(Result::is_err) {
        return (replies, None);
    }
    c.data().await.unwrap();
    for (n, v) in headers {
        c.header(Header::new(n.as_bytes(), v.as_bytes()))
            .await
            .unwrap();
    }
    c.end_of_header().await.unwrap();
    c.body(b"Hello.\r\n".as_slice()).await.unwrap();
    let response = c.end_of_body().await.unwrap();
    (replies, Some(response))
}

fn inserted(r: &ModificationResponse, name: &str) -> Option<String> {
    r.modifications().iter().find_map(|m| match m {
        ModificationAction::InsertHeader(h) if h.name() == name => Some(h.value().into_owned()),
        _ => None,
    })
}

fn deleted(r: &ModificationResponse) -> Vec<String> {
    r.modifications()
        .iter()
        .filter_map(|m| match m {
            ModificationAction::ChangeHeader(h) if h.value().is_empty() => {
                Some(h.name().into_owned())
            }
            _ => None,
        })
        .collect()
}

const MARKETING: [(&str, &str); 3] = [
    ("From", "Shop <news@shop.example>"),
    ("Message-Nature", "marketing"),
    ("Message-Campaign", "spring"),
];

#[tokio::test]
async fn a_message_gets_one_verifiable_token_for_its_recipient() {
    let dir = tempfile::tempdir().unwrap();
    let (addr, key) = sign_milter(dir.path(), &[]).await;
    let (replies, response) = message(addr, &["alice@example.net"], &MARKETING).await;
    assert!(replies[0].is_ok());
    let response = response.unwrap();
    assert!(matches!(response.final_action(), Action::Continue(_)));
    let token = inserted(&response, "Complaint-Token").expect("a token header");
    let keys: IssuerKeys = [(
        ESP.to_string(),
        [(key.kid().to_string(), key.verifying_key())].into(),
    )]
    .into();
    let claims = verify(&token, &keys, &VerifyOptions::now()).unwrap();
    assert_eq!(
        (
            claims.sub.as_str(),
            claims.cmp.as_deref(),
            claims.dom.as_deref()
        ),
        ("shop-1", Some("spring"), Some("shop.example"))
    );
    assert_eq!(
        claims.rcb,
        recipient_binding(&claims.jti, "alice@example.net")
    );
    assert!((claims.iat - unix_now()).abs() < 60);
    let mut gone = deleted(&response);
    gone.sort();
    assert_eq!(gone, ["Message-Campaign", "Message-Nature"]);
    let log = std::fs::read_to_string(dir.path().join("sent.log")).unwrap();
    assert_eq!(log, format!("{},alice@example.net\n", claims.jti));
}

#[tokio::test]
async fn a_second_recipient_is_deferred_with_452() {
    let dir = tempfile::tempdir().unwrap();
    let (addr, _) = sign_milter(dir.path(), &[]).await;
    let (replies, response) = message(addr, &["a@example.net", "b@example.net"], &MARKETING).await;
    assert!(replies[0].is_ok());
    let second = replies[1].as_ref().unwrap_err();
    assert!(
        second.contains("452") && second.contains("4.5.3"),
        "{second}"
    );
    assert!(inserted(&response.unwrap(), "Complaint-Token").is_some());
}

#[tokio::test]
async fn unsigned_mail_passes_or_is_refused_as_configured() {
    let dir = tempfile::tempdir().unwrap();
    let (addr, _) = sign_milter(dir.path(), &[]).await;
    let plain = [
        ("From", "news@shop.example"),
        ("Complaint-Token", "forged.by.app"),
    ];
    let (_, response) = message(addr, &["a@example.net"], &plain).await;
    let response = response.unwrap();
    assert!(matches!(response.final_action(), Action::Continue(_)));
    assert_eq!(inserted(&response, "Complaint-Token"), None);
    assert_eq!(
        deleted(&response),
        ["Complaint-Token"],
        "a token the ESP did not mint never leaves"
    );

    let dir = tempfile::tempdir().unwrap();
    let (addr, _) = sign_milter(dir.path(), &["--unsigned", "reject"]).await;
    let (_, response) = message(addr, &["a@example.net"], &plain).await;
    let action = format!("{:?}", response.unwrap().final_action());
    assert!(
        action.contains("Replycode") && action.contains("[5, 5, 0]"),
        "{action}"
    );
}

#[tokio::test]
async fn mail_the_recipients_policy_refuses_is_not_signed() {
    let dir = tempfile::tempdir().unwrap();
    let policies = dir.path().join("policies");
    let policy = r#"{"version": 1, "domain": "strict.example", "effective_from": "2020-01-01T00:00:00Z",
        "natures": {"accept": ["account"]}}"#;
    ricochet_policy::store::publish(&policies, policy).unwrap();
    let p = policies.display().to_string();
    let (addr, _) = sign_milter(dir.path(), &["--policies", &p, "--unsigned", "tempfail"]).await;
    let (_, response) = message(addr, &["a@strict.example"], &MARKETING).await;
    let action = format!("{:?}", response.unwrap().final_action());
    assert!(
        action.contains("[4, 5, 1]") && action.contains("nature-refused"),
        "{action}"
    );
    let (_, response) = message(addr, &["a@open.example"], &MARKETING).await;
    assert!(inserted(&response.unwrap(), "Complaint-Token").is_some());
}

/// Reads until the server closes the connection (or 5 s pass).
async fn closed(mut stream: TcpStream) -> bool {
    let mut buf = [0u8; 4096];
    let read = async {
        loop {
            match stream.read(&mut buf).await {
                Ok(0) | Err(_) => return,
                Ok(_) => {}
            }
        }
    };
    tokio::time::timeout(Duration::from_secs(5), read)
        .await
        .is_ok()
}

#[tokio::test]
async fn malformed_traffic_closes_only_its_own_connection() {
    use rand::{Rng, SeedableRng};
    let dir = tempfile::tempdir().unwrap();
    let (addr, _) = sign_milter(dir.path(), &[]).await;
    let mut rng = rand::rngs::StdRng::seed_from_u64(7);
    let mut garbage: Vec<Vec<u8>> = vec![
        vec![0xff, 0xff, 0xff, 0xff, b'O'], // a 4 GiB packet announced
        vec![0, 0, 0, 1, b'Z'],             // an unknown command
        vec![0, 0, 0, 5, b'O', 0, 0],       // a short option negotiation
        vec![0, 0, 0, 0],                   // an empty packet
    ];
    for _ in 0..200 {
        let len = rng.random_range(1..300);
        garbage.push((0..len).map(|_| rng.random()).collect());
    }
    // A session left open meanwhile is not disturbed.
    let stream = TcpStream::connect(addr).await.unwrap();
    let client = Client::new(OptNeg::default());
    let mut open = client.connect_via(stream.compat()).await.unwrap();
    for (i, bytes) in garbage.iter().enumerate() {
        let mut s = TcpStream::connect(addr).await.unwrap();
        let _ = s.write_all(bytes).await;
        // The first two are refused on their header alone: the milter must
        // close without waiting for more (or for the client to hang up).
        if i >= 2 {
            let _ = s.shutdown().await;
        }
        assert!(
            closed(s).await,
            "the milter closes a connection sending {bytes:?}"
        );
    }
    open.mail(b"<news@shop.example>".as_slice()).await.unwrap();
    let (replies, response) = message(addr, &["a@example.net"], &MARKETING).await;
    assert!(replies[0].is_ok() && inserted(&response.unwrap(), "Complaint-Token").is_some());
}
