//! Server functions for the Kafka pages (adapters over `domain::services::kafka_lag`).

use crate::error::AppError;
use domain::kafka::{KafkaGroup, KafkaGroupPage, LagSeries};
use leptos::prelude::*;

#[cfg(feature = "ssr")]
use crate::state::call;
#[cfg(feature = "ssr")]
use domain::services::kafka_lag as svc;

#[server(prefix = "/api/fn", endpoint = "kafka/groups")]
pub async fn kafka_groups(
    target_id: i64,
    #[server(default)] sort: Option<String>,
    #[server(default)] order: Option<String>,
    #[server(default)] cursor: Option<String>,
) -> Result<KafkaGroupPage, AppError> {
    let c = call()?;
    let sort: svc::GroupSort = sort.as_deref().unwrap_or("lag").parse()?;
    let desc = match order.as_deref() {
        Some("asc") => false,
        Some("desc") => true,
        _ => sort == svc::GroupSort::Lag,
    };
    Ok(svc::list_groups(
        &c.pool,
        &c.who,
        target_id,
        sort,
        desc,
        cursor.as_deref(),
        50,
    )
    .await?)
}

#[server(prefix = "/api/fn", endpoint = "kafka/group")]
pub async fn kafka_group_state(target_id: i64, group: String) -> Result<KafkaGroup, AppError> {
    let c = call()?;
    Ok(svc::get_group(&c.pool, &c.who, target_id, &group).await?)
}

/// The lag series over the last `range_secs` seconds.
#[server(prefix = "/api/fn", endpoint = "kafka/lag")]
pub async fn kafka_lag(
    target_id: i64,
    group: String,
    range_secs: i64,
) -> Result<LagSeries, AppError> {
    let c = call()?;
    let to = time::OffsetDateTime::now_utc();
    let from = to - time::Duration::seconds(range_secs.clamp(60, 400 * 86_400));
    Ok(svc::lag_series(&c.pool, &c.who, target_id, &group, from, to).await?)
}

#[server(prefix = "/api/fn", endpoint = "kafka/topic")]
pub async fn kafka_topic_groups(
    target_id: i64,
    topic: String,
) -> Result<Vec<KafkaGroup>, AppError> {
    let c = call()?;
    Ok(svc::groups_of_topic(&c.pool, &c.who, target_id, &topic).await?)
}
