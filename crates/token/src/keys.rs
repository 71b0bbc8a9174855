//! Signing and verifying keys, their generation, and their JWK / JWKS (RFC 7517) form.

use std::collections::BTreeMap;
use std::fmt;

use ring::rand::{SecureRandom, SystemRandom};
use ring::signature::{
    EcdsaKeyPair, Ed25519KeyPair, KeyPair, UnparsedPublicKey, ECDSA_P256_SHA256_FIXED,
    ECDSA_P256_SHA256_FIXED_SIGNING,
};
use serde::{Deserialize, Serialize};
use thiserror::Error;

use crate::ed25519;
use crate::jws::{b64_decode, b64_encode};

/// The two signature algorithms a complaint token (or an API bearer token) may use.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Algorithm {
    /// Ed25519 (RFC 8037): the default.
    EdDSA,
    /// ECDSA P-256 with SHA-256, for ESPs whose HSM or KMS lacks Ed25519.
    ES256,
}

impl Algorithm {
    /// The JOSE `alg` name.
    pub fn as_str(self) -> &'static str {
        match self {
            Algorithm::EdDSA => "EdDSA",
            Algorithm::ES256 => "ES256",
        }
    }

    /// Parses a JOSE `alg` name; anything but the two allowed algorithms is `None`.
    pub fn from_jose(name: &str) -> Option<Self> {
        match name {
            "EdDSA" => Some(Algorithm::EdDSA),
            "ES256" => Some(Algorithm::ES256),
            _ => None,
        }
    }
}

impl fmt::Display for Algorithm {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl std::str::FromStr for Algorithm {
    type Err = KeyError;
    fn from_str(s: &str) -> Result<Self, KeyError> {
        match s.to_ascii_lowercase().as_str() {
            "eddsa" | "ed25519" => Ok(Algorithm::EdDSA),
            "es256" | "p-256" | "p256" => Ok(Algorithm::ES256),
            _ => Err(KeyError::Unsupported(format!(
                "algorithm {s:?} (use EdDSA or ES256)"
            ))),
        }
    }
}

/// Why a key could not be generated, read or used.
#[derive(Debug, Error)]
pub enum KeyError {
    /// Key type, curve or algorithm outside `OKP/Ed25519` and `EC/P-256`.
    #[error("unsupported key: {0}")]
    Unsupported(String),
    /// A JWK member is missing or has the wrong length or encoding.
    #[error("invalid JWK {kid:?}: {why}")]
    InvalidJwk { kid: String, why: String },
    /// A public key set carries private key material (`d`): refuse it rather than spread a secret.
    #[error("JWK {0:?} in a public key set contains private key material")]
    PrivateMaterialInPublicSet(String),
    /// Two keys in one set share a `kid`.
    #[error("duplicate kid {0:?} in key set")]
    DuplicateKid(String),
    /// The JSON text is not a JWK or JWKS.
    #[error("not a JWK/JWKS document: {0}")]
    Json(#[from] serde_json::Error),
    /// The system random generator or the signer failed.
    #[error("cryptographic operation failed: {0}")]
    Crypto(&'static str),
}

/// One JSON Web Key (RFC 7517), public or private, as exchanged between participants.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Jwk {
    /// Key type: `OKP` (Ed25519) or `EC` (P-256).
    pub kty: String,
    /// Curve: `Ed25519` or `P-256`.
    pub crv: String,
    /// Key id, unique within the owner's key set.
    pub kid: String,
    /// Algorithm the key is for.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub alg: Option<String>,
    /// Intended use; always `sig` here.
    #[serde(default, rename = "use", skip_serializing_if = "Option::is_none")]
    pub use_: Option<String>,
    /// Public key (Ed25519) or x coordinate (P-256), base64url.
    pub x: String,
    /// y coordinate (P-256 only), base64url.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub y: Option<String>,
    /// Private key (seed or scalar), base64url; present only in a private JWK.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub d: Option<String>,
}

impl Jwk {
    /// The algorithm this key's type and curve imply (and `alg`, when present, must agree).
    pub fn algorithm(&self) -> Result<Algorithm, KeyError> {
        let alg = match (self.kty.as_str(), self.crv.as_str()) {
            ("OKP", "Ed25519") => Algorithm::EdDSA,
            ("EC", "P-256") => Algorithm::ES256,
            (kty, crv) => {
                return Err(KeyError::Unsupported(format!(
                    "kty {kty:?} crv {crv:?} (use OKP/Ed25519 or EC/P-256)"
                )))
            }
        };
        match self.alg.as_deref() {
            Some(a) if a != alg.as_str() => Err(self.invalid(format!(
                "alg {a:?} does not match {} {}",
                self.kty, self.crv
            ))),
            _ => Ok(alg),
        }
    }

