//! The Kafka consumer-lag probe: for one group, all groups, or the groups reading a topic —
//! state, members and their assignment, committed / log-start / log-end offsets and lag per
//! partition (no commit shown as such), commits below the log start, idle and surplus
//! members, uneven assignment, dead-letter topics and their growth, rebalance signs, and
//! the age of the oldest unread message.
//!
//! Lookout never joins the groups it watches: the observation (ListGroups, DescribeGroups,
//! OffsetFetch, ListOffsets) goes through [`super::wire`], a read-only client that batches
//! many groups per request and never sends JoinGroup — so no rebalance is triggered (a test
//! describes the group while the probe runs). The record at a committed offset (for the
//! age of the oldest unread message) is read with an rdkafka consumer that assigns and
//! seeks without a group. Every request runs within the step limit.

use super::config::KafkaConfig;
use super::rules::{self, CatchUp};
use super::wire::{Cluster, WireError};
use crate::ProbeError;
use crate::framework::{
    BoxFuture, CodeDoc, Connection, Ctx, Finding, ParamKind, ParamSpec, Params, Probe, ProbeSpec,
    Severity, Table, group_i,
};
use rdkafka::ClientConfig;
use rdkafka::Offset;
use rdkafka::TopicPartitionList;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::Message;
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::future::Future;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

pub struct KafkaLagProbe;

const STEPS: &[&str] = &[
    "Connect",
    "Describe groups",
    "Committed offsets",
    "Log offsets",
    "Oldest unread messages",
    "Second sample",
    "Analyse",
];

const PARAMS: &[ParamSpec] = &[
    ParamSpec {
        name: "group",
        label: "Consumer group",
        help: "One group; empty for every consumer group.",
        kind: ParamKind::Text { max_len: 249 },
        default: "",
    },
    ParamSpec {
        name: "topic",
        label: "Topic",
        help: "Only groups reading this topic (and only its partitions); empty for all.",
        kind: ParamKind::Text { max_len: 249 },
        default: "",
    },
    ParamSpec {
        name: "sample_interval_s",
        label: "Sample interval (s)",
        help: "Seconds between the two samples that give rates, the catch-up estimate, DLQ growth and rebalances.",
        kind: ParamKind::Int { min: 1, max: 60 },
        default: "5",
    },
    ParamSpec {
        name: "dlq_patterns",
        label: "Dead-letter topic patterns",
        help: "Comma-separated; {topic} is replaced by each topic the groups read.",
        kind: ParamKind::Text { max_len: 500 },
        default: DEFAULT_DLQ_PATTERNS,
    },
    ParamSpec {
        name: "lag_warn",
        label: "Lag warning (messages)",
        help: "A group lagging by at least this many messages while not catching up is a warning.",
        kind: ParamKind::Int {
            min: 1,
            max: 1 << 50,
        },
        default: "1000",
    },
    ParamSpec {
        name: "max_groups",
        label: "Most groups",
        help: "At most this many groups are examined (alphabetical).",
        kind: ParamKind::Int { min: 1, max: 2000 },
        default: "200",
    },
];

const CODES: &[CodeDoc] = &[
    CodeDoc {
        code: "KAFKA_GROUP_LAG",
        severity: Severity::Warning,
        meaning: "A consumer group's lag per partition (committed, log start, log end, lag, owner, oldest unread message) with its rates and catch-up estimate; a warning when the lag is large and not shrinking.",
        remediation: "Scale consumers up to the partition count; look at the slowest partition's consumer (the table shows who owns it).",
    },
    CodeDoc {
        code: "KAFKA_GROUP_EMPTY_WITH_LAG",
        severity: Severity::Critical,
        meaning: "The group has no members but unread messages: nobody is consuming.",
        remediation: "Start the consumer service; check its logs for why it left the group.",
    },
    CodeDoc {
        code: "KAFKA_NO_COMMITTED_OFFSET",
        severity: Severity::Warning,
        meaning: "Partitions the group reads have no committed offset (shown explicitly, never as 0): on restart auto.offset.reset decides where it starts.",
        remediation: "Check the consumer commits (enable.auto.commit or commitSync) and its auto.offset.reset.",
    },
    CodeDoc {
        code: "KAFKA_COMMITTED_BELOW_LOG_START",
        severity: Severity::Critical,
        meaning: "The committed offset is below the log start: messages were deleted by retention before the group read them.",
        remediation: "Those messages are lost to this group; raise retention or consume faster, and reset the group to the log start knowingly.",
    },
    CodeDoc {
        code: "KAFKA_MORE_MEMBERS_THAN_PARTITIONS",
        severity: Severity::Warning,
        meaning: "The group has more members than partitions: the extra members sit idle.",
        remediation: "Add partitions to the topic or run fewer consumers.",
    },
    CodeDoc {
        code: "KAFKA_IDLE_MEMBERS",
        severity: Severity::Info,
        meaning: "Members of the group have no partitions assigned.",
        remediation: "Normal during a rebalance or with surplus consumers; otherwise check the assignor and subscriptions.",
    },
    CodeDoc {
        code: "KAFKA_UNEVEN_ASSIGNMENT",
        severity: Severity::Warning,
        meaning: "Some members own at least two more partitions than others.",
        remediation: "Use the cooperative-sticky or round-robin assignor (the range assignor skews across several topics).",
    },
    CodeDoc {
        code: "KAFKA_DLQ_MESSAGES",
        severity: Severity::Warning,
        meaning: "A dead-letter topic next to a topic the groups read holds messages (growth during the probe shown).",
        remediation: "Read the DLQ's newest messages for the error, fix the consumer, then replay the DLQ.",
    },
    CodeDoc {
        code: "KAFKA_REBALANCING",
        severity: Severity::Warning,
        meaning: "The group is rebalancing (PreparingRebalance / CompletingRebalance; Assigning / Reconciling on the consumer protocol), or its members or epoch changed between the two samples.",
        remediation: "Frequent rebalances stall consumption: check max.poll.interval.ms vs processing time, session timeouts, and crash-looping consumers.",
    },
];

