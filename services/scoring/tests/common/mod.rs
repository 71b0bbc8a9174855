//! The ESP API over real HTTP for the scoring tests: a registry of ESPs with
//! fresh keys, the API on a loopback port, and signed GETs whose response
//! signature is checked against Ricochet's published JWKS.
// Each test binary uses a part of this module.
#![allow(dead_code)]

pub mod seed;

use std::collections::BTreeMap;
use std::sync::Arc;

use ricochet_registry::{add_participant, NewParticipant, ParticipantKind, RegistryHandle};
use ricochet_scoring::api::{router, ApiState, AUDIENCE, SIGNATURE_HEADER};
use ricochet_scoring::listed::Board;
use ricochet_scoring::provider_api::PROVIDER_AUDIENCE;
use ricochet_storage::ClickHouseConfig;
use ricochet_token::bearer::mint_bearer;
use ricochet_token::detached::verify_detached;
use ricochet_token::verify::unix_now;
use ricochet_token::{Algorithm, JwkSet, SigningKey, VerifyingKey};
use serde_json::Value;
use tokio::sync::watch;

/// A running ESP API and the keys of its ESPs.
pub struct EspApi {
    /// Base URL.
    pub url: String,
    /// Each registered ESP's key, by id.
    pub keys: BTreeMap<String, SigningKey>,
    /// Ricochet's keys, as an ESP pins them from the JWKS.
    pub ricochet_keys: BTreeMap<String, VerifyingKey>,
    /// HTTP client.
    pub http: reqwest::Client,
    _dir: tempfile::TempDir,
}

impl EspApi {
    /// Registers `esps` (alternating EdDSA and ES256 keys) and serves the API on `ch`.
    pub async fn start(ch: &ClickHouseConfig, esps: &[&str]) -> EspApi {
        Self::start_with(ch, esps, &[], None).await
    }

    /// Registers `esps` and `providers` (keys alternating EdDSA and ES256)
    /// and serves the API on `ch`, with the provider list from `board`.
    pub async fn start_with(
        ch: &ClickHouseConfig,
        esps: &[&str],
        providers: &[&str],
        board: Option<watch::Receiver<Arc<Board>>>,
    ) -> EspApi {
        let dir = tempfile::tempdir().unwrap();
        let registry = dir.path().join("registry.toml");
        let mut keys = BTreeMap::new();
        let participants = esps
            .iter()
            .map(|id| (ParticipantKind::Esp, id))
            .chain(providers.iter().map(|id| (ParticipantKind::Provider, id)));
        for (i, (kind, id)) in participants.enumerate() {
            let alg = if i % 2 == 0 {
                Algorithm::EdDSA
            } else {
                Algorithm::ES256
            };
            let key = SigningKey::generate(alg, format!("k{i}")).unwrap();
            add_participant(
                &registry,
                &NewParticipant {
                    kind,
                    id: id.to_string(),
                    name: id.to_string(),
                    keys: vec![key.public_jwk()],
                    domains: vec![],
                    webhook_url: None,
                },
            )
            .unwrap();
            keys.insert(id.to_string(), key);
        }
        let ricochet_key = SigningKey::generate(Algorithm::EdDSA, "ricochet-2026-11").unwrap();
        let mut state = ApiState::new(
            ch.client(),
            RegistryHandle::open(&registry).unwrap(),
            ricochet_key,
            ricochet_scoring::metrics::Metrics::new(),
            10,
        );
        if let Some(board) = board {
            state = state.with_board(board);
        }
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        tokio::spawn(async move { axum::serve(listener, router(state)).await });
        let http = reqwest::Client::new();
        let jwks: JwkSet = http
            .get(format!("{url}/.well-known/jwks.json"))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        EspApi {
            url,
            keys,
            ricochet_keys: jwks.verifying_keys().unwrap(),
            http,
            _dir: dir,
        }
    }

    /// GET `path` as `iss`, with a bearer signed by `key_of`'s key.
    pub async fn get_as(&self, path: &str, key_of: &str, iss: &str) -> reqwest::Response {
        let bearer = mint_bearer(&self.keys[key_of], iss, AUDIENCE, unix_now(), 60).unwrap();
        self.http
            .get(format!("{}{path}", self.url))
            .bearer_auth(bearer)
            .send()
            .await
            .unwrap()
    }

    /// GET `path` as provider `provider` with its own key, for the provider
    /// API's audience, with `headers` added.
    pub async fn get_provider(
        &self,
        path: &str,
        provider: &str,
        headers: &[(&str, &str)],
    ) -> reqwest::Response {
        self.provider_request(path, provider, provider, headers)
            .await
    }

