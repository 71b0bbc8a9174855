//! The feed's loops: the writer's steps, the sweep beside them, and the
//! dispatch of new entries to Kafka and the webhooks.

use clickhouse::Client;

use super::writer::late_rows;
use super::{unix_ms, FeedEntry, FeedReport, FeedWriter, PAGE};

/// Passes between two sweeps (about 30 s at the default interval).
const SWEEP_EVERY: u32 = 120;
/// Most pages one step reads before the metrics are updated and the next
/// step (which may append a sweep's rows) begins.
const PAGES_PER_STEP: usize = 10;

/// Runs the feed for good: every `every`, appends new complaints to the
/// feed; beside it, every `every`, sends what Kafka and the webhooks have
/// not yet accepted (a slow webhook never holds up the feed), and every
/// [`SWEEP_EVERY`] intervals looks for late rows (a sweep took a second or
/// more at 5,000 complaints/s and held the feed up while it ran). An error
/// reopens the writer from the table (its numbering may be stale).
pub async fn serve(
    client: Client,
    dispatcher: std::sync::Arc<crate::dispatch::Dispatcher>,
    metrics: crate::metrics::Metrics,
    every: std::time::Duration,
) {
    let part = dispatcher.part;
    let dm = metrics.clone();
    tokio::spawn(async move {
        let mut streak = crate::streak::Streak::default();
        loop {
            let outbox = crate::dispatch::Outbox::Complaints;
            match dispatcher.run_outbox(outbox, unix_ms()).await {
                Ok(r) => {
                    streak.ok();
                    crate::dispatch::count(&dm, outbox, &r);
                }
                Err(e) => streak.failed("complaint feed dispatch failed; retrying", &e),
            }
            tokio::time::sleep(streak.pause(every)).await;
        }
    });
    let (mark_tx, mark_rx) = tokio::sync::watch::channel(None);
    let (late_tx, mut late_rx) = tokio::sync::mpsc::channel(1);
    tokio::spawn(sweeper(
        client.clone(),
        part,
        mark_rx,
        late_tx,
        every * SWEEP_EVERY,
    ));
    let mut writer: Option<FeedWriter> = None;
    let mut streak = crate::streak::Streak::default();
    loop {
        let started = std::time::Instant::now();
        let late = late_rx.try_recv().ok();
        match step((&client, part), &mut writer, late).await {
            Ok(report) => {
                streak.ok();
                record(&metrics, &report);
            }
            Err(e) => {
                streak.failed("complaint feed pass failed; reopening the feed", &e);
                writer = None;
            }
        }
        mark_tx.send_replace(writer.as_ref().map(FeedWriter::mark_ms));
        // Steps start `every` apart (a step's own time is not added to the
        // wait of the rows that land meanwhile), or back off after failures.
        tokio::time::sleep(streak.pause(every).saturating_sub(started.elapsed())).await;
    }
}

/// Every `every` (first at once), hands the writer the late rows behind its
/// latest mark. Rows lost with a failed step are found again next time.
async fn sweeper(
    client: Client,
    part: crate::partition::Partition,
    mut mark: tokio::sync::watch::Receiver<Option<i64>>,
    late: tokio::sync::mpsc::Sender<Vec<FeedEntry>>,
    every: std::time::Duration,
) {
    let mut streak = crate::streak::Streak::default();
    loop {
        // Waits for the writer's first mark (and after a failure, the next).
        let Ok(mark_ms) = mark
            .wait_for(Option::is_some)
            .await
            .map(|m| m.expect("waited for"))
        else {
            return;
        };
        match late_rows(&client, part, mark_ms).await {
            Ok(rows) => {
                streak.ok();
                if !rows.is_empty() && late.send(rows).await.is_err() {
                    return;
                }
            }
            Err(e) => streak.failed("complaint feed sweep failed; retrying", &e),
        }
        tokio::time::sleep(every).await;
    }
}

/// Puts one step's outcome in the metrics.
fn record(metrics: &crate::metrics::Metrics, report: &FeedReport) {
    let feed = &metrics.feed;
    use crate::metrics::FeedOutcome;
    feed.with_label_values(&[FeedOutcome::Fed.as_str()])
        .inc_by(report.fed as u64);
    feed.with_label_values(&[FeedOutcome::Duplicate.as_str()])
        .inc_by(report.duplicates as u64);
    let now_ms = unix_ms();
    let lag = report
        .last_loaded_ms
        .map_or(0.0, |at| (now_ms - at) as f64 / 1e3);
    metrics.feed_lag_seconds.set(lag.max(0.0));
    metrics.feed_last_success.set(now_ms / 1000);
}

/// One step: open the writer if needed, append a sweep's late rows if
/// any, read up to [`PAGES_PER_STEP`] pages.
async fn step(
    (client, part): (&Client, crate::partition::Partition),
    writer: &mut Option<FeedWriter>,
    late: Option<Vec<FeedEntry>>,
) -> crate::error::Result<FeedReport> {
    if writer.is_none() {
        *writer = Some(FeedWriter::open(client.clone(), part).await?);
    }
    let w = writer.as_mut().expect("opened above");
    let mut total = match late {
        Some(rows) => w.append(rows).await?,
        None => FeedReport::default(),
    };
    total.add(&w.trail().await?);
    for _ in 0..PAGES_PER_STEP {
        let r = w.pass().await?;
        total.add(&r);
        if r.read < PAGE as usize {
            break;
        }
    }
    Ok(total)
}
