//! The `ricochet` binary as a user runs it; `db migrate` and `kafka init`
//! against the real local stack (feature `integration`).

use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::{Command, Output};

fn ricochet(dir: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_ricochet"))
        .args(args)
        .current_dir(dir)
        .env("RICOCHET_REGISTRY", dir.join("registry.toml"))
        .output()
        .expect("run ricochet")
}

fn ok(dir: &Path, args: &[&str]) -> String {
    let out = ricochet(dir, args);
    assert!(
        out.status.success(),
        "ricochet {args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

#[test]
fn keys_registry_mint_and_verify() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let jwks = ok(d, &["keys", "new", "--kid", "esp-k1", "--out", "esp.jwk"]);
    std::fs::write(d.join("esp.jwks"), &jwks).unwrap();
    assert!(
        !jwks.contains("\"d\""),
        "public output must not carry the private key"
    );
    let mode = std::fs::metadata(d.join("esp.jwk"))
        .unwrap()
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o600);
    let again = ricochet(d, &["keys", "new", "--kid", "esp-k1", "--out", "esp.jwk"]);
    assert!(
        !again.status.success(),
        "an existing private key is never overwritten"
    );

    let pjwks = ok(
        d,
        &[
            "keys", "new", "--alg", "es256", "--kid", "p-k1", "--out", "p.jwk",
        ],
    );
    std::fs::write(d.join("p.jwks"), pjwks).unwrap();
    ok(
        d,
        &[
            "registry",
            "add-esp",
            "--id",
            "esp-a.example",
            "--name",
            "ESP A",
            "--jwks",
            "esp.jwks",
        ],
    );
    ok(
        d,
        &[
            "registry",
            "add-provider",
            "--id",
            "mail.example",
            "--name",
            "Mail",
            "--domain",
            "mail.example",
            "--jwks",
            "p.jwks",
        ],
    );
    let listing = ok(d, &["registry", "check"]);
    assert!(
        listing.contains("esp-a.example") && listing.contains("mail.example"),
        "{listing}"
    );

    let token = ok(
        d,
        &[
            "token",
            "mint",
            "--key",
            "esp.jwk",
            "--iss",
            "esp-a.example",
            "--sub",
            "shop-42",
            "--nature",
            "newsletter",
            "--recipient",
            "Carol@Mail.Example",
        ],
    );
    let token = token.trim();
    let claims: serde_json::Value =
        serde_json::from_str(&ok(d, &["token", "verify", token])).unwrap();
    assert_eq!(claims["sub"], "shop-42");
    assert_eq!(claims["rdm"], "mail.example");
    assert!(claims.get("dom").is_none(), "no From domain unless asked");
    let with_dom = ok(
        d,
        &[
            "token",
            "mint",
            "--key",
            "esp.jwk",
            "--iss",
            "esp-a.example",
            "--sub",
            "shop-42",
            "--nature",
            "newsletter",
            "--recipient",
            "carol@mail.example",
            "--dom",
            "Bücher.Example",
        ],
    );
    let claims: serde_json::Value =
        serde_json::from_str(&ok(d, &["token", "verify", with_dom.trim()])).unwrap();
    assert_eq!(
        claims["dom"], "xn--bcher-kva.example",
        "signed as its A-label"
    );

    let mut forged = token.to_string();
    forged.insert(10, 'x');
    let out = ricochet(d, &["token", "verify", &forged]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stdout).starts_with("refused: "));

    let bad = ricochet(
        d,
        &[
            "token",
            "mint",
            "--key",
            "esp.jwk",
            "--iss",
            "esp-a.example",
            "--sub",
            "s",
            "--nature",
            "spam",
            "--recipient",
            "a@mail.example",
        ],
    );
    assert!(!bad.status.success());
    assert!(
        String::from_utf8_lossy(&bad.stderr).contains("nature"),
        "the error names the problem"
    );
}

#[test]
#[cfg(feature = "integration")]
fn db_migrate_is_idempotent_against_clickhouse() {
    let dir = tempfile::tempdir().unwrap();
    let db = format!("it_cli_{}", std::process::id());
    let run = || {
        Command::new(env!("CARGO_BIN_EXE_ricochet"))
            .args(["db", "migrate"])
            .env("RICOCHET_CLICKHOUSE_DATABASE", &db)
            .current_dir(dir.path())
            .output()
            .unwrap()
    };
    let first = run();
    assert!(
        first.status.success(),
        "{}",
        String::from_utf8_lossy(&first.stderr)
    );
    assert!(String::from_utf8_lossy(&first.stdout).contains("applied  0001_complaints.sql"));
    let second = run();
    assert!(String::from_utf8_lossy(&second.stdout).contains("0 migration(s) applied now"));
    let url =
        std::env::var("RICOCHET_CLICKHOUSE_URL").unwrap_or_else(|_| "http://127.0.0.1:8123".into());
    let drop = Command::new("curl")
        .args([
            "-fsS",
            &url,
            "--data-binary",
            &format!("DROP DATABASE {db}"),
        ])
        .output()
        .unwrap();
    assert!(drop.status.success());
}

#[test]
#[cfg(feature = "integration")]
fn kafka_init_creates_every_topic_idempotently() {
    let dir = tempfile::tempdir().unwrap();
    for _ in 0..2 {
        let out = ok(dir.path(), &["kafka", "init"]);
        for topic in [
            "complaints.v1",
            "deliveries.v1",
            "penalties.v1",
            "feedback.v1",
            "ricochet.dlq.v1",
        ] {
            assert!(
                out.lines()
                    .any(|l| l.ends_with(topic) || l.contains(&format!("{topic} ("))),
                "{topic} missing in {out}"
            );
        }
    }
    let out = ok(dir.path(), &["kafka", "init"]);
    assert_eq!(
        out.lines().filter(|l| l.starts_with("exists")).count(),
        ricochet_kafka::topics::TOPICS.len(),
        "second run creates nothing: {out}"
    );
}

#[test]
fn policy_check_prints_the_policy_in_force_or_the_line_at_fault() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    std::fs::write(
        d.join("policy.toml"),
        "[tiers.esp]\nwarning = 0.0008\n[hysteresis]\ncool_down_days = 3\n",
    )
    .unwrap();
    let out = ok(d, &["policy", "check", "policy.toml"]);
    assert!(out.starts_with("policy OK: policy.toml"), "{out}");
    assert!(
        out.contains("esp: ")
            && out.contains("warning 0.08 %")
            && out.contains("3 consecutive days"),
        "{out}"
    );
    std::fs::write(d.join("bad.toml"), "[caps]\n\nmax_provider_share = 0\n").unwrap();
    let out = ricochet(d, &["policy", "check", "bad.toml"]);
    assert_eq!(out.status.code(), Some(2));
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.starts_with(
            "invalid: bad.toml:3: caps.max_provider_share: 0: must be a share in (0, 1]"
        ),
        "{text}"
    );
}
