//! The real broker: idempotent produce with acks=all, consumer groups, commits, resume.
#![cfg(feature = "integration")]

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use rdkafka::consumer::{CommitMode, Consumer, StreamConsumer};
use rdkafka::producer::{FutureProducer, FutureRecord};
use rdkafka::Message;
use ricochet_integration_tests::{kafka, unique};
use ricochet_kafka::{ensure_topics, TopicOutcome};

async fn produce(producer: &FutureProducer, topic: &str, range: std::ops::Range<u32>) {
    for i in range {
        let key = format!("esp.example/sender-{}", i % 7);
        let payload = format!("{{\"n\":{i}}}");
        producer
            .send(
                FutureRecord::to(topic).key(&key).payload(&payload),
                Duration::from_secs(10),
            )
            .await
            .unwrap_or_else(|(e, _)| panic!("produce {i}: {e}"));
    }
}

/// Consumes until `expected` distinct payloads arrived, committing each; returns them.
async fn consume(consumer: &StreamConsumer, expected: usize) -> BTreeSet<String> {
    let deadline = Instant::now() + Duration::from_secs(60);
    let mut seen = BTreeSet::new();
    while seen.len() < expected {
        assert!(
            Instant::now() < deadline,
            "only {} of {expected} messages within 60 s",
            seen.len()
        );
        if let Ok(Ok(m)) = tokio::time::timeout(Duration::from_millis(500), consumer.recv()).await {
            seen.insert(String::from_utf8(m.payload().unwrap().to_vec()).unwrap());
            consumer.commit_message(&m, CommitMode::Sync).unwrap();
        }
    }
    seen
}

#[tokio::test]
async fn produce_consume_commit_and_resume_in_a_group() {
    let mut config = kafka();
    config.partitions = 3;
    let topic = unique("it-kafka");
    let outcomes = ensure_topics(&config, &[&topic])
        .await
        .expect("create topic");
    assert_eq!(outcomes, vec![TopicOutcome::Created(topic.clone())]);
    let again = ensure_topics(&config, &[&topic])
        .await
        .expect("create topic again");
    assert_eq!(
        again,
        vec![TopicOutcome::Existed(topic.clone())],
        "creation is idempotent"
    );

    let producer: FutureProducer = config.producer_config().create().unwrap();
    produce(&producer, &topic, 0..100).await;

    let group = unique("it-group");
    let consumer: StreamConsumer = config.consumer_config(&group).create().unwrap();
    consumer.subscribe(&[&topic]).unwrap();
    let first = consume(&consumer, 100).await;
    assert_eq!(first.len(), 100);
    assert_eq!(first, (0..100).map(|i| format!("{{\"n\":{i}}}")).collect());
    drop(consumer);

    // A new member of the same group resumes after the committed offsets: it
    // sees only what was produced since, not the first hundred again.
    produce(&producer, &topic, 100..110).await;
    let consumer: StreamConsumer = config.consumer_config(&group).create().unwrap();
    consumer.subscribe(&[&topic]).unwrap();
    let second = consume(&consumer, 10).await;
    assert_eq!(
        second,
        (100..110).map(|i| format!("{{\"n\":{i}}}")).collect()
    );
}
