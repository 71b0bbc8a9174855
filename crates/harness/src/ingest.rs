//! A mailbox provider's client of ingest: bearer tokens minted with the
//! provider's key, batches posted, ingest's answer read back.

use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use reqwest::StatusCode;
use ricochet_token::bearer::mint_bearer;
use ricochet_token::verify::unix_now;
use ricochet_token::SigningKey;
use serde_json::Value;

/// The audience of ingest's bearer tokens.
pub const AUDIENCE: &str = "ricochet-ingest";

/// What ingest answered: the status and the JSON body (`null` if none).
#[derive(Debug)]
pub struct Answer {
    /// HTTP status.
    pub status: StatusCode,
    /// The batch response on 200, the problem document otherwise.
    pub body: Value,
}

impl Answer {
    /// The body of a 200, or an error naming ingest's problem.
    pub fn ok(self) -> Result<Value> {
        if !self.status.is_success() {
            bail!(
                "ingest answered {}: {} ({})",
                self.status,
                self.body["reason"].as_str().unwrap_or("?"),
                self.body["detail"].as_str().unwrap_or("")
            );
        }
        Ok(self.body)
    }

    /// How many items the batch response says were accepted.
    pub fn accepted(&self) -> u64 {
        self.body["accepted"].as_u64().unwrap_or(0)
    }
}

/// One provider's connection to one ingest.
#[derive(Clone)]
pub struct IngestClient {
    http: reqwest::Client,
    base: String,
    provider: String,
    key: Arc<SigningKey>,
}

impl IngestClient {
    /// A client of the ingest at `base_url` for `provider`, signing with `key`
    /// (owned, or shared with other users of the key).
    pub fn new(base_url: &str, provider: &str, key: impl Into<Arc<SigningKey>>) -> IngestClient {
        IngestClient {
            http: reqwest::Client::new(),
            base: base_url.trim_end_matches('/').to_string(),
            provider: provider.to_string(),
            key: key.into(),
        }
    }

    /// `https://…/v1/…`: the URL of `path` on this ingest.
    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    /// An `Authorization` value valid from now for `lifetime_secs`.
    pub fn bearer(&self, lifetime_secs: i64) -> Result<String> {
        let token = mint_bearer(
            &self.key,
            &self.provider,
            AUDIENCE,
            unix_now(),
            lifetime_secs,
        )?;
        Ok(format!("Bearer {token}"))
    }

    /// POSTs `body` as JSON to `path` with a fresh bearer.
    pub async fn post_json(&self, path: &str, body: &Value) -> Result<Answer> {
        let bytes = serde_json::to_vec(body)?;
        self.post_raw(path, "application/json", bytes).await
    }

    /// POSTs `body` as JSON to `path` until ingest answers something else than
    /// 429 or 503 (back-pressure, a broker outage: a batch is idempotent by
    /// token id), or `patience` has passed.
    pub async fn post_json_retrying(
        &self,
        path: &str,
        body: &Value,
        patience: Duration,
    ) -> Result<Answer> {
        let deadline = Instant::now() + patience;
        loop {
            let answer = self.post_json(path, body).await?;
            let busy = matches!(answer.status.as_u16(), 429 | 503);
            if !busy || Instant::now() >= deadline {
                return Ok(answer);
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }

    /// POSTs `body` of `content_type` to `path` with a fresh bearer.
    pub async fn post_raw(&self, path: &str, content_type: &str, body: Vec<u8>) -> Result<Answer> {
        let bearer = self.bearer(120)?;
        post(&self.http, &self.url(path), &bearer, content_type, body).await
    }
}

/// POSTs a JSON body already serialized with a bearer minted beforehand
/// (load generators, which must not measure minting).
pub async fn post_body(
    http: &reqwest::Client,
    url: &str,
    bearer: &str,
    body: Vec<u8>,
) -> Result<Answer> {
    post(http, url, bearer, "application/json", body).await
}

async fn post(
    http: &reqwest::Client,
    url: &str,
    bearer: &str,
    content_type: &str,
    body: Vec<u8>,
) -> Result<Answer> {
    let resp = http
        .post(url)
        .header("authorization", bearer)
        .header("content-type", content_type)
        .body(body)
        .send()
        .await
        .with_context(|| format!("POST {url}"))?;
    let status = resp.status();
    let body = resp.json::<Value>().await.unwrap_or(Value::Null);
    Ok(Answer { status, body })
}