    /// This key without its private part.
    pub fn to_public(&self) -> Jwk {
        Jwk {
            d: None,
            ..self.clone()
        }
    }

    fn invalid(&self, why: String) -> KeyError {
        KeyError::InvalidJwk {
            kid: self.kid.clone(),
            why,
        }
    }

    fn member(&self, name: &str, value: Option<&str>, len: usize) -> Result<Vec<u8>, KeyError> {
        let value = value.ok_or_else(|| self.invalid(format!("missing {name}")))?;
        let bytes = b64_decode(value, name).map_err(|e| self.invalid(e.to_string()))?;
        if bytes.len() != len {
            return Err(self.invalid(format!("{name} is {} bytes, expected {len}", bytes.len())));
        }
        Ok(bytes)
    }

    /// The public key bytes in ring's format (Ed25519 raw, or an uncompressed P-256 point).
    fn public_bytes(&self) -> Result<Vec<u8>, KeyError> {
        match self.algorithm()? {
            Algorithm::EdDSA => self.member("x", Some(&self.x), 32),
            Algorithm::ES256 => {
                let mut point = vec![0x04];
                point.extend(self.member("x", Some(&self.x), 32)?);
                point.extend(self.member("y", self.y.as_deref(), 32)?);
                Ok(point)
            }
        }
    }
}

/// A JWK Set: what an ESP publishes and the registry pins.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct JwkSet {
    /// The keys, each with a distinct `kid`.
    pub keys: Vec<Jwk>,
}

impl JwkSet {
    /// Parses a JWKS document, or a single JWK as a set of one.
    pub fn from_json(text: &str) -> Result<Self, KeyError> {
        let value: serde_json::Value = serde_json::from_str(text)?;
        if value.get("keys").is_some() {
            Ok(serde_json::from_value(value)?)
        } else {
            Ok(JwkSet {
                keys: vec![serde_json::from_value(value)?],
            })
        }
    }

    /// Parses every key for verification, refusing private material and duplicate kids.
    pub fn verifying_keys(&self) -> Result<BTreeMap<String, VerifyingKey>, KeyError> {
        let mut out = BTreeMap::new();
        for jwk in &self.keys {
            if jwk.d.is_some() {
                return Err(KeyError::PrivateMaterialInPublicSet(jwk.kid.clone()));
            }
            let key = VerifyingKey::from_jwk(jwk)?;
            if out.insert(jwk.kid.clone(), key).is_some() {
                return Err(KeyError::DuplicateKid(jwk.kid.clone()));
            }
        }
        Ok(out)
    }
}

/// A public key able to check signatures.
#[derive(Clone)]
pub struct VerifyingKey {
    kid: String,
    alg: Algorithm,
    public: Vec<u8>,
    /// The Ed25519 key checked against Ricochet's rule (`None` for P-256).
    ed25519: Option<ed25519::PublicKey>,
}

impl fmt::Debug for VerifyingKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("VerifyingKey")
            .field("kid", &self.kid)
            .field("alg", &self.alg)
            .finish()
    }
}