    /// GET `path` on the provider API as `iss`, with a bearer signed by
    /// `key_of`'s key.
    pub async fn get_provider_as(&self, path: &str, key_of: &str, iss: &str) -> reqwest::Response {
        self.provider_request(path, key_of, iss, &[]).await
    }

    async fn provider_request(
        &self,
        path: &str,
        key_of: &str,
        iss: &str,
        headers: &[(&str, &str)],
    ) -> reqwest::Response {
        let key = &self.keys[key_of];
        let bearer = mint_bearer(key, iss, PROVIDER_AUDIENCE, unix_now(), 60).unwrap();
        let mut req = self
            .http
            .get(format!("{}{path}", self.url))
            .bearer_auth(bearer);
        for (name, value) in headers {
            req = req.header(*name, *value);
        }
        req.send().await.unwrap()
    }

    /// GET `path` as `esp` with its own key.
    pub async fn get(&self, path: &str, esp: &str) -> reqwest::Response {
        self.get_as(path, esp, esp).await
    }

    /// The JSON of a signed response, after checking its signature (and
    /// that a tampered body fails it).
    pub async fn verified_json(&self, resp: reqwest::Response) -> Value {
        let sig = resp.headers()[SIGNATURE_HEADER]
            .to_str()
            .unwrap()
            .to_string();
        let body = resp.bytes().await.unwrap();
        verify_detached(&sig, &body, &self.ricochet_keys).expect("the response signature verifies");
        let mut tampered = body.to_vec();
        tampered[5] ^= 1;
        assert!(verify_detached(&sig, &tampered, &self.ricochet_keys).is_err());
        serde_json::from_slice::<Value>(&body).unwrap()
    }

    /// Every offender row of `esp`, all pages.
    pub async fn offenders(&self, esp: &str) -> Vec<Value> {
        self.all_pages("/v1/offenders", esp, 2).await
    }

    /// Every item of a paged `route` as `esp`, `limit` per page, each page's
    /// signature checked.
    pub async fn all_pages(&self, route: &str, esp: &str, limit: u64) -> Vec<Value> {
        let mut since = 0;
        let mut out = vec![];
        loop {
            let resp = self
                .get(&format!("{route}?since={since}&limit={limit}"), esp)
                .await;
            assert_eq!(resp.status(), reqwest::StatusCode::OK);
            let page = self.verified_json(resp).await;
            let items = page["items"].as_array().unwrap().clone();
            if items.is_empty() {
                return out;
            }
            since = page["next"].as_u64().unwrap();
            out.extend(items);
        }
    }
}

/// The keys of sender-level offender rows.
pub fn sender_offenders(items: &[Value]) -> Vec<String> {
    let mut out: Vec<String> = items
        .iter()
        .filter(|i| i["level"] == "sender")
        .map(|i| i["sender"].as_str().unwrap().to_string())
        .collect();
    out.sort();
    out
}

/// Serves `app` on a loopback port; returns its base URL.
pub async fn serve(app: axum::Router) -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await });
    url
}

/// A registry in `dir` with one ESP, `id`, whose webhook is `hook`.
pub fn registry_with_webhook(dir: &std::path::Path, id: &str, hook: String) -> std::path::PathBuf {
    let registry = dir.join("registry.toml");
    let key = SigningKey::generate(Algorithm::EdDSA, format!("{id}-1")).unwrap();
    let esp = NewParticipant {
        kind: ParticipantKind::Esp,
        id: id.into(),
        name: id.into(),
        keys: vec![key.public_jwk()],
        domains: vec![],
        webhook_url: Some(hook),
    };
    add_participant(&registry, &esp).unwrap();
    registry
}

/// Asserts that the OpenAPI spec `spec` (under `schemas/openapi/`)
/// documents exactly `routes`.
pub fn assert_spec_matches(spec: &str, routes: &[(&str, &str)]) {
    let path = format!(
        "{}/../../schemas/openapi/{spec}",
        env!("CARGO_MANIFEST_DIR")
    );
    let spec_json: Value = serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
    assert_eq!(spec_json["openapi"], "3.1.0");
    let mut documented = std::collections::BTreeSet::new();
    for (p, ops) in spec_json["paths"].as_object().unwrap() {
        for m in ops.as_object().unwrap().keys() {
            documented.insert((m.clone(), p.clone()));
        }
    }
    let served: std::collections::BTreeSet<(String, String)> = routes
        .iter()
        .map(|(m, p)| (m.to_string(), p.to_string()))
        .collect();
    assert_eq!(
        documented, served,
        "schemas/openapi/{spec} and the served routes differ"
    );
}
