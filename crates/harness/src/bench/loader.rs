//! `ricochet bench loader`: the loader against the naive pipe, same topic, same run.

use std::io::Write;
use std::path::PathBuf;
use std::process::{Command, ExitCode};
use std::time::{Duration, Instant};

use anyhow::{bail, Result};
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::producer::{FutureProducer, FutureRecord};
use rdkafka::Message;
use ricochet_kafka::{ensure_topics, ComplaintRecord, KafkaConfig};
use ricochet_storage::ClickHouseConfig;

/// The table the naive pipe fills: the message's own fields, as a user would map them.
const NAIVE_TABLE: &str = "CREATE TABLE IF NOT EXISTS naive_complaints (
    jti String, esp String, sender String, provider String, code String, nature String,
    campaign Nullable(String), recipient_domain String, reporter Nullable(String),
    recipient_proven Bool, token_iat UInt32, token_exp UInt32,
    reported_at_ms Int64, received_at_ms Int64
) ENGINE = MergeTree ORDER BY (esp, sender, jti)";

pub async fn run(records: usize, loader_bin: Option<PathBuf>) -> Result<ExitCode> {
    let loader_bin = crate::process::service_binary("ricochet-loader", loader_bin)?;
    let kafka = KafkaConfig::from_env()?;
    let run_id = std::process::id();
    let ch = crate::bench::bench_database(&format!("bench_loader_{run_id}")).await?;
    ch.client().query(NAIVE_TABLE).execute().await?;
    let topic = format!("bench-loader-{run_id}");
    ensure_topics(&kafka, &[&topic]).await?;
    eprintln!("pre-filling {topic} with {records} records ...");
    let started = Instant::now();
    prefill(&kafka, &topic, records).await?;
    eprintln!("pre-filled in {:.1} s", started.elapsed().as_secs_f64());
    let loader_secs = time_loader(&loader_bin, &kafka, &ch, &topic, records).await?;
    let read_secs = time_broker_read(&topic)?;
    let (pipe_secs, piped) = time_naive_pipe(&ch, &topic).await?;
    let (loader_rate, pipe_rate) = (records as f64 / loader_secs, piped as f64 / pipe_secs);
    println!();
    println!("ricochet bench loader: {records} records in one topic ({} partitions), same run, same machine", kafka.partitions);
    println!();
    println!("| pipeline | rows | seconds | rows/s | exact under redelivery |");
    println!("|---|---:|---:|---:|---|");
    println!("| ricochet-loader (RowBinary batches, commit after insert) | {records} | {loader_secs:.2} | {loader_rate:.0} | yes: counts by jti |");
    println!("| console consumer \\| curl JSONEachRow | {piped} | {pipe_secs:.2} | {pipe_rate:.0} | no: a re-run doubles every row |");
    println!("| console consumer > /dev/null (broker read ceiling) | {records} | {read_secs:.2} | {:.0} | - |", records as f64 / read_secs);
    println!();
    println!("loader / pipe: {:.2}x", loader_rate / pipe_rate.max(1e-9));
    crate::bench::drop_bench_database(&ch).await?;
    Ok(ExitCode::SUCCESS)
}

/// The loader in its own group into the bench database, timed until every
/// token is counted.
async fn time_loader(
    bin: &std::path::Path,
    kafka: &KafkaConfig,
    ch: &ClickHouseConfig,
    topic: &str,
    records: usize,
) -> Result<f64> {
    eprintln!("loader ...");
    let started = Instant::now();
    let run_id = std::process::id();
    let group = format!("bench-loader-{run_id}");
    let (unused, dlq) = (format!("{topic}-unused"), format!("{topic}-dlq"));
    let args = [
        "--group",
        &group,
        "--complaints-topic",
        topic,
        "--deliveries-topic",
        &unused,
        "--dead-letter-topic",
        &dlq,
    ];
    let envs = [
        ("RICOCHET_KAFKA_BROKERS", kafka.brokers.as_str()),
        ("RICOCHET_CLICKHOUSE_URL", ch.url.as_str()),
        ("RICOCHET_CLICKHOUSE_DATABASE", ch.database.as_str()),
    ];
    let mut loader = crate::process::ServiceProcess::spawn(bin, "--listen", &args, &envs)?;
    let loaded = wait_count(ch, "SELECT uniqExact(jti) FROM complaints", records).await;
    let secs = started.elapsed().as_secs_f64();
    loader.stop();
    loaded?;
    Ok(secs)
}

/// The broker's own ceiling: the console consumer alone, into /dev/null.
fn time_broker_read(topic: &str) -> Result<f64> {
    eprintln!("broker read alone ...");
    let me = std::env::current_exe()?;
    let started = Instant::now();
    let script = format!(
        "'{}' bench consume-json --topic '{topic}' >/dev/null",
        me.display()
    );
    let status = Command::new("sh")
        .args(["-c", &script])
        .env("RICOCHET_LOG", "off")
        .status()?;
    anyhow::ensure!(status.success(), "reading the topic failed: {status}");
    Ok(started.elapsed().as_secs_f64())
}

