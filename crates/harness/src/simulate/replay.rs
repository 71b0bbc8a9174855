//! The replay: each simulated hour, every provider reports its delivered
//! counts and submits its users' complaints (tokens minted by each sender's
//! ESP for the message sent), then the ESPs' offender reports are read.

use std::time::{Duration, Instant};

use crate::ingest::IngestClient;
use anyhow::{bail, Result};
use indicatif::{ProgressBar, ProgressStyle};
use ricochet_scoring::Policy;
use ricochet_token::verify::unix_now;
use ricochet_token::{mint, Nature, TokenRequest};
use serde_json::{json, Value};

use super::world::{self, HourTraffic as Traffic, ESPS, PROVIDERS};
use super::{rfc3339, submit, Reports, Sim, Tally, BATCH, FORGED_PER_HOUR};

/// A complaint item with whether it is forged and whether it is the attack's.
type Item = (Value, bool, bool);

/// Replays every hour at `--speed`; the tally of what was submitted.
pub(super) async fn replay(sim: &Sim<'_>, reports: &mut Reports) -> Result<Tally> {
    let a = sim.a;
    let now = unix_now();
    let first_slot = now - now % 3600 - i64::from(a.hours - 1) * 3600;
    let started = Instant::now();
    let bar = ProgressBar::new(u64::from(a.hours));
    bar.set_style(
        ProgressStyle::with_template("{elapsed_precise} [{bar:30}] hour {pos}/{len} {msg}")
            .expect("template")
            .progress_chars("=> "),
    );
    let mut tally = Tally::default();
    for h in 0..a.hours {
        let slot = first_slot + i64::from(h) * 3600;
        let traffic = world::hour(sim.world, h, a.seed);
        deliveries(sim, h, slot, &traffic, &mut tally).await?;
        record_truth(sim, &traffic, &mut tally);
        let items = complaints(sim, h, (slot, now), &traffic)?;
        for (client, batch) in sim.clients.iter().zip(&items) {
            submit_complaints(client, batch, &mut tally).await?;
        }
        sim.poll(reports, h).await?;
        bar.set_message(format!(
            "complaints accepted {}, forged refused {}, tier changes {}",
            tally.accepted,
            tally.forged_rejected,
            reports.seen.len()
        ));
        bar.inc(1);
        let due = Duration::from_secs_f64(f64::from(h + 1) * 3600.0 / a.speed);
        if let Some(wait) = due.checked_sub(started.elapsed()) {
            tokio::time::sleep(wait).await;
        }
    }
    bar.finish();
    Ok(tally)
}

/// Each provider reports its own delivered counts for hour `h`.
async fn deliveries(
    sim: &Sim<'_>,
    h: u32,
    slot: i64,
    traffic: &Traffic,
    tally: &mut Tally,
) -> Result<()> {
    for (pi, client) in sim.clients.iter().enumerate() {
        let rows: Vec<Value> = traffic
            .delivered
            .iter()
            .filter(|(_, prov, _)| *prov == pi)
            .map(|(s, _, d)| {
                let sender = &sim.world.senders[*s];
                let mut row = json!({"esp": ESPS[sender.esp], "sender": sender.id, "campaign": sender.campaign_in(h),
                                     "hour": rfc3339(slot), "delivered": d});
                if let Some(dom) = sender.from_domain {
                    row["from_domain"] = json!(dom);
                }
                row
            })
            .collect();
        for chunk in rows.chunks(1000) {
            let verdicts = submit(client, "deliveries", chunk.to_vec()).await?;
            if let Some(reason) = verdicts.iter().flatten().next() {
                bail!("a delivery count was refused: {reason}");
            }
            tally.deliveries += chunk.len() as u64;
        }
    }
    Ok(())
}

/// What each ESP's book truly drew this hour (the attack and the forgeries
/// are no part of it).
fn record_truth(sim: &Sim<'_>, traffic: &Traffic, tally: &mut Tally) {
    let policy = Policy::default();
    for (s, _, d) in &traffic.delivered {
        tally.truth.delivered(sim.world.senders[*s].esp, *d);
    }
    for c in traffic.complaints.iter().skip(FORGED_PER_HOUR) {
        if !c.attack {
            let esp = sim.world.senders[c.sender].esp;
            tally.truth.complaint(esp, c.code, &policy);
        }
    }
}

/// Per provider, the hour's complaint items: tokens minted by each sender's
/// ESP for the message sent; the first few altered by a forger.
fn complaints(
    sim: &Sim<'_>,
    h: u32,
    (slot, now): (i64, i64),
    traffic: &Traffic,
) -> Result<Vec<Vec<Item>>> {
    let mut per_provider: Vec<Vec<Item>> = vec![vec![]; PROVIDERS.len()];
    for (k, c) in traffic.complaints.iter().enumerate() {
        let s = &sim.world.senders[c.sender];
        let sent = (slot + i64::from(c.sent_offset)).min(now - 5);
        let reported = (sent + i64::from(c.delay)).min(now - 1);
        let nature = if s.claimed_nature() == "transactional" {
            Nature::Transactional
        } else {
            Nature::Marketing
        };
        let recipient = format!("{}@{}", c.reporter, PROVIDERS[c.provider].domain);
        let mut req = TokenRequest::new(ESPS[s.esp], &s.id, nature, &recipient, sent);
        req.cmp = Some(s.campaign_in(h));
        req.dom = s.from_domain.map(String::from);
        let (token, _) = mint(&sim.participants.esps[s.esp], &req)?;
        let forged = k < FORGED_PER_HOUR;
        let token = if forged {
            // The fraudster edits a real token (changes its last signature character).
            let last = if token.ends_with('A') { 'B' } else { 'A' };
            format!("{}{last}", &token[..token.len() - 1])
        } else {
            token
        };
        per_provider[c.provider].push((
            json!({"token": token, "code": c.code, "reported_at": rfc3339(reported), "reporter": c.reporter}),
            forged,
            c.attack,
        ));
    }
    Ok(per_provider)
}

/// Submits one provider's items in batches and tallies the verdicts.
async fn submit_complaints(client: &IngestClient, items: &[Item], tally: &mut Tally) -> Result<()> {
    for chunk in items.chunks(BATCH) {
        let values = chunk.iter().map(|(v, _, _)| v.clone()).collect();
        let verdicts = submit(client, "complaints", values).await?;
        for ((_, forged, attack), verdict) in chunk.iter().zip(verdicts) {
            tally.attack_accepted += u64::from(*attack && verdict.is_none());
            match (forged, verdict) {
                (true, Some(_)) => {
                    tally.forged += 1;
                    tally.forged_rejected += 1;
                }
                (true, None) => tally.forged += 1,
                (false, None) => {
                    tally.complaints += 1;
                    tally.accepted += 1;
                }
                (false, Some(reason)) => {
                    tally.complaints += 1;
                    *tally.rejected_legit.entry(reason).or_default() += 1;
                }
            }
        }
    }
    Ok(())
}