pub static SPEC: ProbeSpec = ProbeSpec {
    name: "kafka-lag",
    kind: "kafka",
    title: "Kafka consumer lag",
    description: "Consumer groups: state, members and assignment; committed, log-start and log-end offsets and lag per partition; partitions without commits; commits below the log start; idle and surplus members; uneven assignment; dead-letter topics; rebalances; oldest unread message; catch-up estimate. Never joins the groups it watches.",
    params: PARAMS,
    steps: STEPS,
    codes: CODES,
    run_timeout_s: 180,
    check: None,
};

impl Probe for KafkaLagProbe {
    fn spec(&self) -> &'static ProbeSpec {
        &SPEC
    }
    fn run<'a>(
        &'a self,
        ctx: &'a Ctx,
        conn: &'a Connection,
        params: &'a Params,
    ) -> BoxFuture<'a, Result<(), ProbeError>> {
        Box::pin(run(ctx, conn, params))
    }
}

/// (topic, partition)
pub type Tp = (String, i32);

#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Member {
    pub id: String,
    pub client_id: String,
    pub host: String,
    pub parts: Vec<Tp>,
}

#[derive(Debug, Clone)]
pub struct GroupSnap {
    pub name: String,
    pub state: String,
    pub protocol: String,
    pub members: Vec<Member>,
    /// Every partition of the topics the group reads → committed offset (None: no commit).
    pub committed: BTreeMap<Tp, Option<i64>>,
    /// The group epoch (groups on the consumer protocol of KIP-848; the classic protocol
    /// shows its generation only to members).
    pub generation: Option<i32>,
}

impl GroupSnap {
    /// Caught in a rebalance: PreparingRebalance / CompletingRebalance (classic), Assigning
    /// / Reconciling (consumer protocol).
    pub fn is_rebalancing(&self) -> bool {
        matches!(
            self.state.as_str(),
            "PreparingRebalance" | "CompletingRebalance" | "Assigning" | "Reconciling"
        )
    }
}

pub use super::wire::parse_assignment;

fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

fn base(kafka: &KafkaConfig, step: Duration) -> ClientConfig {
    let ms = step.as_millis().max(1).to_string();
    let mut c = ClientConfig::new();
    kafka.apply(&mut c);
    c.set("socket.timeout.ms", &ms)
        .set("socket.connection.setup.timeout.ms", &ms)
        .set("client.id", "lookout-kafka-lag-probe")
        .set("enable.auto.commit", "false")
        .set("enable.partition.eof", "false")
        .set("log_level", "3");
    c
}

/// Runs a blocking librdkafka call on the blocking pool within the step limit.
async fn blocking<T: Send + 'static>(
    ctx: &Ctx,
    target: &str,
    what: &str,
    f: impl FnOnce() -> Result<T, rdkafka::error::KafkaError> + Send + 'static,
) -> Result<T, ProbeError> {
    ctx.pace(1).await?;
    let start = Instant::now();
    let limit = ctx.step_timeout();
    let t = target.to_string();
    let w = what.to_string();
    ctx.net(
        target,
        async move {
            match tokio::task::spawn_blocking(f).await {
                Ok(Ok(v)) => Ok(v),
                Ok(Err(e)) => Err(classify(&t, &w, &e, start.elapsed(), limit)),
                Err(e) => Err(ProbeError::Server {
                    target: t.clone(),
                    reason: format!("{w}: {e}"),
                }),
            }
        },
        |e| e,
    )
    .await
}

fn classify(
    target: &str,
    what: &str,
    e: &rdkafka::error::KafkaError,
    elapsed: Duration,
    limit: Duration,
) -> ProbeError {
    use rdkafka::types::RDKafkaErrorCode as C;
    match e.rdkafka_error_code() {
        Some(C::AllBrokersDown | C::BrokerTransportFailure | C::Resolve) => {
            ProbeError::Unreachable {
                target: target.into(),
                reason: format!("{what}: {e}"),
                elapsed: crate::secs(elapsed),
            }
        }
        Some(C::SaslAuthenticationFailed | C::Authentication) => ProbeError::AuthFailed {
            target: target.into(),
            reason: e.to_string(),
        },
        Some(C::OperationTimedOut | C::RequestTimedOut)
            if elapsed + Duration::from_millis(200) >= limit =>
        {
            ProbeError::Unreachable {
                target: target.into(),
                reason: format!("{what}: no broker answered ({e})"),
                elapsed: crate::secs(elapsed),
            }
        }
        _ => ProbeError::Server {
            target: target.into(),
            reason: format!("{what}: {e}"),
        },
    }
}

