//! The JSON Schema in `schemas/` and the parser agree on what a policy is.

use ricochet_policy::RecipientPolicy;
use serde_json::Value;

fn schema() -> jsonschema::Validator {
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../schemas/recipient-policy.schema.json"
    );
    let s: Value = serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
    jsonschema::options()
        .should_validate_formats(true)
        .build(&s)
        .unwrap()
}

const GOOD: &str = r#"{"version": 1, "domain": "example.org", "effective_from": "2026-12-01T00:00:00Z",
  "natures": {"refuse": ["marketing"]}, "unsigned": "accept", "action": "reject",
  "addresses": {"ceo@example.org": {"natures": {"accept": ["personal"]}, "unsigned": "refuse"}}}"#;

#[test]
fn schema_and_parser_agree() {
    let schema = schema();
    let cases = [
        (GOOD.to_string(), true),
        (GOOD.replace(r#", "action": "reject""#, ""), true),
        (
            GOOD.replace(r#"{"refuse": ["marketing"]}"#, r#"{"accept": []}"#),
            true,
        ),
        (GOOD.replace("marketing", "spam"), false),
        (GOOD.replace(r#""version": 1"#, r#""version": 2"#), false),
        (
            GOOD.replace(r#""unsigned": "accept""#, r#""unsigned": "maybe""#),
            false,
        ),
        (
            GOOD.replace(r#""action": "reject""#, r#""action": "bounce""#),
            false,
        ),
        (
            GOOD.replace(
                r#"{"refuse": ["marketing"]}"#,
                r#"{"refuse": [], "accept": []}"#,
            ),
            false,
        ),
        (GOOD.replace(r#"{"refuse": ["marketing"]}"#, "{}"), false),
        (GOOD.replace("example.org\"", "Example.org\""), false),
        (GOOD.replace("2026-12-01T00:00:00Z", "yesterday"), false),
        (GOOD.replace(r#""version": 1, "#, ""), false),
        (GOOD.replace(r#""action""#, r#""actions""#), false),
    ];
    for (doc, valid) in cases {
        let value: Value = serde_json::from_str(&doc).unwrap();
        assert_eq!(schema.is_valid(&value), valid, "schema on {doc}");
        assert_eq!(
            RecipientPolicy::parse(&doc).is_ok(),
            valid,
            "parser on {doc}"
        );
    }
}
