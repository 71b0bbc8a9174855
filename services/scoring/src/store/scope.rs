//! The work lists of a run: `scoring_scope` (the senders an incremental run
//! rescores) and `scoring_suspects` (the senders whose reporters are looked
//! up), each instance's own copy of them (see [`Partition::list`]). Lists
//! go through these tables, not the query text, which ClickHouse bounds in
//! size.

use clickhouse::{Client, Row};
use serde::Serialize;

use crate::counts::SenderKey;
use crate::partition::Partition;

#[derive(Row, Serialize)]
struct ScopeRow<'a> {
    esp: &'a str,
    sender: &'a str,
}

/// Lists a run's dirty senders in the partition's `scoring_scope`: its
/// senders with rows loaded since `since_ms`, and `due` (a row leaves a
/// window, a cool-down ends).
pub async fn fill_scope<'k>(
    client: &Client,
    part: Partition,
    since_ms: i64,
    due: impl IntoIterator<Item = &'k SenderKey>,
) -> crate::error::Result<()> {
    let list = part.list("scoring_scope");
    let esps = part.esps();
    client
        .query(&format!("TRUNCATE TABLE {list}"))
        .execute()
        .await?;
    client
        .query(&format!(
            "INSERT INTO {list}
             SELECT DISTINCT esp, sender FROM complaints WHERE loaded_at >= fromUnixTimestamp64Milli(?) AND {esps}
             UNION DISTINCT
             SELECT DISTINCT esp, sender FROM deliveries WHERE loaded_at >= fromUnixTimestamp64Milli(?) AND {esps}"
        ))
        .bind(since_ms)
        .bind(since_ms)
        .execute()
        .await?;
    insert_keys(client, &list, due).await
}

/// Appends senders to a list table (`scoring_scope`, `scoring_suspects`).
pub async fn insert_keys<'k>(
    client: &Client,
    table: &str,
    keys: impl IntoIterator<Item = &'k SenderKey>,
) -> crate::error::Result<()> {
    let mut keys = keys.into_iter().peekable();
    if keys.peek().is_none() {
        return Ok(());
    }
    let mut insert = client.insert::<ScopeRow>(table).await?;
    for (esp, sender) in keys {
        insert.write(&ScopeRow { esp, sender }).await?;
    }
    insert.end().await.map_err(Into::into)
}

/// Lists `senders` in the partition's `scoring_suspects`, in place of what it held.
pub async fn list_suspects<'k>(
    client: &Client,
    part: Partition,
    senders: impl IntoIterator<Item = &'k SenderKey>,
) -> crate::error::Result<()> {
    let list = part.list("scoring_suspects");
    client
        .query(&format!("TRUNCATE TABLE {list}"))
        .execute()
        .await?;
    insert_keys(client, &list, senders).await
}

/// The senders listed in the partition's `scoring_scope`.
pub async fn listed(client: &Client, part: Partition) -> crate::error::Result<Vec<SenderKey>> {
    client
        .query(&format!(
            "SELECT esp, sender FROM {}",
            part.list("scoring_scope")
        ))
        .fetch_all::<(String, String)>()
        .await
        .map_err(Into::into)
}

/// ClickHouse's clock (Unix ms): where a run's load mark is taken, so it
/// compares with `loaded_at` whatever the local clock says.
pub async fn server_now_ms(client: &Client) -> crate::error::Result<i64> {
    client
        .query("SELECT toUnixTimestamp64Milli(now64(3))")
        .fetch_one()
        .await
        .map_err(Into::into)
}
