//! Page weight on the wire: responses compressed (brotli, gzip) when the client asks and
//! only then; server-sent events never compressed or held back; static files sent as the
//! build precompressed them; content-hashed assets cached for a year, everything else
//! revalidated or not stored.

mod common;

use common::TestApp;
use domain::Role;
use serde_json::json;
use sqlx::PgPool;
use std::io::{Read, Write};
use std::time::Duration;

const HASHED: &str = "/pkg/lookout.Qm9vYmFyYmF6cXV4MTIzNA.wasm";

fn unbrotli(b: &[u8]) -> Vec<u8> {
    let mut out = vec![];
    brotli::Decompressor::new(b, 4096)
        .read_to_end(&mut out)
        .expect("valid brotli");
    out
}

fn ungzip(b: &[u8]) -> Vec<u8> {
    let mut out = vec![];
    flate2::read::GzDecoder::new(b)
        .read_to_end(&mut out)
        .expect("valid gzip");
    out
}

/// A site root with a hashed wasm (and the brotli copy a build leaves next to it) and an
/// unhashed static file.
fn site() -> (std::path::PathBuf, Vec<u8>, Vec<u8>) {
    let root = std::env::temp_dir().join(format!(
        "lookout-site-{}-{}",
        std::process::id(),
        rand_suffix()
    ));
    std::fs::create_dir_all(root.join("pkg")).unwrap();
    std::fs::create_dir_all(root.join("static")).unwrap();
    let wasm: Vec<u8> = b"\0asm\x01\0\0\0"
        .iter()
        .copied()
        .chain((0..20_000u32).flat_map(|i| (i % 251).to_le_bytes()))
        .collect();
    let mut br = vec![];
    {
        let mut w = brotli::CompressorWriter::new(&mut br, 4096, 11, 22);
        w.write_all(&wasm).unwrap();
    }
    std::fs::write(root.join(HASHED.trim_start_matches('/')), &wasm).unwrap();
    std::fs::write(
        root.join(format!("{}.br", HASHED.trim_start_matches('/'))),
        &br,
    )
    .unwrap();
    std::fs::write(
        root.join("static/favicon.svg"),
        "<svg xmlns=\"http://www.w3.org/2000/svg\"/>",
    )
    .unwrap();
    (root, wasm, br)
}

fn rand_suffix() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos() as u64)
        .unwrap_or(0)
}

async fn get(
    app: &TestApp,
    path: &str,
    encoding: Option<&str>,
    token: Option<&str>,
) -> (u16, reqwest::header::HeaderMap, Vec<u8>) {
    let mut req = app.plain().get(app.url(path));
    if let Some(e) = encoding {
        req = req.header("accept-encoding", e);
    }
    if let Some(t) = token {
        req = req.bearer_auth(t);
    }
    let res = req.send().await.unwrap();
    let status = res.status().as_u16();
    let headers = res.headers().clone();
    (status, headers, res.bytes().await.unwrap().to_vec())
}

fn header<'a>(h: &'a reqwest::header::HeaderMap, name: &str) -> &'a str {
    h.get(name).and_then(|v| v.to_str().ok()).unwrap_or("")
}

#[sqlx::test(migrations = "../migrations")]
async fn pages_and_json_are_compressed_only_when_asked(pool: PgPool) {
    let app = TestApp::spawn(pool).await;
    let viewer = app.create_token("v", Role::Viewer).await;
    // A page: brotli, gzip, or as is.
    let (s, h, body) = get(&app, "/login", Some("gzip, deflate, br"), None).await;
    assert_eq!((s, header(&h, "content-encoding")), (200, "br"));
    let html = String::from_utf8(unbrotli(&body)).unwrap();
    assert!(html.starts_with("<!DOCTYPE html>"), "{}", &html[..40]);
    assert_eq!(header(&h, "cache-control"), "no-store");
    assert!(
        header(&h, "vary")
            .to_ascii_lowercase()
            .contains("accept-encoding")
    );
    let (_, h, body) = get(&app, "/login", Some("gzip"), None).await;
    assert_eq!(header(&h, "content-encoding"), "gzip");
    let gz = String::from_utf8(ungzip(&body)).unwrap();
    assert_eq!(gz.replace(&nonce(&gz), ""), html.replace(&nonce(&html), ""));
    let (_, h, body) = get(&app, "/login", None, None).await;
    assert_eq!(header(&h, "content-encoding"), "");
    assert!(body.starts_with(b"<!DOCTYPE html>"));
    // JSON from the API (signed in: never stored).
    let (s, h, body) = get(&app, "/api/v1/incidents", Some("br"), Some(&viewer)).await;
    assert_eq!((s, header(&h, "content-encoding")), (200, "br"));
    let v: serde_json::Value = serde_json::from_slice(&unbrotli(&body)).unwrap();
    assert!(v["incidents"].is_array(), "{v}");
    assert_eq!(header(&h, "cache-control"), "no-store");
    // An encoding the server does not speak: as is.
    let (_, h, _) = get(&app, "/login", Some("zstd"), None).await;
    assert_eq!(header(&h, "content-encoding"), "");
}

