//! Benchmarks for deployments (issue 12): the CI gate's answer (p99 < 10 ms with 10,000
//! deployments of 50 items each) and the deployment page's server render (p99 < 50 ms with
//! 100 items and 5,000 events), next to a static file from the same server.
//!
//! Run (needs a PostgreSQL; scripts/test's throwaway one or any DATABASE_URL):
//!   cargo run --release -p server --example bench_deployments
//! It creates its own database `lookout_bench_deployments`, seeds a 50-item template and
//! 10,000 deployments (500,000 items, approvals, events) with SQL, serves the real router on
//! a loopback port and measures sequential requests over HTTP.

use domain::services::deployments as svc;
#[path = "support/bench.rs"]
#[allow(dead_code)]
mod bench;

use bench::{admin, fresh_database, header, measure, row, serve, site_dir};
use std::time::Instant;

const SAMPLES: usize = 500;

#[tokio::main]
async fn main() {
    let pool = fresh_database("lookout_bench_deployments").await;
    let who = admin();
    let mut yaml = String::from("id: bench-release\nname: Bench release\nsections:\n");
    for (section, range) in [("pre", 1..=20), ("during", 21..=35), ("post", 36..=50)] {
        yaml.push_str(&format!("  {section}:\n"));
        for i in range {
            yaml.push_str(&format!(
                "    - {{id: item-{i}, kind: manual, text: Item {i}}}\n"
            ));
        }
    }
    svc::save_template(&pool, &who, &domain::RequestMeta::default(), None, &yaml)
        .await
        .expect("template");

    println!("seeding: 10,000 deployments × 50 items …");
    let t = Instant::now();
    for sql in [
        "INSERT INTO deployments (service, environment, version, requester, template_id, template_version, status)
         SELECT 'svc-' || (g % 40), (ARRAY['production','staging','dev'])[1 + g % 3], '1.' || g, 'bench',
                'bench-release', 1,
                (ARRAY['draft','awaiting_approval','approved','in_progress','verifying','done'])[1 + g % 6]
         FROM generate_series(1, 10000) g",
        "INSERT INTO deployment_items (deployment_id, item_id, section, position, kind, text, required, requires_note, state)
         SELECT d.id, 'item-' || i, CASE WHEN i <= 20 THEN 'pre' WHEN i <= 35 THEN 'during' ELSE 'post' END,
                i, 'manual', 'Item ' || i, true, false, CASE WHEN i % 7 = 0 THEN 'pending' ELSE 'checked' END
         FROM deployments d, generate_series(1, 50) i",
        "INSERT INTO users (username, password_hash, role) VALUES ('bench-approver', 'x', 'approver')",
        "INSERT INTO deployment_approvals (deployment_id, approver, approver_id, decision, snapshot, snapshot_sha256)
         SELECT d.id, 'bench-approver', (SELECT id FROM users WHERE username = 'bench-approver'), 'approved', '{}', repeat('0', 64)
         FROM deployments d WHERE d.id % 2 = 0",
        "INSERT INTO deployment_events (deployment_id, actor, kind, body)
         SELECT d.id, 'bench', 'created', 'Opened' FROM deployments d",
        "ANALYZE",
    ] {
        sqlx::query(sql).execute(&pool).await.expect(sql);
    }
    println!("  seeded in {:.1} s", t.elapsed().as_secs_f64());

    // The page benchmark: one deployment of 100 items (80 manual, 20 metric items with 60
    // measurements each) and 5,000 events.
    let mut yaml = String::from("id: bench-page\nname: Bench page\nsections:\n  pre:\n");
    for i in 1..=100 {
        if i % 5 == 0 {
            yaml.push_str(&format!(
                "    - {{id: m-{i}, kind: metric, text: Metric {i}, target: prometheus, query: 'up', success: result == 1, interval: 10s, count: 60}}\n"
            ));
        } else {
            yaml.push_str(&format!("    - {{id: item-{i}, kind: manual, text: Item {i} of the checklist, requires_note: true}}\n"));
        }
    }
    svc::save_template(&pool, &who, &domain::RequestMeta::default(), None, &yaml)
        .await
        .expect("page template");
    let page_id: i64 = sqlx::query_scalar(
        "INSERT INTO deployments (service, environment, version, requester, template_id, template_version, status)
         VALUES ('checkout', 'production', '9.9.9', 'bench', 'bench-page', 1, 'awaiting_approval') RETURNING id",
    )
    .fetch_one(&pool)
    .await
    .expect("page deployment");
    for sql in [
        "INSERT INTO deployment_items (deployment_id, item_id, section, position, kind, text, required, requires_note, state, set_by, set_at, note, spec, target_name, run)
         SELECT $1, CASE WHEN i % 5 = 0 THEN 'm-' ELSE 'item-' END || i, 'pre', i,
                CASE WHEN i % 5 = 0 THEN 'metric' ELSE 'manual' END, 'Item ' || i || ' of the checklist', true, i % 5 <> 0,
                CASE WHEN i % 5 = 0 THEN 'passed' ELSE 'checked' END, 'bench', now(), 'build ' || i || ' green, see the CI run',
                CASE WHEN i % 5 = 0 THEN jsonb_build_object('target', 'prometheus', 'query', 'up', 'success', 'result == 1', 'interval_secs', 10, 'count', 60, 'failure_limit', 0, 'inconclusive_limit', 0) END,
                CASE WHEN i % 5 = 0 THEN 'prom-main' END, CASE WHEN i % 5 = 0 THEN 1 ELSE 0 END
         FROM generate_series(1, 100) i",
        "INSERT INTO deployment_measurements (deployment_id, item_id, run, at, phase, value, series, message)
         SELECT $1, 'm-' || i, 1, now() - make_interval(secs => (60 - n) * 10), 'successful',
                jsonb_build_array(jsonb_build_object('labels', jsonb_build_object('instance', 'web-1'), 'value', '1')), 1, 'result == 1 holds'
         FROM generate_series(5, 100, 5) i, generate_series(1, 60) n",
        "INSERT INTO deployment_events (deployment_id, at, actor, kind, body)
         SELECT $1, now() - make_interval(secs => 5000 - g), 'lookout', 'measurement', 'm-' || (5 * (1 + g % 20)) || ' measurement ' || g || ' of 60 (run 1): successful, value 1 — result == 1 holds'
         FROM generate_series(1, 5000) g",
    ] {
        sqlx::query(sql).bind(page_id).execute(&pool).await.expect(sql);
    }
    sqlx::query("ANALYZE")
        .execute(&pool)
        .await
        .expect("analyze");

    let site = site_dir();
    std::fs::write(
        site.join("static/probe.css"),
        "body { color: black; }\n".repeat(40),
    )
    .expect("static file");
    let (base, token) = serve(&pool, &site).await;
    let c = reqwest::Client::new();
    header(SAMPLES);
    let gate = row(
        "gate ?phase=pre, DEP-5000 (50 items, 10,000 deployments)",
        measure(
            &c,
            &format!("{base}/api/v1/deployments/DEP-5000/gate?phase=pre"),
            &token,
            SAMPLES,
        )
        .await,
    );
    row(
        "gate ?phase=post, DEP-7777",
        measure(
            &c,
            &format!("{base}/api/v1/deployments/DEP-7777/gate?phase=post"),
            &token,
            SAMPLES,
        )
        .await,
    );
    row(
        "deployment detail JSON, DEP-5000",
        measure(
            &c,
            &format!("{base}/api/v1/deployments/DEP-5000"),
            &token,
            SAMPLES,
        )
        .await,
    );
    row(
        "deployment list, service=svc-7",
        measure(
            &c,
            &format!("{base}/api/v1/deployments?service=svc-7"),
            &token,
            SAMPLES,
        )
        .await,
    );
    let page = row(
        "deployment page HTML (100 items, 1,200 measurements, newest 200 of 5,000 events)",
        measure(
            &c,
            &format!("{base}/deployments/DEP-{page_id}"),
            &token,
            SAMPLES,
        )
        .await,
    );
    row(
        "deployment page HTML, ?all=1 (all 5,000 events)",
        measure(
            &c,
            &format!("{base}/deployments/DEP-{page_id}?all=1"),
            &token,
            SAMPLES / 5,
        )
        .await,
    );
    row(
        "deployment detail JSON (100 items, 1,200 measurements)",
        measure(
            &c,
            &format!("{base}/api/v1/deployments/DEP-{page_id}"),
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
        "ratio gate / static file: p50 {:.1}x, p99 {:.1}x",
        gate.0 / stat.0,
        gate.1 / stat.1
    );
    println!(
        "deployment page p99 {:.1} ms (goal < 50 ms), {:.1}x a static file",
        page.1,
        page.1 / stat.1
    );
}
