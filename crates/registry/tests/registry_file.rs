//! The registry file: loading, errors that name field and line, editing, reload.

use std::time::{Duration, Instant};

use ricochet_registry::{
    add_participant, NewParticipant, ParticipantKind, Registry, RegistryError, RegistryHandle,
};
use ricochet_token::{Algorithm, KeyLookup, SigningKey};

fn provider(id: &str, domains: &[&str]) -> NewParticipant {
    NewParticipant {
        kind: ParticipantKind::Provider,
        id: id.into(),
        name: format!("Provider {id}"),
        keys: vec![SigningKey::generate(Algorithm::EdDSA, format!("{id}-k1"))
            .unwrap()
            .public_jwk()],
        domains: domains.iter().map(|d| d.to_string()).collect(),
        webhook_url: None,
    }
}

fn esp(id: &str, key: &SigningKey) -> NewParticipant {
    NewParticipant {
        kind: ParticipantKind::Esp,
        id: id.into(),
        name: format!("ESP {id}"),
        keys: vec![key.public_jwk()],
        domains: vec![],
        webhook_url: Some("https://hooks.esp.example/ricochet".into()),
    }
}

#[test]
fn added_participants_load_back() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("registry.toml");
    let key = SigningKey::generate(Algorithm::ES256, "esp-k1").unwrap();
    add_participant(
        &path,
        &provider("mail.example", &["mail.example", "xn--bcher-kva.example"]),
    )
    .unwrap();
    add_participant(&path, &esp("esp-a.example", &key)).unwrap();
    let reg = Registry::load(&path).unwrap();
    let p = reg.provider("mail.example").unwrap();
    assert!(p.hosts("xn--bcher-kva.example"));
    assert!(!p.hosts("other.example"));
    assert_eq!(
        reg.esp("esp-a.example").unwrap().webhook_url.as_deref(),
        Some("https://hooks.esp.example/ricochet")
    );
    assert_eq!(
        reg.key("esp-a.example", "esp-k1").unwrap().algorithm(),
        Algorithm::ES256
    );
    assert_eq!(
        reg.key("esp-a.example", "nope").unwrap_err().reason(),
        "unknown-kid"
    );
    assert_eq!(
        reg.key("mail.example", "mail.example-k1")
            .unwrap_err()
            .reason(),
        "unknown-issuer",
        "providers do not issue complaint tokens"
    );
    let provider_keys = reg.keys_of(ParticipantKind::Provider);
    assert!(provider_keys.key("mail.example", "mail.example-k1").is_ok());
    assert_eq!(
        provider_keys
            .key("mail.example", "esp-k1")
            .unwrap_err()
            .reason(),
        "key-of-another-participant"
    );
}

#[test]
fn duplicate_ids_are_refused_and_the_file_is_left_untouched() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("registry.toml");
    add_participant(&path, &provider("mail.example", &["mail.example"])).unwrap();
    let before = std::fs::read_to_string(&path).unwrap();
    let err = add_participant(&path, &provider("mail.example", &["other.example"])).unwrap_err();
    assert!(err.to_string().contains("already used"), "{err}");
    assert_eq!(std::fs::read_to_string(&path).unwrap(), before);
}

fn invalid(text: &str) -> (usize, String, String) {
    match Registry::parse("r.toml".as_ref(), text) {
        Err(RegistryError::Invalid {
            line,
            field,
            message,
            ..
        }) => (line, field, message),
        other => panic!("expected a validation error, got {other:?}"),
    }
}

#[test]
fn errors_name_the_field_and_line() {
    let (line, field, _) = invalid("[[provider]]\nid = \"ok.example\"\nname = \"x\"\ndomains = [\"a.example\", \"Upper.Example\"]\n");
    assert_eq!((line, field.as_str()), (4, "provider[0].domains[1]"));
    let (line, field, msg) = invalid("\n\n[[esp]]\nid = \"Bad Id\"\nname = \"x\"\n");
    assert_eq!((line, field.as_str()), (4, "esp[0].id"));
    assert!(msg.contains("participant id"));
    let key = SigningKey::generate(Algorithm::EdDSA, "k")
        .unwrap()
        .private_jwk();
    let text = format!(
        "[[esp]]\nid = \"e.example\"\nname = \"x\"\n[[esp.keys]]\nkty = \"OKP\"\ncrv = \"Ed25519\"\nkid = \"k\"\nx = \"{}\"\nd = \"{}\"\n",
        key.x,
        key.d.unwrap()
    );
    let (line, field, msg) = invalid(&text);
    assert_eq!((line, field.as_str()), (4, "esp[0].keys[0]"));
    assert!(msg.contains("private"), "{msg}");
    match Registry::parse(
        "r.toml".as_ref(),
        "[[esp]]\nid = \"e.example\"\nnam = \"x\"\n",
    ) {
        Err(RegistryError::Syntax { message, .. }) => {
            assert!(message.contains("line 3"), "{message}")
        }
        other => panic!("expected a syntax error, got {other:?}"),
    }
}

#[test]
fn handle_reloads_changes_and_keeps_the_last_valid_version() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("registry.toml");
    add_participant(&path, &provider("mail.example", &["mail.example"])).unwrap();
    let handle = RegistryHandle::open(&path).unwrap();
    handle.watch(Duration::from_millis(20));
    add_participant(&path, &provider("other.example", &["other.example"])).unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    while handle.current().provider("other.example").is_none() {
        assert!(Instant::now() < deadline, "reload not seen within 10 s");
        std::thread::sleep(Duration::from_millis(10));
    }
    // Replaced in one step, as editors and the CLI do: written in place, the
    // watcher could read the file truncated (empty is a valid registry).
    let next = dir.path().join("registry.toml.new");
    std::fs::write(&next, "this is = = not toml").unwrap();
    std::fs::rename(&next, &path).unwrap();
    assert!(handle.reload().is_err());
    assert!(
        handle.current().provider("other.example").is_some(),
        "invalid file must not replace the valid one"
    );
}
