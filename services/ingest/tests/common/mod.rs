//! A running ingest over real HTTP with a real registry file; accepted items go
//! to the real broker ([`World::on_kafka`]) or to memory ([`World::in_memory`]),
//! for the tests of HTTP behaviour that need no broker.

#![allow(dead_code)] // each test file uses part of this

use std::sync::Arc;

use clap::Parser;
use reqwest::StatusCode;
use ricochet_ingest::publish::MemoryPublisher;
use ricochet_ingest::{serve, AppState, IngestConfig};
use ricochet_integration_tests::unique;
use ricochet_kafka::{ensure_topics, KafkaConfig};
use ricochet_registry::{add_participant, NewParticipant, ParticipantKind};
use ricochet_token::bearer::mint_bearer;
use ricochet_token::{mint, Algorithm, Jwk, JwkSet, Nature, SigningKey, TokenRequest};
use serde_json::{json, Value};

/// The test clock: the `now` of the committed token vectors.
pub const NOW: i64 = 1_790_000_000;
/// The audience of ingest's bearer tokens.
pub const AUD: &str = "ricochet-ingest";

/// The committed token vectors.
pub fn vectors() -> Value {
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../schemas/token/test-vectors.json"
    );
    serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

/// Where a world's accepted items go.
pub enum Sink {
    /// The real broker, on topics of this world's own.
    Kafka(KafkaConfig),
    /// Memory: what was published is read back from the publisher.
    Memory(Arc<MemoryPublisher>),
}

/// A registry with the vector ESPs, one live ESP and two providers; a running ingest.
pub struct World {
    pub dir: tempfile::TempDir,
    pub url: String,
    pub http: reqwest::Client,
    pub provider_key: SigningKey,
    pub esp_key: SigningKey,
    pub sink: Sink,
    pub complaints_topic: String,
    pub deliveries_topic: String,
    pub stop: Option<tokio::sync::oneshot::Sender<()>>,
}

fn participant(
    kind: ParticipantKind,
    id: &str,
    keys: Vec<Jwk>,
    domains: &[&str],
) -> NewParticipant {
    NewParticipant {
        kind,
        id: id.into(),
        name: id.into(),
        keys,
        domains: domains.iter().map(|d| d.to_string()).collect(),
        webhook_url: None,
    }
}

/// Writes the registry: the vector ESPs, `esp-live.example` and two providers.
fn write_registry(registry: &std::path::Path, esp_key: &SigningKey, provider_key: &SigningKey) {
    for (iss, jwks) in vectors()["issuers"].as_object().unwrap() {
        let set: JwkSet = serde_json::from_value(jwks.clone()).unwrap();
        let esp = participant(ParticipantKind::Esp, iss, set.keys, &[]);
        add_participant(registry, &esp).unwrap();
    }
    let live = participant(
        ParticipantKind::Esp,
        "esp-live.example",
        vec![esp_key.public_jwk()],
        &[],
    );
    add_participant(registry, &live).unwrap();
    let domains = ["mail.example", "xn--bcher-kva.example"];
    let provider = participant(
        ParticipantKind::Provider,
        "mail.example",
        vec![provider_key.public_jwk()],
        &domains,
    );
    add_participant(registry, &provider).unwrap();
    let other = SigningKey::generate(Algorithm::EdDSA, "other-1").unwrap();
    let other = participant(
        ParticipantKind::Provider,
        "other.example",
        vec![other.public_jwk()],
        &["other.example"],
    );
    add_participant(registry, &other).unwrap();
}

impl World {
    /// Ingest publishing to the real broker on fresh topics.
    pub async fn on_kafka(kafka: KafkaConfig, extra_args: &[&str]) -> World {
        let topics = (unique("it-complaints"), unique("it-deliveries"));
        ensure_topics(&kafka, &[&topics.0, &topics.1])
            .await
            .unwrap();
        Self::start(Sink::Kafka(kafka), topics, extra_args).await
    }

    /// Ingest publishing to memory (no broker needed).
    pub async fn in_memory(extra_args: &[&str]) -> World {
        let topics = ("complaints.v1".to_string(), "deliveries.v1".to_string());
        let sink = Sink::Memory(Arc::new(MemoryPublisher::default()));
        Self::start(sink, topics, extra_args).await
    }