/// One observation of a cluster's consumer groups.
pub struct Snapshot {
    pub at_ms: i64,
    pub groups: Vec<GroupSnap>,
    /// (log start, log end) per partition.
    pub offsets: HashMap<Tp, (i64, i64)>,
    /// Partition count per topic.
    pub topics: BTreeMap<String, i32>,
    /// Dead-letter topics next to each topic read (their offsets are in `offsets`).
    pub dlq: BTreeMap<String, Vec<String>>,
    /// Kafka requests this observation made (every one, ApiVersions included).
    pub requests: u64,
}

/// One sample of every consumer group on a cluster, for the background sampler. Runs the
/// same code as the probe (same reads, same never-join guarantee), bounded per step.
/// `dlq_patterns`: comma-separated, `{topic}` replaced by each topic read (empty: the
/// defaults, [`DEFAULT_DLQ_PATTERNS`]).
pub async fn sample_cluster(
    connection: &str,
    step: Duration,
    max_groups: i64,
    dlq_patterns: &str,
    allowed: &[crate::net::Network],
) -> Result<Snapshot, ProbeError> {
    let mut kafka = KafkaConfig::parse(connection, true).map_err(ProbeError::InvalidTarget)?;
    kafka.allowed = allowed.to_vec();
    let ctx = Ctx::new(
        &SPEC,
        step,
        tokio_util::sync::CancellationToken::new(),
        std::sync::Arc::new(()),
    );
    let mut raw = BTreeMap::new();
    let patterns = match dlq_patterns.trim() {
        "" => DEFAULT_DLQ_PATTERNS,
        p => p,
    };
    raw.insert("dlq_patterns".to_string(), patterns.to_string());
    let params =
        crate::framework::validate_params(&SPEC, &raw).map_err(ProbeError::InvalidTarget)?;
    let max = max_groups.clamp(1, MAX_GROUPS) as usize;
    snapshot(&ctx, &kafka.bootstrap, &kafka, &params, max, false).await
}

/// The most groups one observation covers (the sampler's bound; the probe's parameter is
/// capped lower).
pub const MAX_GROUPS: i64 = 100_000;
/// Dead-letter topics looked for next to every topic read (the probe's default, and the
/// sampler's unless the target's `kafka-dlq-patterns` label says otherwise).
pub const DEFAULT_DLQ_PATTERNS: &str = "{topic}.dlq,{topic}-dlq,{topic}.DLQ,{topic}-DLQ";

/// One wire request: paced, within the step limit, stopped at once by a cancel.
async fn wire_step<T>(
    ctx: &Ctx,
    target: &str,
    fut: impl Future<Output = Result<T, WireError>>,
) -> Result<T, ProbeError> {
    ctx.pace(1).await?;
    let start = Instant::now();
    ctx.net(target, fut, |e| wire_error(target, e, start.elapsed()))
        .await
}

/// What a failed wire step means for the probe: down (or TLS refused), wrong credentials,
/// or a broker that answered with an error.
pub(crate) fn wire_error(target: &str, e: WireError, elapsed: Duration) -> ProbeError {
    match e {
        WireError::Auth { .. } => ProbeError::AuthFailed {
            target: target.into(),
            reason: e.to_string(),
        },
        e if e.is_unreachable() => ProbeError::Unreachable {
            target: target.into(),
            reason: e.to_string(),
            elapsed: crate::secs(elapsed),
        },
        e => ProbeError::Server {
            target: target.into(),
            reason: e.to_string(),
        },
    }
}