/// The CSP nonce differs per response; everything else is the same page.
fn nonce(html: &str) -> String {
    html.split("nonce=\"")
        .nth(1)
        .and_then(|r| r.split('"').next())
        .unwrap_or_default()
        .to_string()
}

#[sqlx::test(migrations = "../migrations")]
async fn server_sent_events_are_never_compressed_or_held_back(pool: PgPool) {
    let app = TestApp::spawn(pool).await;
    let responder = app.create_token("r", Role::Responder).await;
    let (s, inc) = app
        .post(
            &responder,
            "/api/v1/incidents",
            json!({"title": "Checkout 500s", "severity": "SEV2", "services": ["checkout"], "environment": "production"}),
        )
        .await;
    assert_eq!(s, 201, "{inc}");
    let key = inc["key"].as_str().unwrap();
    let mut res = app
        .plain()
        .get(app.url(&format!("/api/v1/incidents/{key}/stream")))
        .header("accept-encoding", "gzip, br")
        .bearer_auth(&responder)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    assert_eq!(header(res.headers(), "content-type"), "text/event-stream");
    assert_eq!(
        header(res.headers(), "content-encoding"),
        "",
        "SSE is sent as is"
    );
    // The first event arrives at once: a compressor would hold it in its buffer.
    let first = tokio::time::timeout(Duration::from_secs(5), res.chunk())
        .await
        .expect("the first event within 5 s")
        .unwrap()
        .unwrap_or_default();
    assert!(
        String::from_utf8_lossy(&first).contains("event: ready"),
        "{first:?}"
    );
}

#[sqlx::test(migrations = "../migrations")]
async fn static_files_are_precompressed_and_cached_by_name(pool: PgPool) {
    let (root, wasm, br) = site();
    let site_root = root.to_string_lossy().to_string();
    let app = TestApp::spawn_with(pool, |c| c.site_root = site_root).await;
    // The build's brotli copy, as it is, cached for a year.
    let (s, h, body) = get(&app, HASHED, Some("gzip, br"), None).await;
    assert_eq!((s, header(&h, "content-encoding")), (200, "br"));
    assert_eq!(body, br, "the precompressed file, not compressed again");
    assert_eq!(unbrotli(&body), wasm);
    assert_eq!(header(&h, "content-type"), "application/wasm");
    assert_eq!(
        header(&h, "cache-control"),
        "public, max-age=31536000, immutable"
    );
    // No copy for gzip: compressed on the fly; nothing asked: the file itself.
    let (_, h, body) = get(&app, HASHED, Some("gzip"), None).await;
    assert_eq!(header(&h, "content-encoding"), "gzip");
    assert_eq!(ungzip(&body), wasm);
    let (_, h, body) = get(&app, HASHED, None, None).await;
    assert_eq!((header(&h, "content-encoding"), body), ("", wasm));
    // An unhashed name is revalidated; a missing file is the app's 404, not cached.
    let (s, h, _) = get(&app, "/static/favicon.svg", None, None).await;
    assert_eq!((s, header(&h, "cache-control")), (200, "no-cache"));
    let (s, h, _) = get(&app, "/pkg/lookout.Qm9vYmFyYmF6cXV4MTIzNB.wasm", None, None).await;
    assert_eq!((s, header(&h, "cache-control")), (404, "no-store"));
    let _ = std::fs::remove_dir_all(root);
}
