//! ARF reports shaped like RFC 5965's examples and the big loops' samples
//! (tests/arf/), malformed ones included: what each yields.

mod arf_corpus;

use arf_corpus::report;
use ricochet_ingest::arf::{parse, to_complaint, ArfError};

/// A stand-in token: long enough to be folded and wrapped like a real one.
fn token() -> String {
    format!(
        "eyJhbGciOiJFZERTQSJ9.{}.{}",
        "x".repeat(200),
        "s".repeat(86)
    )
}

#[test]
fn every_report_of_the_corpus_gives_its_complaint_or_its_reason() {
    let t = token();
    // file, feedback type, code (or the per-item rejection reason)
    let cases = [
        ("rfc5965-simple.eml", "abuse", Ok("unwanted")),
        ("rfc5965-headers-only-folded.eml", "abuse", Ok("unwanted")),
        ("jmrp-shaped-base64.eml", "abuse", Ok("unwanted")),
        ("yahoo-shaped-quoted-printable.eml", "abuse", Ok("unwanted")),
        ("nested-forwarded-fraud.eml", "fraud", Ok("phishing")),
        ("not-spam.eml", "not-spam", Ok("not-spam")),
        ("no-token.eml", "abuse", Err("no-token")),
        (
            "auth-failure.eml",
            "auth-failure",
            Err("unsupported-feedback-type"),
        ),
    ];
    for (file, feedback_type, expected) in cases {
        let r = parse(&report(file, &t)).unwrap_or_else(|e| panic!("{file}: {e}"));
        assert_eq!(r.feedback_type, feedback_type, "{file}");
        match (to_complaint(&r, 1_790_000_000_000), expected) {
            (Ok(item), Ok(code)) => {
                assert_eq!(item.token, t, "{file}: the token, unfolded and decoded");
                assert_eq!(item.code, code, "{file}");
            }
            (Err(rej), Err(reason)) => assert_eq!(rej.reason, reason, "{file}"),
            (got, want) => panic!("{file}: got {got:?}, want {want:?}"),
        }
    }
}

#[test]
fn arrival_date_becomes_reported_at_and_never_lies_in_the_future() {
    let r = parse(&report("rfc5965-headers-only-folded.eml", &token())).unwrap();
    // Arrival-Date: Thu, 8 Mar 2026 14:00:00 EDT = 18:00:00 UTC.
    assert_eq!(r.arrival_ms, Some(1_772_992_800_000));
    let item = to_complaint(&r, 1_790_000_000_000).unwrap();
    assert_eq!(item.reported_at, "2026-03-08T18:00:00Z");
    // Received before it arrived? Then the time of receipt.
    let item = to_complaint(&r, 1_700_000_000_000).unwrap();
    assert_eq!(item.reported_at, "2023-11-14T22:13:20Z");
    // No Arrival-Date: the time of receipt.
    let r = parse(&report("rfc5965-simple.eml", &token())).unwrap();
    assert_eq!(r.arrival_ms, None);
}

#[test]
fn what_is_not_a_feedback_report_is_refused_with_its_reason() {
    let t = token();
    let cases = [
        ("bad-not-mime.eml", "not-mime"),
        ("bad-wrong-report-type.eml", "not-feedback-report"),
        ("bad-no-feedback-part.eml", "no-feedback-part"),
    ];
    for (file, reason) in cases {
        let e: ArfError = parse(&report(file, &t)).expect_err(file);
        assert_eq!(e.reason(), reason, "{file}: {e}");
    }
    for junk in [
        &b""[..],
        b"\r\n\r\n",
        b"Content-Type: multipart/report\r\n\r\n--",
        &[0xff; 64],
    ] {
        assert!(parse(junk).is_err(), "{junk:?}");
    }
}

#[test]
fn inputs_that_crashed_the_mime_parser_are_refused_not_fatal() {
    // Found by `cargo fuzz run arf_reports`: mail-parser 0.11.9 panics on it.
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/arf/fuzz-crash-mail-parser-invalid-part-id.bin");
    let bytes = std::fs::read(path).unwrap();
    let e = parse(&bytes).expect_err("not a report");
    assert_eq!(e.reason(), "unparseable");
}