/// Observes the groups: ListGroups on every broker, then per coordinator one
/// DescribeGroups and one OffsetFetch per 500 groups, then ListOffsets per partition leader
/// (log start and end). Requests grow with brokers and batches, not with groups or
/// partitions; none of them joins a group.
async fn snapshot(
    ctx: &Ctx,
    target: &str,
    kafka: &KafkaConfig,
    params: &Params,
    max_groups: usize,
    first: bool,
) -> Result<Snapshot, ProbeError> {
    let step = ctx.step_timeout();
    let mut k = wire_step(ctx, target, Cluster::connect(kafka, step)).await?;
    let md = wire_step(ctx, target, k.metadata()).await?;
    let topics: BTreeMap<String, i32> = md
        .topics
        .iter()
        .map(|(t, leaders)| (t.clone(), leaders.len() as i32))
        .collect();
    if first {
        ctx.phase("Describe groups");
    }
    let want_group = params.text("group").trim().to_string();
    let want_topic = params.text("topic").trim().to_string();
    let mut names = vec![];
    for b in &md.brokers {
        for g in wire_step(ctx, target, k.list_groups(b.id)).await? {
            if (g.protocol_type == "consumer" || g.protocol_type.is_empty())
                && (want_group.is_empty() || g.name == want_group)
            {
                names.push(g.name);
            }
        }
    }
    if !want_group.is_empty() && names.is_empty() {
        // Not listed: describe it anyway, so the report says it is dead / unknown.
        names.push(want_group.clone());
    }
    names.sort();
    names.dedup();
    names.truncate(max_groups.max(1));
    let coordinators = wire_step(ctx, target, k.coordinators(&names)).await?;
    let mut by_node: BTreeMap<i32, Vec<String>> = BTreeMap::new();
    for n in &names {
        if let Some(node) = coordinators.get(n) {
            by_node.entry(*node).or_default().push(n.clone());
        }
    }
    let mut described = vec![];
    for (node, gs) in &by_node {
        let mut got = wire_step(ctx, target, k.describe_groups(*node, gs)).await?;
        // Groups on the consumer protocol (KIP-848) describe as Dead to DescribeGroups
        // although they are listed: ConsumerGroupDescribe tells their state, epoch, members
        // and assignment (brokers without it have no such groups).
        // A group that really is dead (or unknown) stays as DescribeGroups described it.
        let newer: Vec<String> = got
            .iter()
            .filter(|d| d.error == 0 && d.state == "Dead")
            .map(|d| d.name.clone())
            .collect();
        if !newer.is_empty() && k.supports_consumer_group_describe() {
            let fresh: Vec<_> = wire_step(ctx, target, k.consumer_group_describe(*node, &newer))
                .await?
                .into_iter()
                .filter(|d| d.error == 0)
                .collect();
            got.retain(|d| !fresh.iter().any(|f| f.name == d.name));
            got.extend(fresh);
        }
        described.extend(got);
    }
    if first {
        ctx.phase("Committed offsets");
        ctx.detail(format!("{} groups", described.len()));
    }
    let mut committed = HashMap::new();
    for (node, gs) in &by_node {
        committed.extend(wire_step(ctx, target, k.offset_fetch(*node, gs)).await?);
    }
    let all_parts = |topic: &str| -> Vec<Tp> {
        topics
            .get(topic)
            .map(|n| (0..*n).map(|p| (topic.to_string(), p)).collect())
            .unwrap_or_default()
    };
    let mut groups = vec![];
    for d in described {
        if d.error != 0 || (d.state == "Dead" && d.name != want_group) {
            continue;
        }
        let members: Vec<Member> = d
            .members
            .iter()
            .map(|m| Member {
                id: m.id.clone(),
                client_id: m.client_id.clone(),
                host: m.host.clone(),
                parts: m.parts.clone(),
            })
            .collect();
        let commits: HashMap<Tp, i64> = match committed.remove(&d.name) {
            Some(Ok(list)) => list.into_iter().collect(),
            _ => HashMap::new(),
        };
        // The partitions reported: every partition of the topics the members are assigned
        // (those without a commit show as such); for a group without assignments, the
        // topics it has commits on.
        let assigned: BTreeSet<&String> = members
            .iter()
            .flat_map(|m| m.parts.iter().map(|(t, _)| t))
            .collect();
        let asked: BTreeSet<String> = if !want_topic.is_empty() {
            BTreeSet::from([want_topic.clone()])
        } else if !assigned.is_empty() {
            assigned.into_iter().cloned().collect()
        } else {
            commits.keys().map(|(t, _)| t.clone()).collect()
        };
        let mut parts: BTreeMap<Tp, Option<i64>> = BTreeMap::new();
        for t in &asked {
            for tp in all_parts(t) {
                let c = commits.get(&tp).copied();
                parts.insert(tp, c);
            }
        }
        // Commits on partitions the metadata does not list (a deleted topic) are kept.
        for (tp, c) in &commits {
            if asked.contains(&tp.0) {
                parts.entry(tp.clone()).or_insert(Some(*c));
            }
        }
        let reads_topic = want_topic.is_empty()
            || commits.keys().any(|(t, _)| *t == want_topic)
            || members
                .iter()
                .any(|m| m.parts.iter().any(|(t, _)| *t == want_topic));
        if !reads_topic {
            continue;
        }
        parts = parts.into_iter().take(20_000).collect();
        groups.push(GroupSnap {
            name: d.name,
            state: d.state,
            protocol: d.protocol,
            members,
            committed: parts,
            generation: d.generation,
        });
    }
    groups.sort_by(|a, b| a.name.cmp(&b.name));
    if first {
        ctx.phase("Log offsets");
    }
    let mut parts: BTreeSet<Tp> = groups
        .iter()
        .flat_map(|g| g.committed.keys().cloned())
        .collect();
    // Dead-letter topics next to the topics read.
    let dlq = dlq_of(params.text("dlq_patterns"), &topics, &parts);
    for t in dlq.values().flatten() {
        parts.extend(all_parts(t));
    }
    let mut by_leader: BTreeMap<i32, Vec<Tp>> = BTreeMap::new();
    for tp in parts {
        if let Some(&leader) = md.topics.get(&tp.0).and_then(|l| l.get(tp.1 as usize))
            && leader >= 0
        {
            by_leader.entry(leader).or_default().push(tp);
        }
    }
    let mut offsets: HashMap<Tp, (i64, i64)> = HashMap::new();
    for (leader, ps) in &by_leader {
        for chunk in ps.chunks(PARTITION_BATCH) {
            let start = wire_step(ctx, target, k.list_offsets(*leader, chunk, -2)).await?;
            let end = wire_step(ctx, target, k.list_offsets(*leader, chunk, -1)).await?;
            for (tp, e) in end {
                let s = start.get(&tp).copied().unwrap_or(0);
                offsets.insert(tp, (s, e));
            }
        }
    }
    Ok(Snapshot {
        at_ms: now_ms(),
        groups,
        offsets,
        topics,
        dlq,
        requests: k.requests,
    })
}

