//! kafka_lag items of deployment checklists (issue 12), read from the verdicts of the real
//! Kafka sampler on the TEST broker: a caught-up group passes after the item's duration; a
//! group that stopped with lag (ERR) fails the item at once; a group the sampler does not
//! know is inconclusive, never a pass.

mod common;

use common::{TestApp, dep_item as item, settled};
use domain::Role;
use domain::reach::Access;
use domain::services::kafka_lag as lag;
use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, CommitMode, Consumer};
use rdkafka::producer::{BaseProducer, BaseRecord, Producer};
use rdkafka::{Offset, TopicPartitionList};
use serde_json::json;
use sqlx::PgPool;
use std::time::{Duration, Instant};

#[sqlx::test(migrations = "../migrations")]
async fn kafka_lag_items_follow_the_samplers_verdicts(pool: PgPool) {
    let app = TestApp::spawn(pool.clone()).await;
    let admin = app.create_token("admin", Role::Admin).await;
    let approver = app.create_token("tpl", Role::Approver).await;
    let yaml = "id: consumer-release
name: Consumer release
sections:
  pre:
    - id: no-lag
      kind: kafka_lag
      text: The consumer group is healthy
      target: kafka
      group: '{{service}}'
      duration: 10s
";
    let res = app
        .plain()
        .post(app.url("/api/v1/deployment-templates"))
        .bearer_auth(&approver)
        .header("content-type", "application/yaml")
        .body(yaml)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 201, "{}", res.text().await.unwrap());
    let (s, t) = app
        .post(&admin, "/api/v1/targets", json!({"name": "events", "kind": "kafka", "connection": common::kafka_brokers(), "environment": "test"}))
        .await;
    assert_eq!(s, 201, "{t}");
    let target = t["id"].as_i64().unwrap();

    // A topic with 50 messages; one group read them all, another stopped at 10.
    let topic = common::unique("orders");
    let admin_client: AdminClient<DefaultClientContext> = ClientConfig::new()
        .set("bootstrap.servers", common::kafka_brokers())
        .create()
        .unwrap();
    for r in admin_client
        .create_topics(
            &[NewTopic::new(&topic, 1, TopicReplication::Fixed(1))],
            &AdminOptions::new(),
        )
        .await
        .unwrap()
    {
        r.unwrap();
    }
    let producer: BaseProducer = ClientConfig::new()
        .set("bootstrap.servers", common::kafka_brokers())
        .create()
        .unwrap();
    for i in 0..50 {
        producer
            .send(
                BaseRecord::<(), str>::to(&topic)
                    .partition(0)
                    .payload(&format!("m{i}")),
            )
            .unwrap();
    }
    producer.flush(Duration::from_secs(10)).unwrap();
    let commit = |group: &str, offset: i64| {
        let c: BaseConsumer = ClientConfig::new()
            .set("bootstrap.servers", common::kafka_brokers())
            .set("group.id", group)
            .create()
            .unwrap();
        let mut tpl = TopicPartitionList::new();
        tpl.add_partition_offset(&topic, 0, Offset::Offset(offset))
            .unwrap();
        c.commit(&tpl, CommitMode::Sync).unwrap();
    };
    let healthy = common::unique("ledger");
    let stopped = common::unique("mailer");
    commit(&healthy, 50);
    commit(&stopped, 10);

    // The real sampler, a round every 300 ms, and the evaluation loop.
    let sampler_pool = pool.clone();
    tokio::spawn(async move {
        loop {
            let _ = lag::sample_round(
                &sampler_pool,
                &Access::default(),
                target,
                "test",
                Duration::from_secs(5),
                None,
            )
            .await;
            tokio::time::sleep(Duration::from_millis(300)).await;
        }
    });
    let _checks = common::spawn_checks(pool.clone(), Duration::from_secs(10));
    let open = |service: String| {
        let app = &app;
        let admin = admin.clone();
        async move {
            let (s, d) = app
                .post(&admin, "/api/v1/deployments", json!({"service": service, "environment": "test", "version": "1", "template": "consumer-release", "targets": {"kafka": "events"}}))
                .await;
            assert_eq!(s, 201, "{d}");
            d["deployment"]["key"].as_str().unwrap().to_string()
        }
    };

    // Caught up: passes once its readings span the item's 10 s.
    let t0 = Instant::now();
    let ok = open(healthy.clone()).await;
    let d = settled(&app, &admin, &ok, "no-lag", Duration::from_secs(90)).await;
    let it = item(&d, "no-lag");
    assert_eq!(it["state"], "passed", "{it:#}");
    assert_eq!(
        it["kafka_lag"]["group"],
        healthy.as_str(),
        "the service filled in"
    );
    assert!(
        t0.elapsed() >= Duration::from_secs(10),
        "not before its duration"
    );
    assert!(it["measurements"].as_array().unwrap().len() >= 3, "{it:#}");

    // The deployment is drawn on the group's lag graphs (and listed under them).
    let (s, series) = app
        .get(
            &admin,
            &format!("/api/v1/kafka/{target}/groups/{healthy}/lag"),
        )
        .await;
    assert_eq!(s, 200, "{series}");
    let ann = series["annotations"].as_array().unwrap();
    assert!(
        ann.iter()
            .any(|a| a["key"] == ok.as_str() && a["kind"] == "deployment"),
        "{ann:?}"
    );
    let viewer = app.signed_in("vic", Role::Viewer).await;
    let html = common::page(&viewer, &app, &format!("/kafka/{target}/groups/{healthy}"))
        .await
        .1;
    assert!(
        html.contains(&format!("href=\"/deployments/{ok}\"")),
        "the mark links the deployment"
    );

    // Stopped with lag 40: the sampler says ERR, the item fails with the verdict's reason.
    let bad = open(stopped.clone()).await;
    let d = settled(&app, &admin, &bad, "no-lag", Duration::from_secs(90)).await;
    let it = item(&d, "no-lag");
    assert_eq!(it["state"], "failed", "{it:#}");
    assert!(
        it["note"].as_str().unwrap().contains("ERR (lag 40)"),
        "{it:#}"
    );

    // A group the sampler does not know: inconclusive after three readings, never passed.
    let unknown = open(common::unique("ghost")).await;
    let d = settled(&app, &admin, &unknown, "no-lag", Duration::from_secs(90)).await;
    let it = item(&d, "no-lag");
    assert_eq!(it["state"], "inconclusive", "{it:#}");
    assert!(
        it["note"].as_str().unwrap().contains("no verdict"),
        "{it:#}"
    );
}
