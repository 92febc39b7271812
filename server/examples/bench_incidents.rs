//! Benchmark for the incident pages (issue figures: incident page with 2,000 events and
//! 300 findings rendered in < 50 ms p99, and its ratio to a static file from the same
//! server; any page of the incident list over 100,000 incidents in < 30 ms p99).
//!
//! Run (needs a PostgreSQL; scripts/test's throwaway one or any DATABASE_URL):
//!   cargo run --release -p server --example bench_incidents
//! It creates its own database `lookout_bench`, seeds it, serves the real router on a
//! loopback port, and measures sequential requests over HTTP (client and server share the
//! machine's two cores). It prints EXPLAIN ANALYZE for the list queries.

#[path = "support/bench.rs"]
#[allow(dead_code)]
mod bench;

use bench::{fresh_database, header, measure, row, serve, site_dir};
use std::time::Instant;

const SAMPLES: usize = 200;

#[tokio::main]
async fn main() {
    let pool = fresh_database("lookout_bench").await;

    println!("seeding: 1 incident with 2,000 events and 300 findings …");
    let t = Instant::now();
    let key = bench::seed_big_incident(&pool, 1_999, 300).await;
    println!("  seeded in {:.1} s", t.elapsed().as_secs_f64());

    println!("seeding: 100,000 incidents …");
    let t = Instant::now();
    bench::seed_incidents(&pool, 100_000).await;
    sqlx::query("ANALYZE incidents")
        .execute(&pool)
        .await
        .expect("analyze");
    println!("  seeded in {:.1} s", t.elapsed().as_secs_f64());

    // The real router, on loopback.
    let site = site_dir();
    std::fs::write(
        site.join("static/probe.css"),
        "body { color: black; }\n".repeat(40),
    )
    .expect("static file");
    let (base, token) = serve(&pool, &site).await;
    let c = reqwest::Client::new();

    header(SAMPLES);
    let page = row(
        "incident page SSR (newest 200 of 2,000 events, 300 findings)",
        measure(&c, &format!("{base}/incidents/{key}"), &token, SAMPLES).await,
    );
    row(
        "incident page SSR, ?all=1 (all 2,000 events, 300 findings)",
        measure(
            &c,
            &format!("{base}/incidents/{key}?all=1"),
            &token,
            SAMPLES,
        )
        .await,
    );
    let stat = row(
        "static file from the same server",
        measure(&c, &format!("{base}/static/probe.css"), &token, SAMPLES).await,
    );
    println!(
        "ratio incident page / static file: p50 {:.1}x, p99 {:.1}x",
        page.0 / stat.0,
        page.1 / stat.1
    );
    row(
        "incident detail JSON (/api/v1/incidents/{key})",
        measure(
            &c,
            &format!("{base}/api/v1/incidents/{key}"),
            &token,
            SAMPLES,
        )
        .await,
    );

    // List pages over 100,000 incidents (API and SSR), first and deep pages and filters.
    let first: serde_json::Value = c
        .get(format!("{base}/api/v1/incidents?limit=25"))
        .bearer_auth(&token)
        .send()
        .await
        .expect("list")
        .json()
        .await
        .expect("json");
    let mut cursor = first["next_cursor"].as_str().expect("cursor").to_string();
    for _ in 0..400 {
        let p: serde_json::Value = c
            .get(format!("{base}/api/v1/incidents?limit=25&cursor={cursor}"))
            .bearer_auth(&token)
            .send()
            .await
            .expect("list")
            .json()
            .await
            .expect("json");
        cursor = p["next_cursor"].as_str().expect("cursor").to_string();
    }
    println!("(deep cursor = page 402: {cursor})");
    // The last page: walk the whole list once (4,000 pages of 25).
    let mut last_cursor = cursor.clone();
    loop {
        let p: serde_json::Value = c
            .get(format!(
                "{base}/api/v1/incidents?limit=25&cursor={last_cursor}"
            ))
            .bearer_auth(&token)
            .send()
            .await
            .expect("list")
            .json()
            .await
            .expect("json");
        match p["next_cursor"].as_str() {
            Some(n) => last_cursor = n.to_string(),
            None => break,
        }
    }
    println!("(last cursor: {last_cursor})");
    for (name, q) in [
        ("list API, first page", "limit=25".to_string()),
        (
            "list API, page 402 (keyset cursor)",
            format!("limit=25&cursor={cursor}"),
        ),
        (
            "list API, last page (keyset cursor)",
            format!("limit=25&cursor={last_cursor}"),
        ),
        ("list API, severity=SEV2", "severity=SEV2".into()),
        ("list API, status=resolved", "status=resolved".into()),
        ("list API, service=search", "service=search".into()),
        (
            "list API, environment=staging",
            "environment=staging".into(),
        ),
        ("list API, label team=data", "label=team%3Ddata".into()),
        ("list API, q=INC-54321", "q=INC-54321".into()),
        ("list API, q=payments (title search)", "q=payments".into()),
        ("list API, open=true", "open=true".into()),
    ] {
        row(
            name,
            measure(&c, &format!("{base}/api/v1/incidents?{q}"), &token, SAMPLES).await,
        );
    }
    row(
        "list page SSR (stats + first page)",
        measure(&c, &format!("{base}/incidents"), &token, SAMPLES).await,
    );
    row(
        "list page SSR, severity=SEV3&environment=production",
        measure(
            &c,
            &format!("{base}/incidents?severity=SEV3&environment=production"),
            &token,
            SAMPLES,
        )
        .await,
    );

    println!("\nEXPLAIN ANALYZE of the list queries (as storage::incidents::list builds them):");
    let (r, at, id) = domain::storage::incidents::decode_cursor(&cursor).expect("cursor");
    let cols = "i.id, i.number, i.title";
    for (name, sql) in [
        (
            "first page",
            format!(
                "SELECT {cols} FROM incidents i WHERE TRUE ORDER BY i.list_order DESC, i.created_at DESC, i.id DESC LIMIT 26"
            ),
        ),
        (
            "keyset page",
            format!(
                "SELECT {cols} FROM incidents i WHERE TRUE AND (i.list_order, i.created_at, i.id) < ({r}, '{}'::timestamptz, {id}) ORDER BY i.list_order DESC, i.created_at DESC, i.id DESC LIMIT 26",
                at.format(&time::format_description::well_known::Rfc3339)
                    .expect("fmt")
            ),
        ),
        (
            "severity filter",
            format!(
                "SELECT {cols} FROM incidents i WHERE TRUE AND i.severity = 'SEV2' ORDER BY i.list_order DESC, i.created_at DESC, i.id DESC LIMIT 26"
            ),
        ),
        (
            "service filter",
            format!(
                "SELECT {cols} FROM incidents i WHERE TRUE AND i.services @> ARRAY['search']::text[] ORDER BY i.list_order DESC, i.created_at DESC, i.id DESC LIMIT 26"
            ),
        ),
        (
            "label filter",
            format!(
                "SELECT {cols} FROM incidents i WHERE TRUE AND i.labels @> '{{\"team\":\"data\"}}' ORDER BY i.list_order DESC, i.created_at DESC, i.id DESC LIMIT 26"
            ),
        ),
        (
            "key search",
            format!(
                "SELECT {cols} FROM incidents i WHERE TRUE AND i.number = 54321 ORDER BY i.list_order DESC, i.created_at DESC, i.id DESC LIMIT 26"
            ),
        ),
        (
            "title search",
            format!(
                "SELECT {cols} FROM incidents i WHERE TRUE AND i.title ILIKE '%payments%' ORDER BY i.list_order DESC, i.created_at DESC, i.id DESC LIMIT 26"
            ),
        ),
    ] {
        let plan: Vec<String> = sqlx::query_scalar(&format!(
            "EXPLAIN (ANALYZE, COSTS OFF, TIMING OFF, SUMMARY ON) {sql}"
        ))
        .fetch_all(&pool)
        .await
        .expect("explain");
        println!("-- {name}");
        for l in plan {
            println!("   {l}");
        }
    }
    let _ = std::fs::remove_dir_all(&site);
}