impl VerifyingKey {
    /// Reads a public JWK (any `d` member is ignored).
    pub fn from_jwk(jwk: &Jwk) -> Result<Self, KeyError> {
        if jwk.kid.is_empty() {
            return Err(jwk.invalid("empty kid".into()));
        }
        let alg = jwk.algorithm()?;
        let public = jwk.public_bytes()?;
        let ed25519 = match alg {
            Algorithm::EdDSA => Some(
                ed25519::check_public_key(&public)
                    .map_err(|why| jwk.invalid(format!("x is {why}")))?,
            ),
            Algorithm::ES256 => None,
        };
        Ok(VerifyingKey {
            kid: jwk.kid.clone(),
            alg,
            public,
            ed25519,
        })
    }

    /// The key id.
    pub fn kid(&self) -> &str {
        &self.kid
    }

    /// The algorithm this key verifies.
    pub fn algorithm(&self) -> Algorithm {
        self.alg
    }

    /// The raw public key: 32 bytes (Ed25519) or the uncompressed point.
    pub(crate) fn public_bytes(&self) -> &[u8] {
        &self.public
    }

    /// True if `signature` is a valid signature of `message` by this key
    /// (Ed25519 by Ricochet's rule, see [`crate::ed25519`]; P-256 by ring).
    pub fn verify(&self, message: &[u8], signature: &[u8]) -> bool {
        match &self.ed25519 {
            Some(key) => ed25519::verify_one(&ed25519::Job {
                key,
                message,
                signature,
            }),
            None => UnparsedPublicKey::new(&ECDSA_P256_SHA256_FIXED, &self.public)
                .verify(message, signature)
                .is_ok(),
        }
    }

    /// The Ed25519 key, for batch verification (`None` for P-256).
    pub(crate) fn ed25519(&self) -> Option<&ed25519::PublicKey> {
        self.ed25519.as_ref()
    }
}

enum Pair {
    Ed25519(Ed25519KeyPair),
    P256(EcdsaKeyPair),
}

/// A private key able to sign tokens; never printed by `Debug`.
pub struct SigningKey {
    kid: String,
    pair: Pair,
    rng: SystemRandom,
    /// Raw private key (Ed25519 seed or P-256 scalar), kept only to write the private JWK.
    secret: Vec<u8>,
}

impl fmt::Debug for SigningKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SigningKey")
            .field("kid", &self.kid)
            .field("alg", &self.algorithm())
            .finish_non_exhaustive()
    }
}

