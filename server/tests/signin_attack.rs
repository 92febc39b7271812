//! Sign-in under a parallel attack (its own test binary: it reads process-wide counters and
//! the process's peak memory, which other tests would disturb).

mod common;

use common::*;
use domain::Role;
use domain::services::passwords;
use server::client_addr::TrustedProxies;
use sqlx::PgPool;
use std::time::{Duration, Instant};

/// The process's peak resident memory (VmHWM), in KiB.
fn peak_rss_kib() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmHWM:"))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|v| v.parse().ok())
        })
        .unwrap_or(0)
}

#[sqlx::test(migrations = "../migrations")]
async fn two_hundred_parallel_wrong_passwords(pool: PgPool) {
    // Behind one proxy, so the attacker and a bystander have different addresses.
    let app =
        TestApp::spawn_with(pool, |c| c.trusted_proxies = Some(TrustedProxies::Hops(1))).await;
    app.create_user("victim", Role::Viewer).await;
    app.create_user("bystander", Role::Viewer).await;
    let allowance = 5; // LOOKOUT_LOGIN_MAX_FAILURES_PER_USER's default
    let (runs_before, _) = passwords::counters();
    let peak_before = peak_rss_kib();

    let attacker = app.browser();
    let mut attack = tokio::task::JoinSet::new();
    for i in 0..200 {
        let c = attacker.clone();
        let url = app.url("/auth/login");
        attack.spawn(async move {
            c.post(url)
                .header("x-forwarded-for", "198.51.100.66")
                .form(&[
                    ("username", "victim"),
                    ("password", &format!("wrong-guess-{i}")),
                ])
                .send()
                .await
                .map(|r| {
                    (
                        r.status().as_u16(),
                        r.headers()
                            .get("location")
                            .and_then(|v| v.to_str().ok())
                            .unwrap_or("")
                            .to_string(),
                        r.headers().contains_key("retry-after"),
                    )
                })
        });
    }

    // Meanwhile someone else signs in and the server answers at once.
    tokio::time::sleep(Duration::from_millis(50)).await;
    let t = Instant::now();
    let health = app.plain().get(app.url("/healthz")).send().await.unwrap();
    assert_eq!(health.status(), 200);
    assert!(
        t.elapsed() < Duration::from_secs(2),
        "healthz took {:?}",
        t.elapsed()
    );
    let by = app.browser();
    let t = Instant::now();
    let mut signed_in = false;
    for _ in 0..5 {
        let r = by
            .post(app.url("/auth/login"))
            .header("x-forwarded-for", "203.0.113.5")
            .form(&[
                ("username", "bystander"),
                ("password", PASSWORD),
                ("next", "/settings"),
            ])
            .send()
            .await
            .unwrap();
        if r.status() == 303 {
            assert_eq!(
                r.headers()["location"],
                "/settings",
                "the bystander is not throttled"
            );
            signed_in = true;
            break;
        }
        // Busy hashing slots answer 503 with Retry-After; a person tries again.
        assert_eq!(r.status(), 503);
        assert!(r.headers().contains_key("retry-after"));
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
    assert!(
        signed_in,
        "the bystander could not sign in during the attack"
    );
    assert!(
        t.elapsed() < Duration::from_secs(15),
        "bystander sign-in took {:?}",
        t.elapsed()
    );

    let mut invalid = 0;
    let mut throttled = 0;
    let mut busy = 0;
    while let Some(r) = attack.join_next().await {
        let (status, location, retry_after) = r.unwrap().unwrap();
        match status {
            303 if location.starts_with("/login?error=invalid") => invalid += 1,
            303 if location.starts_with("/login?error=throttled") => throttled += 1,
            503 => {
                assert!(retry_after, "503 without Retry-After");
                busy += 1
            }
            other => panic!("unexpected answer {other} {location}"),
        }
    }
    let (runs_after, _) = passwords::counters();
    let verified = runs_after - runs_before;
    assert_eq!(invalid + throttled + busy, 200);
    assert!(
        invalid <= allowance,
        "{invalid} wrong passwords were checked"
    );
    // The attacker's checks plus the bystander's (and its retries).
    assert!(
        verified <= allowance as u64 + 5,
        "{verified} argon2 runs for 200 attempts ({invalid} invalid, {throttled} throttled, {busy} busy)"
    );
    assert!(throttled >= 200 - allowance - busy, "{throttled} throttled");
    let failures: i64 =
        sqlx::query_scalar("SELECT count(*) FROM login_failures WHERE username = 'victim'")
            .fetch_one(&app.pool)
            .await
            .unwrap();
    assert_eq!(
        failures, invalid as i64,
        "exactly the checked attempts count as failures"
    );
    // Hashing memory is bounded by the slots (19 MiB each), not by the attempts: 200
    // verifications at once would need ~3.8 GiB.
    let grown_mib = peak_rss_kib().saturating_sub(peak_before) / 1024;
    let bound = (passwords::slot_count() as u64) * 19 + 128;
    assert!(
        grown_mib <= bound,
        "peak memory grew by {grown_mib} MiB (bound {bound} MiB)"
    );
    // The attacker's address was the forwarded one, not the proxy's.
    let ips: Vec<String> = sqlx::query_scalar(
        "SELECT DISTINCT client_ip FROM audit_log WHERE target = 'victim' AND action LIKE 'auth.login%'",
    )
    .fetch_all(&app.pool)
    .await
    .unwrap();
    assert_eq!(ips, vec!["198.51.100.66".to_string()]);
}

#[sqlx::test(migrations = "../migrations")]
async fn a_forged_forwarded_for_is_ignored_unless_a_proxy_is_trusted(pool: PgPool) {
    let app = TestApp::spawn(pool).await;
    app.create_user("someone", Role::Viewer).await;
    let c = app.browser();
    let r = c
        .post(app.url("/auth/login"))
        .header("x-forwarded-for", "203.0.113.77")
        .form(&[("username", "someone"), ("password", "not-the-password")])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 303);
    let ip: String = sqlx::query_scalar(
        "SELECT client_ip FROM audit_log WHERE action = 'auth.login_failed' ORDER BY id DESC LIMIT 1",
    )
    .fetch_one(&app.pool)
    .await
    .unwrap();
    assert_eq!(ip, "127.0.0.1", "the socket address, not the header");
}
