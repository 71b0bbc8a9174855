//! Vectors of times, claims and framing.

use ricochet_token::mint::{sign_claims, sign_raw};
use serde_json::{json, Value};

use super::{b64, hdr, with, without, Catalogue, Ctx, DAY, NOW};

/// Times.
pub(super) fn time_vectors(ctx: &Ctx, cat: &mut Catalogue) {
    let Ctx { a_ed, claims, .. } = ctx;
    // Time.
    let c = with(
        with(claims.clone(), "iat", json!(NOW - 20 * DAY)),
        "exp",
        json!(NOW - 6 * DAY),
    );
    cat.add(
        "expired",
        "expired",
        None,
        sign_claims(a_ed, &c).unwrap(),
        "exp six days ago",
    );
    let c = with(
        with(claims.clone(), "iat", json!(NOW + 3600)),
        "exp",
        json!(NOW + 3600 + DAY),
    );
    cat.add(
        "not-yet-valid",
        "not-yet-valid",
        None,
        sign_claims(a_ed, &c).unwrap(),
        "iat one hour in the future, beyond the 60 s skew",
    );
    let c = with(claims.clone(), "exp", json!(NOW - 3600 + 61 * DAY));
    cat.add(
        "lifetime-61-days",
        "lifetime-too-long",
        None,
        sign_claims(a_ed, &c).unwrap(),
        "exp - iat is 61 days, more than the 60 allowed",
    );
    let c = with(claims.clone(), "exp", json!(NOW - 3600));
    cat.add(
        "exp-equals-iat",
        "invalid-claim",
        Some("exp"),
        sign_claims(a_ed, &c).unwrap(),
        "exp not after iat",
    );
}

/// Claims.
pub(super) fn claims_vectors(ctx: &Ctx, cat: &mut Catalogue) {
    let Ctx { a_ed, claims, .. } = ctx;
    // Claims.
    cat.add(
        "bad-nature",
        "bad-nature",
        None,
        sign_claims(a_ed, &with(claims.clone(), "nat", json!("spam"))).unwrap(),
        "nat is not a declared nature",
    );
    cat.add(
        "nature-wrong-case",
        "bad-nature",
        None,
        sign_claims(a_ed, &with(claims.clone(), "nat", json!("Marketing"))).unwrap(),
        "natures are lower-case",
    );
    for claim in ["iss", "sub", "jti", "iat", "exp", "nat", "rdm", "rcb"] {
        cat.add(
            &format!("missing-{claim}"),
            "missing-claim",
            Some(claim),
            sign_claims(a_ed, &without(claims.clone(), claim)).unwrap(),
            &format!("claims without {claim}"),
        );
    }
    let bad: [(&str, &str, Value, &str); 12] = [
        ("jti-too-short", "jti", json!("Zm9vYmFy"), "48-bit jti"),
        (
            "jti-not-base64url",
            "jti",
            json!("AAAAAAAAAAAAAAAAAAAAA+"),
            "jti with '+'",
        ),
        (
            "rdm-upper-case",
            "rdm",
            json!("Mail.Example"),
            "recipient domain not lower-case",
        ),
        (
            "rdm-u-label",
            "rdm",
            json!("bücher.example"),
            "recipient domain not in A-label form",
        ),
        (
            "rdm-single-label",
            "rdm",
            json!("localhost"),
            "recipient domain with one label",
        ),
        (
            "dom-upper-case",
            "dom",
            json!("Shop.Example"),
            "From domain not lower-case",
        ),
        (
            "dom-u-label",
            "dom",
            json!("bücher.example"),
            "From domain not in A-label form",
        ),
        (
            "dom-single-label",
            "dom",
            json!("localhost"),
            "From domain with one label",
        ),
        (
            "dom-not-a-string",
            "dom",
            json!(42),
            "From domain as a number",
        ),
        (
            "rcb-wrong-length",
            "rcb",
            json!("AAAA"),
            "binding is not 16 bytes",
        ),
        ("iat-string", "iat", json!("1789996400"), "iat as a string"),
        (
            "sub-with-slash",
            "sub",
            json!("acct/1042"),
            "sub outside its character set",
        ),
    ];
    for (name, claim, value, why) in bad {
        cat.add(
            name,
            "invalid-claim",
            Some(claim),
            sign_claims(a_ed, &with(claims.clone(), claim, value)).unwrap(),
            why,
        );
    }
    issuer_and_duplicate_vectors(ctx, cat);
}

/// An issuer in the wrong case and duplicate claims.
fn issuer_and_duplicate_vectors(ctx: &Ctx, cat: &mut Catalogue) {
    let Ctx { a_ed, claims, .. } = ctx;
    let c = with(claims.clone(), "iss", json!("ESP-A.example"));
    cat.add(
        "iss-upper-case",
        "unknown-issuer",
        None,
        sign_claims(a_ed, &c).unwrap(),
        "issuer ids are matched exactly: upper case names no registered ESP",
    );
    let dup = claims
        .to_string()
        .replacen('{', "{\"sub\":\"acct-0001\",", 1);
    cat.add(
        "duplicate-claim",
        "malformed",
        None,
        sign_raw(a_ed, &hdr("EdDSA", a_ed.kid()).to_string(), &dup).unwrap(),
        "sub appears twice; readers could disagree on which counts",
    );
}

/// Framing.
pub(super) fn framing_vectors(ctx: &Ctx, cat: &mut Catalogue) {
    let Ctx {
        a_ed, claims, good, ..
    } = ctx;
    // Framing.
    let c = with(claims.clone(), "pad", json!("x".repeat(800)));
    cat.add(
        "oversize",
        "oversize",
        None,
        sign_claims(a_ed, &c).unwrap(),
        "validly signed but longer than one header line allows",
    );
    let mid = good.len() / 2;
    cat.add(
        "non-ascii",
        "non-ascii",
        None,
        format!("{}é{}", &good[..mid], &good[mid..]),
        "a non-ASCII character inside the token",
    );
    cat.add(
        "trailing-segment",
        "malformed",
        None,
        format!("{good}.AAAA"),
        "a fourth segment after the signature",
    );
    cat.add(
        "trailing-text",
        "malformed",
        None,
        format!("{good} trailing"),
        "text after the token on the same line",
    );
    cat.add(
        "trailing-newline",
        "malformed",
        None,
        format!("{good}\n"),
        "a newline after the token",
    );
    cat.add(
        "two-segments",
        "malformed",
        None,
        good.rsplit_once('.').unwrap().0.to_string(),
        "signature segment missing",
    );
    cat.add("empty", "malformed", None, String::new(), "empty string");
    cat.add(
        "header-not-base64url",
        "malformed",
        None,
        format!("!!!{}", &good[3..]),
        "header segment is not base64url",
    );
    cat.add(
        "padded-base64",
        "malformed",
        None,
        good.replacen('.', "==.", 1),
        "base64 padding is not allowed in JWS",
    );
    cat.add(
        "header-not-json",
        "malformed",
        None,
        format!("{}.{}", b64(b"not json"), good.split_once('.').unwrap().1),
        "header decodes to non-JSON",
    );
    cat.add(
        "claims-not-object",
        "malformed",
        None,
        sign_raw(a_ed, &hdr("EdDSA", a_ed.kid()).to_string(), "[1,2,3]").unwrap(),
        "claims are a JSON array",
    );
}