impl SigningKey {
    /// Generates a new key pair with the system's secure random generator.
    pub fn generate(alg: Algorithm, kid: impl Into<String>) -> Result<Self, KeyError> {
        let rng = SystemRandom::new();
        let kid = kid.into();
        match alg {
            Algorithm::EdDSA => {
                let mut seed = [0u8; 32];
                rng.fill(&mut seed)
                    .map_err(|_| KeyError::Crypto("random"))?;
                let pair = Ed25519KeyPair::from_seed_unchecked(&seed)
                    .map_err(|_| KeyError::Crypto("ed25519 key from seed"))?;
                Ok(SigningKey {
                    kid,
                    pair: Pair::Ed25519(pair),
                    rng,
                    secret: seed.to_vec(),
                })
            }
            Algorithm::ES256 => {
                let pkcs8 = EcdsaKeyPair::generate_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, &rng)
                    .map_err(|_| KeyError::Crypto("p-256 key generation"))?;
                let secret = p256_scalar_from_pkcs8(pkcs8.as_ref())
                    .ok_or(KeyError::Crypto("p-256 pkcs8 layout"))?
                    .to_vec();
                let pair = EcdsaKeyPair::from_pkcs8(
                    &ECDSA_P256_SHA256_FIXED_SIGNING,
                    pkcs8.as_ref(),
                    &rng,
                )
                .map_err(|_| KeyError::Crypto("p-256 key from pkcs8"))?;
                Ok(SigningKey {
                    kid,
                    pair: Pair::P256(pair),
                    rng,
                    secret,
                })
            }
        }
    }

    /// Reads a private JWK; the public part must match the private part.
    pub fn from_jwk(jwk: &Jwk) -> Result<Self, KeyError> {
        let alg = jwk.algorithm()?;
        let public = jwk.public_bytes()?;
        let secret = jwk.member("d", jwk.d.as_deref(), 32)?;
        let rng = SystemRandom::new();
        let pair = match alg {
            Algorithm::EdDSA => Pair::Ed25519(
                Ed25519KeyPair::from_seed_and_public_key(&secret, &public)
                    .map_err(|e| jwk.invalid(format!("d and x do not form a key pair: {e}")))?,
            ),
            Algorithm::ES256 => Pair::P256(
                EcdsaKeyPair::from_private_key_and_public_key(
                    &ECDSA_P256_SHA256_FIXED_SIGNING,
                    &secret,
                    &public,
                    &rng,
                )
                .map_err(|e| jwk.invalid(format!("d, x and y do not form a key pair: {e}")))?,
            ),
        };
        Ok(SigningKey {
            kid: jwk.kid.clone(),
            pair,
            rng,
            secret,
        })
    }

    /// The key id.
    pub fn kid(&self) -> &str {
        &self.kid
    }

    /// The algorithm this key signs with.
    pub fn algorithm(&self) -> Algorithm {
        match self.pair {
            Pair::Ed25519(_) => Algorithm::EdDSA,
            Pair::P256(_) => Algorithm::ES256,
        }
    }

    /// Signs `message`, returning the JWS signature bytes (raw `r || s` for ES256).
    pub fn sign(&self, message: &[u8]) -> Result<Vec<u8>, KeyError> {
        match &self.pair {
            Pair::Ed25519(p) => Ok(p.sign(message).as_ref().to_vec()),
            Pair::P256(p) => p
                .sign(&self.rng, message)
                .map(|s| s.as_ref().to_vec())
                .map_err(|_| KeyError::Crypto("p-256 signing")),
        }
    }

    /// The public JWK of this key.
    pub fn public_jwk(&self) -> Jwk {
        let (kty, crv, x, y) = match &self.pair {
            Pair::Ed25519(p) => ("OKP", "Ed25519", b64_encode(p.public_key().as_ref()), None),
            Pair::P256(p) => {
                let point = p.public_key().as_ref();
                (
                    "EC",
                    "P-256",
                    b64_encode(&point[1..33]),
                    Some(b64_encode(&point[33..65])),
                )
            }
        };
        Jwk {
            kty: kty.into(),
            crv: crv.into(),
            kid: self.kid.clone(),
            alg: Some(self.algorithm().as_str().into()),
            use_: Some("sig".into()),
            x,
            y,
            d: None,
        }
    }

    /// The private JWK of this key (contains the secret: store it with 0600 permissions).
    pub fn private_jwk(&self) -> Jwk {
        Jwk {
            d: Some(b64_encode(&self.secret)),
            ..self.public_jwk()
        }
    }

    /// The key as a PKCS#8 v2 document (private and public key), the form
    /// `jsonwebtoken` signs with; laid out as ring writes it.
    pub(crate) fn pkcs8(&self) -> Vec<u8> {
        const ED25519: [u8; 16] = [
            0x30, 0x51, 0x02, 0x01, 0x01, 0x30, 0x05, 0x06, 0x03, 0x2b, 0x65, 0x70, 0x04, 0x22,
            0x04, 0x20,
        ];
        const P256: [u8; 36] = [
            0x30, 0x81, 0x87, 0x02, 0x01, 0x00, 0x30, 0x13, 0x06, 0x07, 0x2a, 0x86, 0x48, 0xce,
            0x3d, 0x02, 0x01, 0x06, 0x08, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x03, 0x01, 0x07, 0x04,
            0x6d, 0x30, 0x6b, 0x02, 0x01, 0x01, 0x04, 0x20,
        ];
        let (prefix, public, tag): (&[u8], &[u8], &[u8]) = match &self.pair {
            Pair::Ed25519(p) => (&ED25519, p.public_key().as_ref(), &[0x81, 0x21, 0x00]),
            Pair::P256(p) => (
                &P256,
                p.public_key().as_ref(),
                &[0xa1, 0x44, 0x03, 0x42, 0x00],
            ),
        };
        [prefix, &self.secret, tag, public].concat()
    }

    /// The matching verifying key.
    pub fn verifying_key(&self) -> VerifyingKey {
        VerifyingKey::from_jwk(&self.public_jwk()).expect("own public JWK is always valid")
    }
}

