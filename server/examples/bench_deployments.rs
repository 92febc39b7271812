//! Benchmark for the CI gate (issue 12: the gate's answer p99 < 10 ms with 10,000
//! deployments of 50 items each), next to a static file from the same server.
//!
//! Run (needs a PostgreSQL; scripts/test's throwaway one or any DATABASE_URL):
//!   cargo run --release -p server --example bench_deployments
//! It creates its own database `lookout_bench_deployments`, seeds a 50-item template and
//! 10,000 deployments (500,000 items, approvals, events) with SQL, serves the real router on
//! a loopback port and measures sequential requests over HTTP.

use domain::services::deployments as svc;
#[path = "support/bench.rs"]
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
    let stat = row(
        "static file from the same server",
        measure(&c, &format!("{base}/static/probe.css"), &token, SAMPLES).await,
    );
    println!(
        "ratio gate / static file: p50 {:.1}x, p99 {:.1}x",
        gate.0 / stat.0,
        gate.1 / stat.1
    );
}