/// Partitions per ListOffsets request.
const PARTITION_BATCH: usize = 10_000;

/// DLQ topics that exist, for the topics in `parts`.
/// The dead-letter topics that exist next to the topics in `parts`, per topic read.
pub fn dlq_of(
    patterns: &str,
    topics: &BTreeMap<String, i32>,
    parts: &BTreeSet<Tp>,
) -> BTreeMap<String, Vec<String>> {
    let read: BTreeSet<&String> = parts.iter().map(|(t, _)| t).collect();
    let mut out: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for t in read {
        for pat in patterns.split(',').map(str::trim).filter(|p| !p.is_empty()) {
            let name = pat.replace("{topic}", t);
            if name != *t && topics.contains_key(&name) {
                let v = out.entry(t.clone()).or_default();
                if !v.contains(&name) {
                    v.push(name);
                }
            }
        }
    }
    out
}

/// DLQ topics that exist, for the topics in `parts`.
fn dlq_topics(
    params: &Params,
    topics: &BTreeMap<String, i32>,
    parts: &BTreeSet<Tp>,
) -> Vec<String> {
    let mut out: Vec<String> = vec![];
    for names in dlq_of(params.text("dlq_patterns"), topics, parts).into_values() {
        for n in names {
            if !out.contains(&n) {
                out.push(n);
            }
        }
    }
    out
}

/// The timestamps (ms) of the records at the given offsets (one offset per partition), for
/// exact time lag: read with assign + seek by a client that never joins a group, within
/// `step`. Partitions that yield nothing in time are left out.
pub async fn record_times(
    connection: &str,
    step: Duration,
    at: Vec<(Tp, i64)>,
    allowed: &[crate::net::Network],
) -> Result<HashMap<Tp, i64>, ProbeError> {
    let mut kafka = KafkaConfig::parse(connection, true).map_err(ProbeError::InvalidTarget)?;
    kafka.allowed = allowed.to_vec();
    let ctx = Ctx::new(
        &SPEC,
        step,
        tokio_util::sync::CancellationToken::new(),
        std::sync::Arc::new(()),
    );
    oldest_unread(&ctx, &kafka.bootstrap, &kafka, at).await
}

/// The timestamp (ms) of the record at each committed offset: read with a client that has
/// no group (assign + seek), bounded by the step limit.
async fn oldest_unread(
    ctx: &Ctx,
    target: &str,
    kafka: &KafkaConfig,
    at: Vec<(Tp, i64)>,
) -> Result<HashMap<Tp, i64>, ProbeError> {
    if at.is_empty() {
        return Ok(HashMap::new());
    }
    if !kafka.allowed.is_empty() {
        // librdkafka would connect to whatever brokers the cluster advertises, unchecked:
        // with an allow-list the records are not read, and time lag stays estimated.
        return Err(ProbeError::Server {
            target: target.into(),
            reason: "records are not read while LOOKOUT_TARGET_NETWORKS is set (librdkafka cannot be held to it); time lag is estimated".into(),
        });
    }
    let step = ctx.step_timeout().min(Duration::from_secs(5));
    let mut cfg = base(kafka, step);
    // librdkafka wants a group id even for assign(); this one is never joined (no
    // subscribe) and never committed to (auto commit off), so it never exists on the broker.
    cfg.set("group.id", "lookout-oldest-unread-reader")
        .set("fetch.max.bytes", "1048576")
        .set("max.partition.fetch.bytes", "65536");
    blocking(ctx, target, "Fetch (oldest unread message)", move || {
        let c: BaseConsumer = cfg.create()?;
        let mut tpl = TopicPartitionList::new();
        for ((t, p), o) in &at {
            tpl.add_partition_offset(t, *p, Offset::Offset(*o))?;
        }
        c.assign(&tpl)?;
        let mut out = HashMap::new();
        let deadline = Instant::now() + step.saturating_sub(Duration::from_millis(200));
        while out.len() < at.len() && Instant::now() < deadline {
            if let Some(Ok(m)) = c.poll(Duration::from_millis(100)) {
                let key = (m.topic().to_string(), m.partition());
                if let Some(ts) = m.timestamp().to_millis() {
                    out.entry(key).or_insert(ts);
                }
            }
        }
        Ok(out)
    })
    .await
}

