//! The registry's contents and the rules each entry must satisfy.

use std::collections::{BTreeMap, BTreeSet};
use std::ops::Range;
use std::path::Path;

use ricochet_token::claims::{is_participant_id, normalize_domain};
use ricochet_token::verify::missing_kid;
use ricochet_token::{Jwk, KeyLookup, TokenError, VerifyingKey};
use serde::Deserialize;
use toml::Spanned;

use crate::error::RegistryError;

/// Which side a participant is on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ParticipantKind {
    /// A mailbox provider (submits complaints).
    Provider,
    /// An email service provider (signs tokens, receives penalties).
    Esp,
}

impl ParticipantKind {
    /// The TOML table name (`provider` or `esp`).
    pub fn table(self) -> &'static str {
        match self {
            ParticipantKind::Provider => "provider",
            ParticipantKind::Esp => "esp",
        }
    }
}

/// What providers and ESPs have in common.
#[derive(Debug, Clone)]
pub struct Participant {
    /// Participant id: also the `iss` of its tokens and bearer JWTs.
    pub id: String,
    /// Display name.
    pub name: String,
    /// Verifying keys by `kid`.
    pub keys: BTreeMap<String, VerifyingKey>,
}

/// A mailbox provider.
#[derive(Debug, Clone)]
pub struct Provider {
    /// Id, name and keys.
    pub participant: Participant,
    /// Recipient domains this provider hosts (lower-case A-labels).
    pub domains: BTreeSet<String>,
}

impl Provider {
    /// True if this provider hosts `domain` (compared as a lower-case A-label).
    pub fn hosts(&self, domain: &str) -> bool {
        self.domains.contains(domain)
    }
}

/// An email service provider.
#[derive(Debug, Clone)]
pub struct Esp {
    /// Id, name and keys.
    pub participant: Participant,
    /// Where tier changes are pushed, if the ESP wants webhooks.
    pub webhook_url: Option<String>,
}

/// A loaded, validated registry.
#[derive(Debug, Clone, Default)]
pub struct Registry {
    providers: BTreeMap<String, Provider>,
    esps: BTreeMap<String, Esp>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct FileDoc {
    #[serde(default)]
    provider: Vec<Spanned<ProviderEntry>>,
    #[serde(default)]
    esp: Vec<Spanned<EspEntry>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ProviderEntry {
    id: Spanned<String>,
    name: String,
    #[serde(default)]
    domains: Vec<Spanned<String>>,
    #[serde(default)]
    keys: Vec<Spanned<Jwk>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct EspEntry {
    id: Spanned<String>,
    name: String,
    webhook_url: Option<Spanned<String>>,
    #[serde(default)]
    keys: Vec<Spanned<Jwk>>,
}

struct Checker<'a> {
    path: &'a Path,
    text: &'a str,
}

impl Checker<'_> {
    fn invalid(
        &self,
        span: Range<usize>,
        field: String,
        message: impl Into<String>,
    ) -> RegistryError {
        RegistryError::invalid((self.path, self.text), span.start, field, message)
    }

    fn participant(
        &self,
        table: &str,
        index: usize,
        id: &Spanned<String>,
        name: &str,
        keys: &[Spanned<Jwk>],
    ) -> Result<Participant, RegistryError> {
        let field = |f: &str| format!("{table}[{index}].{f}");
        if !is_participant_id(id.get_ref()) {
            return Err(self.invalid(
                id.span(),
                field("id"),
                format!(
                    "{:?} is not a participant id (1-63 lower-case letters, digits, '.' or '-')",
                    id.get_ref()
                ),
            ));
        }
        let mut parsed = BTreeMap::new();
        for (k, jwk) in keys.iter().enumerate() {
            let f = field(&format!("keys[{k}]"));
            if jwk.get_ref().d.is_some() {
                return Err(self.invalid(
                    jwk.span(),
                    f,
                    "contains private key material (d): register public keys only",
                ));
            }
            let key = VerifyingKey::from_jwk(jwk.get_ref())
                .map_err(|e| self.invalid(jwk.span(), f.clone(), e.to_string()))?;
            if parsed.insert(key.kid().to_string(), key).is_some() {
                return Err(self.invalid(
                    jwk.span(),
                    f,
                    format!("duplicate kid {:?}", jwk.get_ref().kid),
                ));
            }
        }
        Ok(Participant {
            id: id.get_ref().clone(),
            name: name.to_string(),
            keys: parsed,
        })
    }
}

impl Registry {
    /// Reads and validates a registry file.
    pub fn load(path: &Path) -> Result<Self, RegistryError> {
        let text = ricochet_reload::read(path)?;
        Self::parse(path, &text)
    }