    async fn start(sink: Sink, topics: (String, String), extra_args: &[&str]) -> World {
        let dir = tempfile::tempdir().unwrap();
        let registry = dir.path().join("registry.toml");
        let esp_key = SigningKey::generate(Algorithm::EdDSA, "live-esp-1").unwrap();
        let provider_key = SigningKey::generate(Algorithm::ES256, "mail-1").unwrap();
        write_registry(&registry, &esp_key, &provider_key);
        let mut args = vec![
            "ricochet-ingest".to_string(),
            format!("--registry={}", registry.display()),
            format!("--complaints-topic={}", topics.0),
            format!("--deliveries-topic={}", topics.1),
        ];
        args.extend(extra_args.iter().map(|a| a.to_string()));
        let config = IngestConfig::parse_from(args);
        let clock = Arc::new(|| NOW * 1000);
        let state = match &sink {
            Sink::Kafka(kafka) => AppState::with_clock(config, kafka, clock),
            Sink::Memory(memory) => AppState::with_publisher(config, memory.clone(), clock),
        }
        .unwrap();
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        tokio::spawn(serve(state, listener, async move {
            let _ = stopped.await;
        }));
        World {
            dir,
            url,
            http: reqwest::Client::new(),
            provider_key,
            esp_key,
            sink,
            complaints_topic: topics.0,
            deliveries_topic: topics.1,
            stop: Some(stop),
        }
    }

    /// The broker settings of a world on Kafka.
    pub fn kafka(&self) -> &KafkaConfig {
        match &self.sink {
            Sink::Kafka(k) => k,
            Sink::Memory(_) => panic!("this world publishes to memory"),
        }
    }

    /// The payloads a world in memory published to `topic`, in order.
    pub fn published(&self, topic: &str) -> Vec<Value> {
        let Sink::Memory(memory) = &self.sink else {
            panic!("this world publishes to Kafka");
        };
        memory
            .records()
            .into_iter()
            .filter(|(t, _)| t == topic)
            .map(|(_, (_, payload))| serde_json::from_slice(&payload).unwrap())
            .collect()
    }

    /// A valid bearer token of the provider `mail.example`.
    pub fn bearer(&self) -> String {
        let token = mint_bearer(&self.provider_key, "mail.example", AUD, NOW, 120).unwrap();
        format!("Bearer {token}")
    }

    /// POSTs `body` as JSON with `auth`; the status, headers and JSON answer.
    pub async fn post_raw(
        &self,
        path: &str,
        auth: Option<&str>,
        body: Vec<u8>,
    ) -> (StatusCode, reqwest::header::HeaderMap, Value) {
        let mut req = self
            .http
            .post(format!("{}{path}", self.url))
            .header("content-type", "application/json")
            .body(body);
        if let Some(a) = auth {
            req = req.header("authorization", a);
        }
        let resp = req.send().await.unwrap();
        let status = resp.status();
        let headers = resp.headers().clone();
        let body = resp.json::<Value>().await.unwrap_or(Value::Null);
        (status, headers, body)
    }

    /// POSTs `body` as the provider `mail.example`.
    pub async fn post(&self, path: &str, body: &Value) -> (StatusCode, Value) {
        let bytes = serde_json::to_vec(body).unwrap();
        let (s, _, b) = self.post_raw(path, Some(&self.bearer()), bytes).await;
        (s, b)
    }

    /// A fresh valid token from the live ESP for a recipient at `domain`.
    pub fn token(&self, sender: &str, domain: &str) -> String {
        self.token_from(sender, domain, None)
    }

    /// A token whose message came From `dom` (the token's `dom` claim).
    pub fn token_from(&self, sender: &str, domain: &str, dom: Option<&str>) -> String {
        let recipient = format!("u{}@{domain}", unique("x"));
        let mut req = TokenRequest::new(
            "esp-live.example",
            sender,
            Nature::Marketing,
            &recipient,
            NOW - 600,
        );
        req.dom = dom.map(String::from);
        mint(&self.esp_key, &req).unwrap().0
    }

    /// Replaces the registry file as an operator would (write aside, rename).
    pub fn rewrite_registry(&self, edit: impl Fn(&str) -> String) {
        let path = self.dir.path().join("registry.toml");
        let text = std::fs::read_to_string(&path).unwrap();
        let tmp = self.dir.path().join("registry.toml.new");
        std::fs::write(&tmp, edit(&text)).unwrap();
        std::fs::rename(&tmp, &path).unwrap();
    }
}

impl Drop for World {
    fn drop(&mut self) {
        if let Some(s) = self.stop.take() {
            let _ = s.send(());
        }
    }
}

/// One complaint item of a request body.
pub fn complaint(token: &str, code: &str) -> Value {
    json!({"token": token, "code": code, "reported_at": "2026-09-21T14:13:00Z"})
}

/// The JSON Schema of a Kafka record (`complaints.v1`, `deliveries.v1`).
pub fn schema(name: &str) -> jsonschema::Validator {
    let path = format!(
        "{}/../../schemas/kafka/{name}.schema.json",
        env!("CARGO_MANIFEST_DIR")
    );
    let s: Value = serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
    jsonschema::validator_for(&s).unwrap()
}