async fn run(ctx: &Ctx, conn: &Connection, params: &Params) -> Result<(), ProbeError> {
    let mut kafka = KafkaConfig::parse(&conn.url, true).map_err(ProbeError::InvalidTarget)?;
    kafka.allowed = conn.allowed.clone();
    let bootstrap = &kafka;
    let target = conn.display.clone();
    ctx.phase("Connect");
    let max_groups = params.int("max_groups").max(1) as usize;
    let s1 = snapshot(ctx, &target, bootstrap, params, max_groups, true).await?;
    ctx.phase("Oldest unread messages");
    let lagging: Vec<(Tp, i64)> = s1
        .groups
        .iter()
        .flat_map(|g| g.committed.iter())
        .filter_map(|(tp, c)| {
            let c = (*c)?;
            let (start, end) = *s1.offsets.get(tp)?;
            (end - c > rules::MARKER_TOLERANCE && c >= start).then(|| (tp.clone(), c))
        })
        .collect::<BTreeMap<_, _>>()
        .into_iter()
        .take(200)
        .collect();
    let oldest = match oldest_unread(ctx, &target, bootstrap, lagging).await {
        Ok(m) => m,
        Err(ProbeError::Cancelled) => return Err(ProbeError::Cancelled),
        Err(e) => {
            // The age column stays empty; the rest of the report does not depend on it.
            ctx.evidence("oldest unread messages", &e.to_string());
            HashMap::new()
        }
    };
    ctx.phase("Second sample");
    ctx.sleep(Duration::from_secs(
        params.int("sample_interval_s").max(1) as u64
    ))
    .await?;
    let s2 = snapshot(ctx, &target, bootstrap, params, max_groups, false).await?;
    ctx.phase("Analyse");
    analyse(ctx, params, &s2.topics, &s1, &s2, &oldest);
    Ok(())
}