/// The naive pipe: console consumer | curl INSERT FORMAT JSONEachRow; its
/// seconds and the rows it inserted.
async fn time_naive_pipe(ch: &ClickHouseConfig, topic: &str) -> Result<(f64, u64)> {
    eprintln!("naive pipe ...");
    let me = std::env::current_exe()?;
    let insert_url = format!(
        "{}/?database={}&input_format_skip_unknown_fields=1&query={}",
        ch.url, ch.database, "INSERT%20INTO%20naive_complaints%20FORMAT%20JSONEachRow"
    );
    let script = format!(
        "'{}' bench consume-json --topic '{topic}' | curl -fsS --data-binary @- '{insert_url}'",
        me.display()
    );
    let started = Instant::now();
    let status = Command::new("sh")
        .args(["-c", &script])
        .env("RICOCHET_LOG", "warn")
        .status()?;
    let secs = started.elapsed().as_secs_f64();
    if !status.success() {
        bail!("the naive pipe failed: {status}");
    }
    let piped: u64 = ch
        .client()
        .query("SELECT count() FROM naive_complaints")
        .fetch_one()
        .await?;
    Ok((secs, piped))
}

async fn wait_count(ch: &ClickHouseConfig, query: &str, expected: usize) -> Result<()> {
    let deadline = Instant::now() + Duration::from_secs(600);
    loop {
        let n: u64 = ch.client().query(query).fetch_one().await?;
        if n as usize >= expected {
            return Ok(());
        }
        anyhow::ensure!(
            Instant::now() < deadline,
            "only {n} of {expected} rows after 600 s"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

async fn prefill(kafka: &KafkaConfig, topic: &str, n: usize) -> Result<()> {
    let mut c = kafka.producer_config();
    c.set("linger.ms", "50")
        .set("batch.num.messages", "10000")
        .set("queue.buffering.max.messages", "1000000");
    let producer: FutureProducer = c.create()?;
    let token = "e".repeat(380);
    let mut pending = Vec::with_capacity(10_000);
    for i in 0..n {
        let r = ComplaintRecord {
            jti: format!("bench{i:017}{:08x}", std::process::id()),
            esp: format!("esp-{}.example", i % 7),
            sender: format!("sender-{}", i % 5000),
            provider: format!("mail-{}.example", i % 3),
            code: "unwanted".into(),
            nature: "marketing".into(),
            campaign: (i % 2 == 0).then(|| "spring".to_string()),
            recipient_domain: "mail.example".into(),
            from_domain: None,
            reporter: None,
            rcb: None,
            recipient_proven: i % 3 == 0,
            token_iat: 1_790_000_000,
            token_exp: 1_790_000_000 + 14 * 86_400,
            reported_at_ms: 1_790_000_100_000 + i as i64,
            received_at_ms: 1_790_000_101_000 + i as i64,
            token: token.clone(),
        };
        let key = format!("{}/{}", r.esp, r.sender);
        let payload = serde_json::to_vec(&r)?;
        pending.push(
            producer
                .send_result(FutureRecord::to(topic).key(&key).payload(&payload))
                .map_err(|(e, _)| e)?,
        );
        if pending.len() == 10_000 {
            for f in pending.drain(..) {
                f.await?.map_err(|(e, _)| e)?;
            }
        }
    }
    for f in pending {
        f.await?.map_err(|(e, _)| e)?;
    }
    Ok(())
}

/// Prints each value of `topic` on its own line until the end of every partition.
pub fn consume_json(topic: &str) -> Result<ExitCode> {
    let kafka = KafkaConfig::from_env()?;
    let mut c = kafka.consumer_config(&format!("bench-pipe-{}", std::process::id()));
    c.set("enable.partition.eof", "true");
    let consumer: BaseConsumer = c.create()?;
    consumer.subscribe(&[topic])?;
    let partitions = consumer
        .fetch_metadata(Some(topic), Duration::from_secs(10))?
        .topics()[0]
        .partitions()
        .len();
    let mut at_end = std::collections::HashSet::new();
    let stdout = std::io::stdout();
    let mut out = std::io::BufWriter::with_capacity(1 << 20, stdout.lock());
    let deadline = Instant::now() + Duration::from_secs(600);
    while at_end.len() < partitions {
        anyhow::ensure!(
            Instant::now() < deadline,
            "topic not read to its end within 600 s"
        );
        match consumer.poll(Duration::from_millis(500)) {
            Some(Ok(m)) => {
                out.write_all(m.payload().unwrap_or_default())?;
                out.write_all(b"\n")?;
            }
            Some(Err(rdkafka::error::KafkaError::PartitionEOF(p))) => {
                at_end.insert(p);
            }
            Some(Err(e)) => bail!("consumer: {e}"),
            None => {}
        }
    }
    out.flush()?;
    Ok(ExitCode::SUCCESS)
}