    /// Validates registry text; `path` is used in error messages only.
    pub fn parse(path: &Path, text: &str) -> Result<Self, RegistryError> {
        let doc: FileDoc = toml::from_str(text).map_err(|e| RegistryError::syntax(path, e))?;
        let check = Checker { path, text };
        let mut reg = Registry::default();
        let mut seen: BTreeMap<String, &'static str> = BTreeMap::new();
        let mut claim_id = |id: &Spanned<String>, table: &'static str, index: usize| match seen
            .insert(id.get_ref().clone(), table)
        {
            Some(other) => Err(check.invalid(
                id.span(),
                format!("{table}[{index}].id"),
                format!("{:?} is already used by another {other}", id.get_ref()),
            )),
            None => Ok(()),
        };
        for (i, entry) in doc.provider.iter().enumerate() {
            let e = entry.get_ref();
            claim_id(&e.id, "provider", i)?;
            let participant = check.participant("provider", i, &e.id, &e.name, &e.keys)?;
            let mut domains = BTreeSet::new();
            for (d, domain) in e.domains.iter().enumerate() {
                let f = format!("provider[{i}].domains[{d}]");
                let ascii = normalize_domain(domain.get_ref())
                    .map_err(|err| check.invalid(domain.span(), f.clone(), err.to_string()))?;
                if ascii != *domain.get_ref() {
                    return Err(check.invalid(
                        domain.span(),
                        f,
                        format!("write it as {ascii:?} (lower-case A-label)"),
                    ));
                }
                domains.insert(ascii);
            }
            reg.providers.insert(
                participant.id.clone(),
                Provider {
                    participant,
                    domains,
                },
            );
        }
        for (i, entry) in doc.esp.iter().enumerate() {
            let e = entry.get_ref();
            claim_id(&e.id, "esp", i)?;
            let participant = check.participant("esp", i, &e.id, &e.name, &e.keys)?;
            if let Some(url) = &e.webhook_url {
                let u = url.get_ref();
                if !(u.starts_with("https://") || u.starts_with("http://")) {
                    return Err(check.invalid(
                        url.span(),
                        format!("esp[{i}].webhook_url"),
                        "expected an http(s) URL",
                    ));
                }
            }
            reg.esps.insert(
                participant.id.clone(),
                Esp {
                    participant,
                    webhook_url: e.webhook_url.as_ref().map(|u| u.get_ref().clone()),
                },
            );
        }
        Ok(reg)
    }

    /// A provider by id.
    pub fn provider(&self, id: &str) -> Option<&Provider> {
        self.providers.get(id)
    }

    /// An ESP by id.
    pub fn esp(&self, id: &str) -> Option<&Esp> {
        self.esps.get(id)
    }

    /// Every provider, by id.
    pub fn providers(&self) -> impl Iterator<Item = &Provider> {
        self.providers.values()
    }

    /// Every ESP, by id.
    pub fn esps(&self) -> impl Iterator<Item = &Esp> {
        self.esps.values()
    }

    /// Every participant, providers first.
    pub fn participants(&self) -> impl Iterator<Item = &Participant> {
        self.providers
            .values()
            .map(|p| &p.participant)
            .chain(self.esps.values().map(|e| &e.participant))
    }

    /// Key lookup among participants of one kind: ESPs for complaint tokens,
    /// providers or ESPs for API bearer tokens depending on the API.
    pub fn keys_of(&self, kind: ParticipantKind) -> RoleKeys<'_> {
        RoleKeys {
            registry: self,
            kind,
        }
    }
}

/// Keys of one kind of participant, for token verification (see [`Registry::keys_of`]).
#[derive(Debug, Clone, Copy)]
pub struct RoleKeys<'a> {
    registry: &'a Registry,
    kind: ParticipantKind,
}

impl<'a> RoleKeys<'a> {
    fn find(self, iss: &str, kid: &str) -> Result<&'a VerifyingKey, TokenError> {
        let participant = match self.kind {
            ParticipantKind::Provider => self.registry.providers.get(iss).map(|p| &p.participant),
            ParticipantKind::Esp => self.registry.esps.get(iss).map(|e| &e.participant),
        }
        .ok_or_else(|| TokenError::UnknownIssuer(iss.into()))?;
        participant.keys.get(kid).ok_or_else(|| {
            missing_kid(
                iss,
                kid,
                self.registry
                    .participants()
                    .map(|p| (p.id.as_str(), &p.keys)),
            )
        })
    }
}

impl KeyLookup for RoleKeys<'_> {
    fn key(&self, iss: &str, kid: &str) -> Result<&VerifyingKey, TokenError> {
        self.find(iss, kid)
    }
}

/// Complaint tokens are issued by ESPs: look keys up among ESPs.
impl KeyLookup for Registry {
    fn key(&self, iss: &str, kid: &str) -> Result<&VerifyingKey, TokenError> {
        self.keys_of(ParticipantKind::Esp).find(iss, kid)
    }
}
