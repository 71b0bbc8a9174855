//! Adding participants to the file while keeping the operator's comments and layout.

use std::path::Path;

use ricochet_token::Jwk;
use toml_edit::{value, Array, ArrayOfTables, DocumentMut, Item, Table};

use crate::error::RegistryError;
use crate::model::{ParticipantKind, Registry};

/// A participant to add.
#[derive(Debug, Clone)]
pub struct NewParticipant {
    /// Provider or ESP.
    pub kind: ParticipantKind,
    /// Participant id.
    pub id: String,
    /// Display name.
    pub name: String,
    /// Public keys.
    pub keys: Vec<Jwk>,
    /// Recipient domains (providers).
    pub domains: Vec<String>,
    /// Webhook URL (ESPs).
    pub webhook_url: Option<String>,
}

impl NewParticipant {
    /// A participant with one key, named by its id, and no webhook.
    pub fn with_key(kind: ParticipantKind, id: &str, key: Jwk, domains: Vec<String>) -> Self {
        NewParticipant {
            kind,
            id: id.into(),
            name: id.into(),
            keys: vec![key],
            domains,
            webhook_url: None,
        }
    }
}

fn io(path: &Path) -> impl Fn(std::io::Error) -> RegistryError + '_ {
    move |source| RegistryError::io(path, source)
}

/// Appends a participant to the registry file (created if missing). The new
/// file is validated as a whole before it replaces the old one atomically, so
/// a refused change leaves the file untouched and services never see half a file.
pub fn add_participant(path: &Path, new: &NewParticipant) -> Result<(), RegistryError> {
    let (text, header) = match std::fs::read_to_string(path) {
        Ok(t) => (t, ""),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => (
            String::new(),
            "# Ricochet participants registry (format: schemas/registry.md).\n\n",
        ),
        Err(e) => return Err(io(path)(e)),
    };
    let syntax = |e: toml_edit::TomlError| RegistryError::syntax(path, e);
    let mut doc: DocumentMut = text.parse().map_err(syntax)?;
    let mut table = Table::new();
    table.insert("id", value(&new.id));
    table.insert("name", value(&new.name));
    match new.kind {
        ParticipantKind::Provider => {
            table.insert("domains", value(new.domains.iter().collect::<Array>()));
        }
        ParticipantKind::Esp => {
            if let Some(url) = &new.webhook_url {
                table.insert("webhook_url", value(url));
            }
        }
    }
    let mut keys = ArrayOfTables::new();
    for jwk in &new.keys {
        let json = toml::Value::try_from(jwk)
            .map_err(|e| RegistryError::syntax(path, format!("key {}: {e}", jwk.kid)))?;
        let key_doc: DocumentMut = toml::to_string(&json)
            .map_err(|e| RegistryError::syntax(path, e))?
            .parse()
            .map_err(syntax)?;
        keys.push(key_doc.as_table().clone());
    }
    table.insert("keys", Item::ArrayOfTables(keys));
    let entry = doc
        .entry(new.kind.table())
        .or_insert_with(|| Item::ArrayOfTables(ArrayOfTables::new()));
    let Some(list) = entry.as_array_of_tables_mut() else {
        let table = new.kind.table();
        let message = format!("`{table}` must be an array of tables ([[{table}]])");
        return Err(RegistryError::syntax(path, message));
    };
    list.push(table);
    let out = format!("{header}{doc}");
    Registry::parse(path, &out)?;
    let tmp = path.with_extension("toml.tmp");
    std::fs::write(&tmp, &out).map_err(io(&tmp))?;
    std::fs::rename(&tmp, path).map_err(io(path))?;
    Ok(())
}