/// Extracts the 32-byte private scalar from a P-256 PKCS#8 document: ring does not
/// expose it, and the private JWK needs it. Finds the RFC 5915 `ECPrivateKey`
/// prefix (`INTEGER 1`, `OCTET STRING` of 32 bytes).
fn p256_scalar_from_pkcs8(doc: &[u8]) -> Option<&[u8]> {
    const PREFIX: [u8; 5] = [0x02, 0x01, 0x01, 0x04, 0x20];
    let at = doc.windows(PREFIX.len()).position(|w| w == PREFIX)? + PREFIX.len();
    doc.get(at..at + 32)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pkcs8_documents_are_laid_out_as_ring_writes_them() {
        let rng = SystemRandom::new();
        let doc = Ed25519KeyPair::generate_pkcs8(&rng).unwrap();
        let pair = Ed25519KeyPair::from_pkcs8(doc.as_ref()).unwrap();
        let key = SigningKey {
            kid: "k".into(),
            pair: Pair::Ed25519(pair),
            rng: SystemRandom::new(),
            secret: doc.as_ref()[16..48].to_vec(),
        };
        assert_eq!(key.pkcs8(), doc.as_ref());
        let doc = EcdsaKeyPair::generate_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, &rng).unwrap();
        let pair =
            EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, doc.as_ref(), &rng).unwrap();
        let key = SigningKey {
            kid: "k".into(),
            pair: Pair::P256(pair),
            rng: SystemRandom::new(),
            secret: p256_scalar_from_pkcs8(doc.as_ref()).unwrap().to_vec(),
        };
        assert_eq!(key.pkcs8(), doc.as_ref());
    }

    #[test]
    fn private_jwk_round_trips_and_signs_the_same_key() {
        for alg in [Algorithm::EdDSA, Algorithm::ES256] {
            let key = SigningKey::generate(alg, "k1").unwrap();
            let again = SigningKey::from_jwk(&key.private_jwk()).unwrap();
            assert_eq!(again.public_jwk(), key.public_jwk());
            let sig = again.sign(b"hello").unwrap();
            assert!(key.verifying_key().verify(b"hello", &sig));
            assert!(!key.verifying_key().verify(b"hellO", &sig));
        }
    }

    #[test]
    fn public_set_refuses_private_material_and_duplicate_kids() {
        let key = SigningKey::generate(Algorithm::EdDSA, "k1").unwrap();
        let leaked = JwkSet {
            keys: vec![key.private_jwk()],
        };
        assert!(matches!(
            leaked.verifying_keys(),
            Err(KeyError::PrivateMaterialInPublicSet(_))
        ));
        let dup = JwkSet {
            keys: vec![key.public_jwk(), key.public_jwk()],
        };
        assert!(matches!(
            dup.verifying_keys(),
            Err(KeyError::DuplicateKid(_))
        ));
    }

    #[test]
    fn jwk_alg_must_agree_with_key_type() {
        let mut jwk = SigningKey::generate(Algorithm::EdDSA, "k1")
            .unwrap()
            .public_jwk();
        jwk.alg = Some("ES256".into());
        assert!(VerifyingKey::from_jwk(&jwk).is_err());
        jwk.alg = None;
        jwk.kty = "RSA".into();
        assert!(matches!(
            VerifyingKey::from_jwk(&jwk),
            Err(KeyError::Unsupported(_))
        ));
    }

    #[test]
    fn mismatched_private_and_public_parts_are_refused() {
        for alg in [Algorithm::EdDSA, Algorithm::ES256] {
            let a = SigningKey::generate(alg, "a").unwrap().private_jwk();
            let b = SigningKey::generate(alg, "b").unwrap().private_jwk();
            let frankenkey = Jwk { d: b.d, ..a };
            assert!(SigningKey::from_jwk(&frankenkey).is_err());
        }
    }
}