fn analyse(
    ctx: &Ctx,
    params: &Params,
    topics: &BTreeMap<String, i32>,
    s1: &Snapshot,
    s2: &Snapshot,
    oldest: &HashMap<Tp, i64>,
) {
    let now = s2.at_ms;
    let lag_warn = params.int("lag_warn");
    for g in &s2.groups {
        let before = s1.groups.iter().find(|x| x.name == g.name);
        let owner: HashMap<&Tp, &Member> = g
            .members
            .iter()
            .flat_map(|m| m.parts.iter().map(move |tp| (tp, m)))
            .collect();
        let mut t = Table::new(
            &format!("{} — partitions", g.name),
            &[
                "topic",
                "partition",
                "committed",
                "log start",
                "log end",
                "lag",
                "oldest unread",
                "owner",
            ],
        );
        let (mut total, mut sum1, mut sum2) = (0i64, (0i64, 0i64), (0i64, 0i64));
        let mut no_commit = vec![];
        let mut lost = vec![];
        for (tp, c) in &g.committed {
            let (start, end) = s2.offsets.get(tp).copied().unwrap_or((0, 0));
            let lag = c.map(|c| (end - c).max(0));
            if let Some(l) = lag {
                let eff = if l <= rules::MARKER_TOLERANCE
                    && s1.offsets.get(tp).map(|o| o.1) == Some(end)
                {
                    0
                } else {
                    l
                };
                total += eff;
                if let (Some(c1), Some((_, e1))) = (
                    before.and_then(|b| b.committed.get(tp).copied().flatten()),
                    s1.offsets.get(tp),
                ) {
                    sum1.0 += c1;
                    sum1.1 += e1;
                    sum2.0 += c.unwrap_or(0);
                    sum2.1 += end;
                }
            }
            match c {
                None => no_commit.push((tp.clone(), start, end)),
                Some(c) if *c < start => lost.push((tp.clone(), *c, start)),
                _ => {}
            }
            t.row(vec![
                tp.0.clone(),
                tp.1.to_string(),
                c.map(group_i).unwrap_or_else(|| "none (no commit)".into()),
                group_i(start),
                group_i(end),
                lag.map(group_i).unwrap_or_else(|| "–".into()),
                oldest
                    .get(tp)
                    .map(|ts| format!("{} ago", rules::span(now - ts)))
                    .unwrap_or_else(|| "–".into()),
                owner
                    .get(tp)
                    .map(|m| format!("{} ({})", m.client_id, m.host))
                    .unwrap_or_else(|| "unassigned".into()),
            ]);
        }
        let secs = (s2.at_ms - s1.at_ms).max(1);
        let est = rules::catch_up((0, sum1.0, sum1.1), (secs, sum2.0, sum2.1));
        let oldest_age = g
            .committed
            .keys()
            .filter_map(|tp| oldest.get(tp))
            .map(|ts| now - ts)
            .max();
        let shrinking = matches!(est, CatchUp::CatchingUp { .. } | CatchUp::CaughtUp);
        let sev = if total >= lag_warn && !shrinking {
            Severity::Warning
        } else {
            Severity::Info
        };
        let mut members = Table::new(
            &format!("{} — members", g.name),
            &["client id", "host", "member id", "partitions"],
        );
        for m in &g.members {
            members.row(vec![
                m.client_id.clone(),
                m.host.clone(),
                m.id.clone(),
                m.parts
                    .iter()
                    .map(|(t, p)| format!("{t}-{p}"))
                    .collect::<Vec<_>>()
                    .join(", "),
            ]);
        }
        ctx.finding(
            Finding::new(
                "KAFKA_GROUP_LAG",
                sev,
                format!(
                    "Group {} ({}, {} member{}): lag {} on {} partition{}; {}{}",
                    g.name,
                    g.state,
                    g.members.len(),
                    if g.members.len() == 1 { "" } else { "s" },
                    group_i(total),
                    g.committed.len(),
                    if g.committed.len() == 1 { "" } else { "s" },
                    est.sentence(),
                    oldest_age
                        .map(|a| format!("; oldest unread message {} old", rules::span(a)))
                        .unwrap_or_default()
                ),
            )
            .fact("group", &g.name)
            .fact("state", &g.state)
            .fact("protocol", if g.protocol.is_empty() { "–" } else { &g.protocol })
            .fact("members", g.members.len())
            .fact("total lag", total)
            .fact("catch-up", est.sentence())
            .fact("sampled", format!("twice, {} apart", rules::span(secs)))
            .command("ListGroups + DescribeGroups; OffsetFetch; ListOffsets (earliest, latest)")
            .table(t)
            .table(members)
            .remediation(format!(
                "If the lag is not shrinking: scale the consumers up to the partition count ({} partitions), then look at the slowest partition's consumer (the owner column). Inspect with:\n\n```\nkafka-consumer-groups.sh --bootstrap-server <broker> --describe --group {}\n```",
                g.committed.len(),
                g.name
            )),
        );
        if g.members.is_empty() && total > 0 {
            ctx.finding(
                Finding::new(
                    "KAFKA_GROUP_EMPTY_WITH_LAG",
                    Severity::Critical,
                    format!("Group {} has no members and {} unread messages: nobody is consuming", g.name, group_i(total)),
                )
                .fact("state", &g.state)
                .fact("total lag", total)
                .command("DescribeGroups")
                .remediation(format!(
                    "Start (or fix) the service that consumes as `{}`; its logs say why it left the group. It will resume from the committed offsets.",
                    g.name
                )),
            );
        }
        if !no_commit.is_empty() {
            let mut nt = Table::new(
                "Partitions without a committed offset",
                &["topic", "partition", "log start", "log end"],
            );
            for ((tp, p), s, e) in &no_commit {
                nt.row(vec![tp.clone(), p.to_string(), group_i(*s), group_i(*e)]);
            }
            ctx.finding(
                Finding::new(
                    "KAFKA_NO_COMMITTED_OFFSET",
                    Severity::Warning,
                    format!("Group {}: {} partition(s) have no committed offset, e.g. {}-{}", g.name, no_commit.len(), no_commit[0].0.0, no_commit[0].0.1),
                )
                .command("OffsetFetch")
                .table(nt)
                .remediation("Where the group starts on these partitions is decided by the consumer's `auto.offset.reset` (latest skips everything already written). Check that the consumer commits after processing."),
            );
        }
        if !lost.is_empty() {
            let mut lt = Table::new(
                "Committed below the log start",
                &[
                    "topic",
                    "partition",
                    "committed",
                    "log start",
                    "messages lost",
                ],
            );
            let mut total_lost = 0;
            for ((tp, p), c, s) in &lost {
                total_lost += s - c;
                lt.row(vec![
                    tp.clone(),
                    p.to_string(),
                    group_i(*c),
                    group_i(*s),
                    group_i(s - c),
                ]);
            }
            ctx.finding(
                Finding::new(
                    "KAFKA_COMMITTED_BELOW_LOG_START",
                    Severity::Critical,
                    format!("Group {}: {} messages were deleted by retention before it read them ({} partition(s))", g.name, group_i(total_lost), lost.len()),
                )
                .command("OffsetFetch; ListOffsets (earliest)")
                .table(lt)
                .remediation(format!(
                    "Those messages are gone for this group. Raise the topic's retention or consume faster; then move the group to the log start knowingly (stop the consumers first):\n\n```\nkafka-consumer-groups.sh --bootstrap-server <broker> --group {} --reset-offsets --to-earliest --topic {} --execute\n```",
                    g.name, lost[0].0.0
                )),
            );
        }
        // Members vs partitions.
        let assigned_parts: usize = g.members.iter().map(|m| m.parts.len()).sum();
        let idle: Vec<&Member> = g.members.iter().filter(|m| m.parts.is_empty()).collect();
        let partitions: usize = g
            .members
            .iter()
            .flat_map(|m| m.parts.iter().map(|(t, _)| t))
            .collect::<BTreeSet<_>>()
            .iter()
            .map(|t| topics.get(*t).copied().unwrap_or(0) as usize)
            .sum::<usize>()
            .max(assigned_parts);
        if g.state == "Stable"
            && !g.members.is_empty()
            && g.members.len() > partitions
            && partitions > 0
        {
            ctx.finding(
                Finding::new(
                    "KAFKA_MORE_MEMBERS_THAN_PARTITIONS",
                    Severity::Warning,
                    format!("Group {} has {} members for {} partitions: {} sit idle", g.name, g.members.len(), partitions, g.members.len() - partitions),
                )
                .fact("members", g.members.len())
                .fact("partitions", partitions)
                .command("DescribeGroups")
                .remediation("Extra consumers add nothing: add partitions to the topic (kafka-topics.sh --alter --partitions N) or run fewer consumers."),
            );
        }
        if g.state == "Stable" && !idle.is_empty() {
            let mut it = Table::new("Idle members", &["client id", "host", "member id"]);
            for m in &idle {
                it.row(vec![m.client_id.clone(), m.host.clone(), m.id.clone()]);
            }
            ctx.finding(
                Finding::new("KAFKA_IDLE_MEMBERS", Severity::Info, format!("Group {}: {} member(s) have no partitions", g.name, idle.len()))
                    .command("DescribeGroups")
                    .table(it)
                    .remediation("Normal with more consumers than partitions; otherwise check the members' subscriptions and the assignor."),
            );
        }
        let busy: Vec<usize> = g.members.iter().map(|m| m.parts.len()).collect();
        if g.state == "Stable" && g.members.len() > 1 && g.members.len() <= partitions {
            let (lo, hi) = (
                busy.iter().min().copied().unwrap_or(0),
                busy.iter().max().copied().unwrap_or(0),
            );
            if hi >= lo + 2 {
                ctx.finding(
                    Finding::new(
                        "KAFKA_UNEVEN_ASSIGNMENT",
                        Severity::Warning,
                        format!("Group {}: members own between {lo} and {hi} partitions", g.name),
                    )
                    .fact("assignor", if g.protocol.is_empty() { "–" } else { &g.protocol })
                    .command("DescribeGroups")
                    .remediation("The range assignor skews when a group reads several topics. Use `partition.assignment.strategy=cooperative-sticky` (or roundrobin) on the consumers."),
                );
            }
        }
        let changed = before.is_some_and(|b| {
            let ids = |g: &GroupSnap| {
                g.members
                    .iter()
                    .map(|m| m.id.clone())
                    .collect::<BTreeSet<_>>()
            };
            ids(b) != ids(g) || b.generation != g.generation
        });
        if g.is_rebalancing() || changed {
            ctx.finding(
                Finding::new(
                    "KAFKA_REBALANCING",
                    Severity::Warning,
                    if changed {
                        format!("Group {}: members changed between the two samples ({} → {} members; state {})", g.name, before.map(|b| b.members.len()).unwrap_or(0), g.members.len(), g.state)
                    } else {
                        format!("Group {} is rebalancing (state {})", g.name, g.state)
                    },
                )
                .fact("state", &g.state)
                .command("DescribeGroups, twice")
                .remediation("Rebalances stop consumption. If they repeat, compare processing time per poll with max.poll.interval.ms, check session.timeout.ms and look for consumers that crash-loop."),
            );
        }
    }
    // Dead-letter topics.
    let parts: BTreeSet<Tp> = s2
        .groups
        .iter()
        .flat_map(|g| g.committed.keys().cloned())
        .collect();
    for d in dlq_topics(params, topics, &parts) {
        let n = topics.get(&d).copied().unwrap_or(0);
        let (mut msgs, mut grew) = (0i64, 0i64);
        for p in 0..n {
            let tp = (d.clone(), p);
            if let Some((s, e)) = s2.offsets.get(&tp) {
                msgs += e - s;
                grew += e - s1.offsets.get(&tp).map(|o| o.1).unwrap_or(*e);
            }
        }
        if msgs > 0 {
            ctx.finding(
                Finding::new(
                    "KAFKA_DLQ_MESSAGES",
                    Severity::Warning,
                    format!("Dead-letter topic {d} holds {} messages ({} new during the probe)", group_i(msgs), group_i(grew)),
                )
                .fact("topic", &d)
                .fact("messages", msgs)
                .fact("new during the probe", grew)
                .command("ListOffsets (earliest, latest)")
                .remediation(format!(
                    "Read the newest dead letters for the error, fix the consumer, then replay them into the main topic:\n\n```\nkafka-console-consumer.sh --bootstrap-server <broker> --topic {d} --from-beginning --max-messages 5 --property print.headers=true\n```"
                )),
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn assignments_parse() {
        // version 0; 1 topic "orders" with partitions 0 and 2; no user data.
        let mut b = vec![0, 0, 0, 0, 0, 1, 0, 6];
        b.extend_from_slice(b"orders");
        b.extend_from_slice(&[0, 0, 0, 2, 0, 0, 0, 0, 0, 0, 0, 2, 0xff, 0xff, 0xff, 0xff]);
        assert_eq!(
            parse_assignment(&b),
            vec![("orders".to_string(), 0), ("orders".to_string(), 2)]
        );
        assert!(
            parse_assignment(&[0, 0, 0]).is_empty(),
            "truncated input is empty, not a panic"
        );
        assert!(parse_assignment(&[]).is_empty());
    }
}
