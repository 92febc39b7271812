//! LLM usage over OTLP/HTTP (issue 13): protobuf, JSON and gzip bodies from an ingest token,
//! GenAI spans turned into exact token buckets and costs, retried exports not counted twice,
//! refused spans counted in `partial_success`, bad bodies refused with nothing written, and the
//! weekly review read from the rollups.

mod common;

use common::TestApp;
use common::llm::{chat, i, ingest_token, kv, request, s, span};
use domain::Role;
use opentelemetry_proto::tonic::collector::trace::v1::{
    ExportTraceServiceRequest, ExportTraceServiceResponse,
};
use opentelemetry_proto::tonic::trace::v1::{Span, Status};
use prost::Message;
use rust_decimal::Decimal;
use sqlx::PgPool;
use std::io::Write;
use std::str::FromStr;
use time::{Duration, OffsetDateTime};

fn openai_call(trace: u8, id: u8, at: OffsetDateTime, feature: &str) -> Span {
    chat(trace, id, at, "gpt-4.1", (2006, 1920, 300), feature)
}

async fn post(
    app: &TestApp,
    token: Option<&str>,
    ct: &str,
    gzip: bool,
    body: Vec<u8>,
) -> reqwest::Response {
    let mut req = app
        .plain()
        .post(app.url("/v1/traces"))
        .header("content-type", ct);
    if let Some(t) = token {
        req = req.bearer_auth(t);
    }
    let body = if gzip {
        let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        e.write_all(&body).unwrap();
        req = req.header("content-encoding", "gzip");
        e.finish().unwrap()
    } else {
        body
    };
    req.body(body).send().await.unwrap()
}

async fn decode_ok(res: reqwest::Response) -> ExportTraceServiceResponse {
    assert_eq!(res.status(), 200);
    assert_eq!(res.headers()["content-type"], "application/x-protobuf");
    ExportTraceServiceResponse::decode(res.bytes().await.unwrap()).unwrap()
}

fn dec(s: &str) -> Decimal {
    Decimal::from_str(s).unwrap()
}

#[sqlx::test(migrations = "../migrations")]
async fn spans_become_priced_records_once(pool: PgPool) {
    domain::services::llm::seed_default_prices(&pool)
        .await
        .unwrap();
    let app = TestApp::spawn(pool.clone()).await;
    let token = ingest_token(&app).await;
    let at = OffsetDateTime::now_utc() - Duration::hours(2);
    let mut refused = openai_call(1, 9, at, "search");
    refused
        .attributes
        .push(kv("gen_ai.usage.reasoning.output_tokens", i(-4)));
    let mut failed = span(
        1,
        3,
        at,
        vec![
            kv("gen_ai.operation.name", s("chat")),
            kv("gen_ai.system", s("anthropic")),
            kv("gen_ai.request.model", s("claude-sonnet-4-5")),
            kv("gen_ai.usage.input_tokens", i(2048)),
            kv("gen_ai.usage.cache_read.input_tokens", i(1800)),
            kv("gen_ai.usage.cache_creation.input_tokens", i(200)),
            kv("gen_ai.usage.output_tokens", i(10)),
            kv("error.type", s("overloaded_error")),
        ],
    );
    failed.status = Some(Status {
        code: 2,
        message: "overloaded".into(),
    });
    let batch = request(
        "checkout",
        vec![
            openai_call(1, 1, at, "search"),
            span(1, 2, at, vec![kv("http.request.method", s("GET"))]),
            failed,
            span(
                1,
                4,
                at,
                vec![
                    kv("gen_ai.operation.name", s("embeddings")),
                    kv("gen_ai.provider.name", s("openai")),
                    kv("gen_ai.request.model", s("some-private-model")),
                    kv("gen_ai.usage.input_tokens", i(512)),
                ],
            ),
            refused,
        ],
    );
    let body = batch.encode_to_vec();
    let r = decode_ok(
        post(
            &app,
            Some(&token),
            "application/x-protobuf",
            false,
            body.clone(),
        )
        .await,
    )
    .await;
    let partial = r.partial_success.expect("one span was refused");
    assert_eq!(partial.rejected_spans, 1);
    assert!(
        partial
            .error_message
            .contains("reasoning tokens is negative"),
        "{}",
        partial.error_message
    );

    type Row = (
        String,
        String,
        String,
        i64,
        i64,
        i64,
        i64,
        i64,
        Option<Decimal>,
        String,
        String,
    );
    let rows: Vec<Row> = sqlx::query_as(
        "SELECT span_id, provider, model, input, cache_read, cache_write_5m, output, reasoning, cost, status, feature
           FROM llm_usage ORDER BY span_id",
    )
    .fetch_all(&pool)
    .await
    .unwrap();
    assert_eq!(
        rows.len(),
        3,
        "three GenAI spans stored, the HTTP span and the refused one not: {rows:?}"
    );
    // gpt-4.1 at $2 / $0.50 cached / $8 per million: 86 + 1920 cached + 300 out.
    assert_eq!(rows[0].0, "0101010101010101");
    assert_eq!((rows[0].3, rows[0].4, rows[0].6), (86, 1920, 300));
    assert_eq!(rows[0].8, Some(dec("0.003532")));
    assert_eq!(rows[0].10, "search");
    // Anthropic under the OTel convention (cache inside input): 48 uncached, 1800 read,
    // 200 written; claude-sonnet-4* at $3 / $0.30 / $3.75 / $15.
    assert_eq!(rows[1].1, "anthropic");
    assert_eq!(
        (rows[1].3, rows[1].4, rows[1].5, rows[1].6),
        (48, 1800, 200, 10)
    );
    assert_eq!(
        rows[1].8,
        Some(dec("0.001584")),
        "48×3 + 1800×0.30 + 200×3.75 + 10×15 per million"
    );
    assert_eq!(rows[1].9, "error");
    assert_eq!(
        rows[1].10, "(none)",
        "no feature attribute: grouped, not dropped"
    );
    // No price for the private model: unpriced, never $0.
    assert_eq!(rows[2].2, "some-private-model");
    assert_eq!(rows[2].8, None);

    // The exporter retries the same batch (gzip this time): acknowledged, not counted again.
    decode_ok(post(&app, Some(&token), "application/x-protobuf", true, body).await).await;
    assert_eq!(app.count("llm_usage").await, 3);
    let calls: i64 = sqlx::query_scalar("SELECT sum(calls)::int8 FROM llm_usage_hourly")
        .fetch_one(&pool)
        .await
        .unwrap();
    assert_eq!(calls, 3, "the rollups count each call once");

    // The same in OTLP/JSON (hex ids, string and number timestamps, string intValue).
    let start = (at.unix_timestamp_nanos()) as u64;
    let json = serde_json::json!({ "resourceSpans": [{
        "resource": { "attributes": [{ "key": "service.name", "value": { "stringValue": "checkout" } }] },
        "scopeSpans": [{ "spans": [{
            "traceId": "0202020202020202020202020202020202", "spanId": "0202020202020202",
            "name": "chat gpt-4.1", "kind": 3,
            "startTimeUnixNano": start.to_string(), "endTimeUnixNano": start + 1000,
            "attributes": [
                { "key": "gen_ai.operation.name", "value": { "stringValue": "chat" } },
                { "key": "gen_ai.provider.name", "value": { "stringValue": "openai" } },
                { "key": "gen_ai.request.model", "value": { "stringValue": "gpt-4.1-mini" } },
                { "key": "gen_ai.usage.input_tokens", "value": { "intValue": "1000" } },
                { "key": "gen_ai.usage.output_tokens", "value": { "intValue": 100 } }
            ] }] }] }] });
    // (a 34-digit trace id is not an OTLP trace id: refused, counted)
    let res = post(
        &app,
        Some(&token),
        "application/json",
        false,
        serde_json::to_vec(&json).unwrap(),
    )
    .await;
    assert_eq!(res.status(), 200);
    let body: serde_json::Value = res.json().await.unwrap();
    assert_eq!(body["partialSuccess"]["rejectedSpans"], 1, "{body}");
    assert!(
        body["partialSuccess"]["errorMessage"]
            .as_str()
            .unwrap()
            .contains("bad trace or span id")
    );
    let mut json = json;
    json["resourceSpans"][0]["scopeSpans"][0]["spans"][0]["traceId"] =
        "02020202020202020202020202020202".into();
    let res = post(
        &app,
        Some(&token),
        "application/json",
        true,
        serde_json::to_vec(&json).unwrap(),
    )
    .await;
    assert_eq!(res.status(), 200);
    let cost: Option<Decimal> =
        sqlx::query_scalar("SELECT cost FROM llm_usage WHERE model = 'gpt-4.1-mini'")
            .fetch_one(&pool)
            .await
            .unwrap();
    assert_eq!(
        cost,
        Some(dec("0.00056")),
        "1000 × $0.40 + 100 × $1.60 per million"
    );
    assert_eq!(app.count("llm_usage").await, 4);
}

#[sqlx::test(migrations = "../migrations")]
async fn bad_bodies_and_wrong_callers_write_nothing(pool: PgPool) {
    let app = TestApp::spawn_with(pool.clone(), |c| c.max_body_bytes = 1 << 20).await;
    let token = ingest_token(&app).await;
    let good = request(
        "svc",
        vec![openai_call(5, 5, OffsetDateTime::now_utc(), "f")],
    )
    .encode_to_vec();
    type Case<'a> = (Option<&'a str>, &'a str, bool, Vec<u8>, u16);
    let cases: Vec<Case> = vec![
        (
            Some(&token),
            "application/x-protobuf",
            false,
            b"\xff\xff\xff not protobuf".to_vec(),
            400,
        ),
        (
            Some(&token),
            "application/json",
            false,
            b"{\"resourceSpans\": [".to_vec(),
            400,
        ),
        (
            Some(&token),
            "application/json",
            false,
            b"{\"resourceSpans\": 7}".to_vec(),
            400,
        ),
        (Some(&token), "text/plain", false, good.clone(), 415),
        (None, "application/x-protobuf", false, good.clone(), 401),
    ];
    for (t, ct, gz, body, want) in cases {
        let res = post(&app, t, ct, gz, body).await;
        assert_eq!(res.status().as_u16(), want, "{ct}");
    }
    // A corrupt gzip body.
    let res = app
        .plain()
        .post(app.url("/v1/traces"))
        .bearer_auth(&token)
        .header("content-type", "application/x-protobuf")
        .header("content-encoding", "gzip")
        .body(b"\x1f\x8b\x08\x00garbage".to_vec())
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 400);
    // A gzip bomb: 200 MB of zeros in a small body.
    let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
    let zeros = vec![0u8; 1 << 20];
    for _ in 0..200 {
        e.write_all(&zeros).unwrap();
    }
    let bomb = e.finish().unwrap();
    assert!(bomb.len() < 1 << 20, "{}", bomb.len());
    let res = app
        .plain()
        .post(app.url("/v1/traces"))
        .bearer_auth(&token)
        .header("content-type", "application/x-protobuf")
        .header("content-encoding", "gzip")
        .body(bomb)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 413);
    // Any other token, even an admin's, may not send traces; an ingest token may do nothing else.
    let admin = app.create_token("admin", Role::Admin).await;
    let res = post(
        &app,
        Some(&admin),
        "application/x-protobuf",
        false,
        good.clone(),
    )
    .await;
    assert_eq!(res.status(), 403);
    for path in ["/api/v1/incidents", "/api/v1/llm/review", "/costs"] {
        let res = app
            .plain()
            .get(app.url(path))
            .bearer_auth(&token)
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), 403, "{path}");
    }
    let res = app
        .plain()
        .get(app.url("/api/v1/whoami"))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    assert_eq!(app.count("llm_usage").await, 0);
    assert_eq!(app.count("llm_usage_hourly").await, 0);
    // A bad scope, or a scope with a role, is refused.
    for body in [
        serde_json::json!({ "name": "x", "scope": "admin" }),
        serde_json::json!({ "name": "x", "scope": "ingest", "role": "admin" }),
    ] {
        let res = app
            .plain()
            .post(app.url("/api/v1/tokens"))
            .bearer_auth(&admin)
            .json(&body)
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), 422, "{body}");
    }
}

#[sqlx::test(migrations = "../migrations")]
async fn the_weekly_review_explains_the_change(pool: PgPool) {
    domain::services::llm::seed_default_prices(&pool)
        .await
        .unwrap();
    let app = TestApp::spawn(pool.clone()).await;
    let token = ingest_token(&app).await;
    // The last complete week and the one before, by UTC Monday.
    let today = OffsetDateTime::now_utc().date();
    let monday = today - Duration::days(i64::from(today.weekday().number_days_from_monday()) + 7);
    let at = |d: i64| monday.midnight().assume_utc() + Duration::days(d) + Duration::hours(10);
    // Previous week: 4 calls of search. This week: 6 calls of search and 2 of a new feature.
    let mut prev = vec![];
    for n in 0..4u8 {
        prev.push(openai_call(10, n + 1, at(-7 + i64::from(n)), "search"));
    }
    let mut cur = vec![];
    for n in 0..6u8 {
        cur.push(openai_call(11, n + 1, at(i64::from(n)), "search"));
    }
    for n in 0..2u8 {
        cur.push(openai_call(12, n + 1, at(2), "summary"));
    }
    decode_ok(
        post(
            &app,
            Some(&token),
            "application/x-protobuf",
            false,
            request("checkout", prev).encode_to_vec(),
        )
        .await,
    )
    .await;
    decode_ok(
        post(
            &app,
            Some(&token),
            "application/x-protobuf",
            false,
            request("checkout", cur).encode_to_vec(),
        )
        .await,
    )
    .await;

    let viewer = app.create_token("viewer", Role::Viewer).await;
    let (y, w, _) = monday.to_iso_week_date();
    let week = format!("{y}-W{w:02}");
    let get = |q: String| {
        let c = app.plain();
        let url = app.url(&format!("/api/v1/llm/review?{q}"));
        let v = viewer.clone();
        async move {
            let res = c.get(url).bearer_auth(v).send().await.unwrap();
            (
                res.status().as_u16(),
                res.json::<serde_json::Value>().await.unwrap(),
            )
        }
    };
    let (status, r) = get(format!("week={week}&by=feature")).await;
    assert_eq!(status, 200, "{r}");
    assert_eq!(r["week"], week);
    assert_eq!(r["cur"]["calls"], 8);
    assert_eq!(r["prev"]["calls"], 4);
    // 0.003532 per call: 8 calls 0.028256, 4 calls 0.014128.
    assert_eq!(r["cur"]["cost"], "$0.0283");
    assert_eq!(r["prev"]["cost"], "$0.0141");
    // Same cost per call everywhere: the whole change is volume.
    assert_eq!(r["overall"]["volume"], "+$0.0141", "{}", r["overall"]);
    assert_eq!(r["overall"]["mix"], "+$0.00");
    assert!(
        r["overall"]["sentence"]
            .as_str()
            .unwrap()
            .contains("calls 4 → 8, +100%"),
        "{}",
        r["overall"]["sentence"]
    );
    let rows = r["rows"].as_array().unwrap();
    assert_eq!(rows.len(), 2);
    assert_eq!(rows[0]["key"], "search");
    assert_eq!(rows[0]["cur"]["calls"], 6);
    assert_eq!(rows[0]["prev"]["calls"], 4);
    assert_eq!(rows[1]["key"], "summary");
    assert_eq!(r["trend"].as_array().unwrap().len(), 13);
    assert_eq!(r["trend"][12]["calls"], 8);
    assert_eq!(r["trend"][11]["calls"], 4);
    assert_eq!(r["top_traces"][0]["trace_id"], "0b".repeat(16));
    let calls: serde_json::Value = app
        .plain()
        .get(app.url(&format!("/api/v1/llm/traces/{}", "0b".repeat(16))))
        .bearer_auth(&viewer)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(
        calls.as_array().unwrap().len(),
        6,
        "the trace's six calls: {calls}"
    );
    assert_eq!(calls[0]["cost"], "$0.0035");
    assert!(
        calls[0]["raw_usage"]
            .as_str()
            .unwrap()
            .contains("\"cache_read_tokens\": 1920")
    );
    // Savings: 1920 cached tokens × ($2 − $0.50) per million × 8 calls = $0.02304.
    assert_eq!(r["cur"]["cache_savings"], "$0.0230");
    // Drill down: one feature.
    let (_, d) = get(format!("week={week}&by=model&feature=summary")).await;
    assert_eq!(d["cur"]["calls"], 2);
    assert_eq!(d["rows"][0]["key"], "gpt-4.1");
    // Bad queries.
    for q in ["week=2026-W99", "by=colour", "week=x", "nope=1"] {
        let (status, _) = get(q.to_string()).await;
        assert!(status == 422 || status == 400, "{q}: {status}");
    }
}

#[sqlx::test(migrations = "../migrations")]
async fn an_ingest_token_from_the_settings_form(pool: PgPool) {
    let app = TestApp::spawn(pool.clone()).await;
    let admin = app.signed_in("llm-root", Role::Admin).await;
    let res = admin
        .post(app.url("/settings/tokens"))
        .header("accept", "text/html")
        .form(&[("name", "collector"), ("role", "viewer"), ("ingest", "1")])
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    let html = res.text().await.unwrap();
    assert!(
        html.contains("ingest only: sends traces"),
        "the list says what it is"
    );
    let start = html.find("lko_").expect("the secret is on the page");
    let secret: String = html[start..]
        .chars()
        .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
        .collect();
    let body = request(
        "svc",
        vec![openai_call(7, 7, OffsetDateTime::now_utc(), "f")],
    )
    .encode_to_vec();
    decode_ok(post(&app, Some(&secret), "application/x-protobuf", false, body).await).await;
    assert_eq!(app.count("llm_usage").await, 1);
    // Ingest and deployment services together make no sense: refused, nothing created.
    let res = admin
        .post(app.url("/settings/tokens"))
        .header("accept", "text/html")
        .form(&[
            ("name", "both"),
            ("role", "viewer"),
            ("ingest", "1"),
            ("deploy_services", "x"),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 422);
    assert_eq!(app.count("api_tokens").await, 1);
}

#[sqlx::test(migrations = "../migrations")]
async fn otlp_grpc_answers_with_the_codes_exporters_act_on(pool: PgPool) {
    use opentelemetry_proto::tonic::collector::trace::v1::trace_service_client::TraceServiceClient;
    domain::services::llm::seed_default_prices(&pool)
        .await
        .unwrap();
    let (app, grpc) = TestApp::spawn_with_grpc(pool.clone(), |_| {}).await;
    let token = ingest_token(&app).await;
    let admin = app.create_token("grpc-admin", Role::Admin).await;
    let mut client = TraceServiceClient::connect(grpc).await.unwrap();
    let at = OffsetDateTime::now_utc();
    let mut bad = openai_call(8, 2, at, "f");
    bad.attributes
        .push(kv("gen_ai.usage.output_tokens", s("many")));
    let batch = request("svc", vec![openai_call(8, 1, at, "f"), bad]);
    let send = |secret: Option<String>| {
        let mut req = tonic::Request::new(batch.clone());
        if let Some(t) = secret {
            req.metadata_mut()
                .insert("authorization", format!("Bearer {t}").parse().unwrap());
        }
        req
    };
    let e = client.export(send(None)).await.unwrap_err();
    assert_eq!(e.code(), tonic::Code::Unauthenticated);
    let e = client
        .export(send(Some("lko_nope".into())))
        .await
        .unwrap_err();
    assert_eq!(e.code(), tonic::Code::Unauthenticated);
    let e = client.export(send(Some(admin))).await.unwrap_err();
    assert_eq!(e.code(), tonic::Code::PermissionDenied);
    assert_eq!(app.count("llm_usage").await, 0);
    let ok = client
        .export(send(Some(token.clone())))
        .await
        .unwrap()
        .into_inner();
    let partial = ok.partial_success.expect("one span refused");
    assert_eq!(partial.rejected_spans, 1);
    assert!(
        partial.error_message.contains("gen_ai.usage.output_tokens"),
        "{}",
        partial.error_message
    );
    // Retried: acknowledged, not counted again.
    client.export(send(Some(token))).await.unwrap();
    assert_eq!(app.count("llm_usage").await, 1);
}

#[sqlx::test(migrations = "../migrations")]
async fn the_review_record_and_its_exports(pool: PgPool) {
    domain::services::llm::seed_default_prices(&pool)
        .await
        .unwrap();
    let app = TestApp::spawn(pool.clone()).await;
    let token = ingest_token(&app).await;
    let today = OffsetDateTime::now_utc().date();
    let monday = today - Duration::days(i64::from(today.weekday().number_days_from_monday()) + 7);
    let at = monday.midnight().assume_utc() + Duration::hours(30);
    // A feature name a spreadsheet would run as a formula.
    let spans = vec![
        openai_call(20, 1, at, "=HYPERLINK(\"http://evil\")"),
        openai_call(20, 2, at, "search"),
        chat(20, 3, at, "private-model", (100, 0, 10), "search"),
    ];
    assert_eq!(
        common::llm::export(&app, &token, &request("checkout", spans)).await,
        200
    );
    let (y, w, _) = monday.to_iso_week_date();
    let week = format!("{y}-W{w:02}");
    let viewer = app.create_token("rv-viewer", Role::Viewer).await;
    let responder = app.create_token("rv-responder", Role::Responder).await;

    // CSV: every bucket, the price version, exact cost; the formula neutralised.
    let res = app
        .plain()
        .get(app.url(&format!("/api/v1/llm/review/csv?week={week}&by=feature")))
        .bearer_auth(&viewer)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    assert!(
        res.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/csv")
    );
    assert!(
        res.headers()["content-disposition"]
            .to_str()
            .unwrap()
            .contains(&format!("lookout-llm-costs-{week}-by-feature.csv"))
    );
    let csv = res.text().await.unwrap();
    let mut lines = csv.lines();
    assert_eq!(
        lines.next().unwrap(),
        "week,feature,model,price_version,status,calls,input_tokens,cache_read_tokens,cache_write_5m_tokens,cache_write_1h_tokens,output_tokens,reasoning_tokens,cost_usd"
    );
    let body: Vec<&str> = lines.collect();
    assert!(
        body.iter()
            .any(|l| l.contains("\"'=HYPERLINK(\"\"http://evil\"\")\"")),
        "{csv}"
    );
    let priced = body
        .iter()
        .find(|l| l.contains("\"search\",\"gpt-4.1\""))
        .unwrap();
    assert!(
        priced.ends_with(",1,86,1920,0,0,300,0,0.003532"),
        "{priced}"
    );
    let unpriced = body.iter().find(|l| l.contains("private-model")).unwrap();
    assert!(
        unpriced.contains(",,\"ok\",1,100,0,0,0,10,0,"),
        "no price version, no cost: {unpriced}"
    );

    // The record: viewers read it, responders write it; the reviewer and time are kept.
    let put = |t: &str, body: serde_json::Value| {
        let req = app
            .plain()
            .put(app.url(&format!("/api/v1/llm/reviews/{week}")))
            .bearer_auth(t)
            .json(&body);
        async move {
            let res = req.send().await.unwrap();
            (
                res.status().as_u16(),
                res.json::<serde_json::Value>().await.unwrap(),
            )
        }
    };
    let notes = "Spend doubled: </textarea><svg onload=alert(1)> `checkout` moved to gpt-4.1.";
    let (status, _) = put(
        &viewer,
        serde_json::json!({ "notes": "x", "reviewed": true }),
    )
    .await;
    assert_eq!(status, 403);
    let (status, r) = put(
        &responder,
        serde_json::json!({ "notes": notes, "reviewed": true }),
    )
    .await;
    assert_eq!(status, 200, "{r}");
    assert_eq!(r["reviewed_by"], "token:rv-responder");
    let first_at = r["reviewed_at"].clone();
    let (_, r) = put(
        &responder,
        serde_json::json!({ "notes": notes, "reviewed": true }),
    )
    .await;
    assert_eq!(r["reviewed_at"], first_at, "the first review time is kept");
    for (body, want) in [
        (serde_json::json!({ "notes": "x".repeat(20_001) }), 422),
        (serde_json::json!({ "notes": "bell\u{7}" }), 422),
        (serde_json::json!({ "notes": "x", "colour": 1 }), 400),
    ] {
        let (status, e) = put(&responder, body).await;
        assert_eq!(status, want, "{e}");
    }
    let res = app
        .plain()
        .put(app.url("/api/v1/llm/reviews/2026-W99"))
        .bearer_auth(&responder)
        .json(&serde_json::json!({ "notes": "x" }))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 422);

    // Markdown: the tables, the explanation, the notes, who reviewed.
    let md = app
        .plain()
        .get(app.url(&format!("/api/v1/llm/review/markdown?week={week}")))
        .bearer_auth(&viewer)
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(md.starts_with(&format!("# LLM cost review {week}")), "{md}");
    assert!(md.contains("## Why it changed"));
    assert!(md.contains("| Cost | $0.0071 |"), "{md}");
    assert!(md.contains("| Unpriced calls | 1 | 0 |"), "{md}");
    assert!(md.contains("## By service") && md.contains("| checkout |"));
    assert!(md.contains("Reviewed by token:rv-responder"));
    assert!(md.contains(notes));

    // The page shows the notes as text inside the textarea, never as markup.
    let browser = app.signed_in("rv-person", Role::Responder).await;
    let html = browser
        .get(app.url(&format!("/costs?week={week}")))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        !html.contains("<svg onload"),
        "the notes broke out of the textarea"
    );
    assert!(
        html.contains("&lt;/textarea&gt;&lt;svg onload=alert(1)&gt;"),
        "the notes are in the textarea"
    );
    assert!(html.contains("Reviewed"));
}

#[sqlx::test(migrations = "../migrations")]
async fn fallbacks_and_their_tax_per_feature(pool: PgPool) {
    domain::services::llm::seed_default_prices(&pool)
        .await
        .unwrap();
    let app = TestApp::spawn(pool.clone()).await;
    let token = ingest_token(&app).await;
    let today = OffsetDateTime::now_utc().date();
    let monday = today - Duration::days(i64::from(today.weekday().number_days_from_monday()) + 7);
    let at = monday.midnight().assume_utc() + Duration::hours(50);
    // A request to gpt-4.1 that timed out after being billed 1000 input tokens, answered by
    // Claude Sonnet (attempts under one parent span, exported in two batches), and three
    // requests gpt-4.1 answered itself.
    let mut failed = chat(30, 1, at, "gpt-4.1", (1000, 0, 0), "answers");
    failed.attributes.push(kv("error.type", s("timeout")));
    let mut answer = span(
        30,
        2,
        at + Duration::seconds(31),
        vec![
            kv("gen_ai.operation.name", s("chat")),
            kv("gen_ai.provider.name", s("anthropic")),
            kv("gen_ai.response.model", s("claude-sonnet-4-5")),
            kv("gen_ai.usage.input_tokens", i(1000)),
            kv("gen_ai.usage.output_tokens", i(100)),
            kv("app.feature", s("answers")),
        ],
    );
    answer.parent_span_id = failed.parent_span_id.clone();
    assert_eq!(
        common::llm::export(&app, &token, &request("svc", vec![failed])).await,
        200
    );
    assert_eq!(
        common::llm::export(&app, &token, &request("svc", vec![answer])).await,
        200
    );
    let others = (0..3u8)
        .map(|n| chat(31 + n, 1, at, "gpt-4.1", (1000, 0, 100), "answers"))
        .collect();
    assert_eq!(
        common::llm::export(&app, &token, &request("svc", others)).await,
        200
    );
    // The worker resolves failed calls ten seconds after they arrive; here, at once.
    assert_eq!(
        domain::services::llm::resolve_chains(&pool, std::time::Duration::ZERO, 100)
            .await
            .unwrap(),
        1
    );

    let (y, w, _) = monday.to_iso_week_date();
    let viewer = app.create_token("fb-viewer", Role::Viewer).await;
    let r: serde_json::Value = app
        .plain()
        .get(app.url(&format!("/api/v1/llm/review?week={y}-W{w:02}")))
        .bearer_auth(&viewer)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let f = &r["fallbacks"][0];
    assert_eq!(f["feature"], "answers", "{r}");
    assert_eq!(f["requests"], 4);
    assert_eq!(f["fell_back"], 1);
    assert_eq!(f["share"], 25.0);
    assert_eq!(
        f["chains"][0],
        "openai gpt-4.1 → anthropic claude-sonnet-4-5 (1)"
    );
    // The timed-out attempt: 1000 × $2 per million. Claude: 1000 × $3 + 100 × $15 = $0.0045
    // where gpt-4.1 would have cost 1000 × $2 + 100 × $8 = $0.0028: $0.0017 more.
    assert_eq!(f["failed_cost"], "$0.0020");
    assert_eq!(f["pricier_cost"], "$0.0017");
    assert_eq!(f["tax"], "$0.0037");
    assert_eq!(r["fallbacks"].as_array().unwrap().len(), 1);
}

#[sqlx::test(migrations = "../migrations")]
async fn weeks_start_in_the_configured_zone(pool: PgPool) {
    domain::services::llm::seed_default_prices(&pool)
        .await
        .unwrap();
    let offset = time::UtcOffset::from_hms(2, 0, 0).unwrap();
    let app = TestApp::spawn_with(pool.clone(), |c| c.llm_week_offset = offset).await;
    let token = ingest_token(&app).await;
    // Sunday 23:00 UTC is Monday 01:00 at UTC+02:00: the next week there.
    let today = OffsetDateTime::now_utc().date();
    let monday = today - Duration::days(i64::from(today.weekday().number_days_from_monday()) + 7);
    let at = monday.midnight().assume_utc() - Duration::hours(1);
    assert_eq!(
        common::llm::export(
            &app,
            &token,
            &request("svc", vec![openai_call(40, 1, at, "f")])
        )
        .await,
        200
    );
    let (y, w, _) = monday.to_iso_week_date();
    let viewer = app.create_token("tz-viewer", Role::Viewer).await;
    let r: serde_json::Value = app
        .plain()
        .get(app.url(&format!("/api/v1/llm/review?week={y}-W{w:02}")))
        .bearer_auth(&viewer)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(r["zone"], "UTC+02:00");
    assert_eq!(r["cur"]["calls"], 1, "in this week at UTC+02:00: {r}");
    assert_eq!(r["prev"]["calls"], 0);
    assert!(
        r["from"].as_str().unwrap().ends_with("+02:00"),
        "{}",
        r["from"]
    );
    // The daily rollups follow the deployment's zone: a server started at UTC rebuilds them
    // from the hourly ones, and the same record is in the week before there; back at
    // UTC+02:00, in this week again.
    for (offset, cur, prev) in [(time::UtcOffset::UTC, 0, 1), (offset, 1, 0)] {
        let other = TestApp::spawn_with(pool.clone(), |c| c.llm_week_offset = offset).await;
        let r: serde_json::Value = other
            .plain()
            .get(other.url(&format!("/api/v1/llm/review?week={y}-W{w:02}")))
            .bearer_auth(&viewer)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        assert_eq!(
            (r["cur"]["calls"].as_i64(), r["prev"]["calls"].as_i64()),
            (Some(cur), Some(prev)),
            "at {offset}: {r}"
        );
        let stored: i32 = sqlx::query_scalar("SELECT offset_secs FROM llm_rollup_zone")
            .fetch_one(&pool)
            .await
            .unwrap();
        assert_eq!(stored, offset.whole_seconds());
    }
}

/// The review's top traces for the query `q`: (trace id, calls).
async fn top_traces(app: &TestApp, token: &str, q: &str) -> Vec<(String, i64)> {
    let r: serde_json::Value = app
        .plain()
        .get(app.url(&format!("/api/v1/llm/review?{q}")))
        .bearer_auth(token)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    r["top_traces"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| {
            (
                t["trace_id"].as_str().unwrap().to_string(),
                t["calls"].as_i64().unwrap(),
            )
        })
        .collect()
}

/// The review's top traces equal the ones computed from the records — a trace belongs to the
/// week of its first call — whether their costs are folded, unfolded or split between the two;
/// and a filtered view ranks only the calls matching the filter.
#[sqlx::test(migrations = "../migrations")]
async fn top_traces_are_exact_folded_or_not(pool: PgPool) {
    domain::services::llm::seed_default_prices(&pool)
        .await
        .unwrap();
    let app = TestApp::spawn(pool.clone()).await;
    let token = ingest_token(&app).await;
    let viewer = app.create_token("top-viewer", Role::Viewer).await;
    let today = OffsetDateTime::now_utc().date();
    let monday = today - Duration::days(i64::from(today.weekday().number_days_from_monday()) + 7);
    let start = monday.midnight().assume_utc();
    let (y, w, _) = monday.to_iso_week_date();
    let (py, pw, _) = (monday - Duration::days(7)).to_iso_week_date();
    // Traces 1..=25 in the week (trace t costs about t units; even ones in svc-a), sent in two
    // halves with a fold between; trace 24 gets one more call after the fold; trace 26 starts
    // on the Sunday before (the previous week) and has its biggest call in this one.
    let call = |t: u8, id: u8, at: OffsetDateTime, input: i64| {
        chat(t, id, at, "gpt-4.1", (input, 0, 100), "f")
    };
    let send = |spans: Vec<(u8, Span)>| {
        let (a, b): (Vec<_>, Vec<_>) = spans.into_iter().partition(|(t, _)| t % 2 == 0);
        let req = ExportTraceServiceRequest {
            resource_spans: [
                request("svc-a", a.into_iter().map(|x| x.1).collect()),
                request("svc-b", b.into_iter().map(|x| x.1).collect()),
            ]
            .into_iter()
            .flat_map(|r| r.resource_spans)
            .collect(),
        };
        let (app, token) = (&app, &token);
        async move { assert_eq!(common::llm::export(app, token, &req).await, 200) }
    };
    let mut first = vec![];
    let mut second = vec![];
    for t in 1..=25u8 {
        let at = start + Duration::hours(i64::from(t));
        let list = if t <= 12 { &mut first } else { &mut second };
        list.push((t, call(t, 1, at, 1000 * i64::from(t))));
        if t % 3 == 0 {
            list.push((t, call(t, 2, at + Duration::minutes(1), 500)));
        }
    }
    first.push((26, call(26, 1, start - Duration::hours(1), 100)));
    second.push((26, call(26, 2, start + Duration::hours(2), 90_000)));
    let review = |q: String| {
        let (app, viewer) = (&app, &viewer);
        async move {
            top_traces(app, viewer, &q)
                .await
                .into_iter()
                .map(|t| t.0)
                .collect::<Vec<_>>()
        }
    };
    let expected = |from: OffsetDateTime, service: Option<&'static str>| {
        let pool = &pool;
        async move {
            let sql = match service {
                None => {
                    "SELECT trace_id FROM llm_usage WHERE cost IS NOT NULL GROUP BY trace_id
                      HAVING min(started_at) >= $1 AND min(started_at) < $2
                      ORDER BY sum(cost) DESC, trace_id LIMIT 20"
                }
                Some(_) => {
                    "SELECT trace_id FROM llm_usage
                      WHERE cost IS NOT NULL AND started_at >= $1 AND started_at < $2
                        AND service = $3
                      GROUP BY trace_id ORDER BY sum(cost) DESC, trace_id LIMIT 20"
                }
            };
            sqlx::query_scalar::<_, String>(sql)
                .bind(from)
                .bind(from + Duration::days(7))
                .bind(service.unwrap_or_default())
                .fetch_all(pool)
                .await
                .unwrap()
        }
    };
    let check = |when: &'static str| {
        let (review, expected) = (&review, &expected);
        async move {
            let cur = review(format!("week={y}-W{w:02}")).await;
            assert_eq!(cur.len(), 20, "{when}");
            assert_eq!(cur, expected(start, None).await, "{when}");
            assert!(
                !cur.contains(&"1a".repeat(16)),
                "trace 26 is last week's ({when})"
            );
            let prev = review(format!("week={py}-W{pw:02}")).await;
            assert_eq!(prev, vec!["1a".repeat(16)], "{when}");
            let a = review(format!("week={y}-W{w:02}&service=svc-a")).await;
            assert_eq!(a, expected(start, Some("svc-a")).await, "{when}");
            assert!(
                a.contains(&"1a".repeat(16)),
                "its call here, in svc-a ({when})"
            );
        }
    };
    send(first).await;
    domain::services::llm::fold_rollups(&pool, 1_000)
        .await
        .unwrap();
    send(second).await;
    send(vec![(24, call(24, 9, start + Duration::hours(30), 40_000))]).await;
    check("half folded").await;
    let pending: i64 = sqlx::query_scalar("SELECT count(*) FROM llm_trace_delta")
        .fetch_one(&pool)
        .await
        .unwrap();
    assert!(pending > 0);
    domain::services::llm::fold_rollups(&pool, 1_000)
        .await
        .unwrap();
    check("all folded").await;
}

/// A filtered view's top traces (the matching calls of the week, grouped by trace) equal SQL
/// over the records, for one, two and three filters and filters every call matches, folded
/// or not — including a trace whose three matching calls are each cheaper than a hundred
/// other traces' one but whose sum ranks among the first, and a trace called again later.
#[sqlx::test(migrations = "../migrations")]
async fn filtered_top_traces_are_exact(pool: PgPool) {
    domain::services::llm::seed_default_prices(&pool)
        .await
        .unwrap();
    let app = TestApp::spawn(pool.clone()).await;
    let token = ingest_token(&app).await;
    let viewer = app.create_token("filter-viewer", Role::Viewer).await;
    let today = OffsetDateTime::now_utc().date();
    let monday = today - Duration::days(i64::from(today.weekday().number_days_from_monday()) + 7);
    let at = (monday + Duration::days(1)).midnight().assume_utc() + Duration::hours(10);
    let (y, w, _) = monday.to_iso_week_date();
    let traced = |n: u16, id: u8, minute: i64, model: &str, input: i64, feature: &str| {
        let mut sp = chat(
            0,
            id,
            at + Duration::minutes(minute),
            model,
            (input, 0, 50),
            feature,
        );
        sp.trace_id = [&n.to_be_bytes()[..], &[0x5a; 14]].concat();
        sp
    };
    // 150 single-call traces in svc-a/f1 (inputs 10,000 .. 24,900 tokens); trace 900 has three
    // calls in svc-a, one per feature, of 9,000 tokens each (its 27,000 rank it first in svc-a);
    // 40 traces in svc-b spread over models and features, two of them also calling svc-a.
    let mut a = vec![];
    let mut b = vec![];
    for k in 0..150u16 {
        a.push(traced(
            k,
            1,
            i64::from(k),
            "gpt-4.1",
            10_000 + i64::from(k) * 100,
            "f1",
        ));
    }
    for (id, f) in [(1, "f1"), (2, "f2"), (3, "f3")] {
        a.push(traced(900, id, 5, "gpt-4.1", 9_000, f));
    }
    let models = ["gpt-4.1", "gpt-4.1-mini", "gpt-4o"];
    for k in 0..40u16 {
        let m = models[usize::from(k % 3)];
        let f = ["f1", "f2"][usize::from(k % 2)];
        b.push(traced(
            500 + k,
            1,
            i64::from(k),
            m,
            3_000 + i64::from(k) * 700,
            f,
        ));
        b.push(traced(500 + k, 2, i64::from(k) + 1, "gpt-4o", 2_000, "f2"));
        if k < 2 {
            a.push(traced(500 + k, 3, 30, "gpt-4.1", 60_000, "f2"));
        }
    }
    let both = |a: Vec<Span>, b: Vec<Span>| ExportTraceServiceRequest {
        resource_spans: [request("svc-a", a), request("svc-b", b)]
            .into_iter()
            .flat_map(|r| r.resource_spans)
            .collect(),
    };
    let late = vec![traced(7, 2, 200, "gpt-4.1", 30_000, "f1")];
    // In several requests (the test server's body limit is small).
    let mut a = a.into_iter().peekable();
    let mut b = b.into_iter().peekable();
    while a.peek().is_some() || b.peek().is_some() {
        let req = both(a.by_ref().take(40).collect(), b.by_ref().take(40).collect());
        assert_eq!(common::llm::export(&app, &token, &req).await, 200);
    }
    let filters: [&[(&str, &str)]; 7] = [
        &[("service", "svc-a")],
        &[("model", "gpt-4o")],
        &[("service", "svc-a"), ("feature", "f1")],
        &[("service", "svc-b"), ("feature", "f2"), ("model", "gpt-4o")],
        &[("tenant", "acme")],
        &[("operation", "chat"), ("provider", "openai")],
        &[("feature", "none-such")],
    ];
    let check = |when: &'static str| {
        let (app, viewer, pool) = (&app, &viewer, &pool);
        async move {
            for f in filters {
                let q: String = f.iter().map(|(k, v)| format!("&{k}={v}")).collect();
                let got = top_traces(app, viewer, &format!("week={y}-W{w:02}{q}")).await;
                let want: Vec<(String, i64)> = grouped_top(
                    pool,
                    monday.midnight().assume_utc(),
                    (monday + Duration::days(7)).midnight().assume_utc(),
                    f,
                )
                .await
                .into_iter()
                .map(|t| (t.0, t.2))
                .collect();
                assert_eq!(got, want, "{f:?} ({when})");
                if f == [("service", "svc-a")] {
                    // 500 and 501 (60,000 tokens in svc-a) and 900's three parts lead.
                    assert!(
                        got[..4].contains(&(format!("0384{}", "5a".repeat(14)), 3)),
                        "{when}"
                    );
                }
            }
        }
    };
    check("unfolded").await;
    domain::services::llm::fold_rollups(&pool, 100_000)
        .await
        .unwrap();
    check("folded").await;
    assert_eq!(
        common::llm::export(&app, &token, &request("svc-a", late)).await,
        200
    );
    check("a late call unfolded").await;
    domain::services::llm::fold_rollups(&pool, 100_000)
        .await
        .unwrap();
    check("all folded").await;
}

/// A fallback whose answer arrives after the failure was first looked at is still found: the
/// failed call is queued again while no attempt has answered (for an hour), and the chain is
/// stored once it has.
#[sqlx::test(migrations = "../migrations")]
async fn a_late_fallback_is_still_found(pool: PgPool) {
    domain::services::llm::seed_default_prices(&pool)
        .await
        .unwrap();
    let app = TestApp::spawn(pool.clone()).await;
    let token = ingest_token(&app).await;
    let at = OffsetDateTime::now_utc() - Duration::minutes(5);
    let mut failed = chat(40, 1, at, "gpt-4.1", (1000, 0, 0), "late");
    failed.status = Some(Status {
        code: 2,
        ..Default::default()
    });
    let mut answer = chat(
        40,
        2,
        at + Duration::seconds(40),
        "gpt-4.1-mini",
        (1000, 0, 10),
        "late",
    );
    answer.parent_span_id = failed.parent_span_id.clone();
    assert_eq!(
        common::llm::export(&app, &token, &request("svc", vec![failed])).await,
        200
    );
    let resolve = || domain::services::llm::resolve_chains(&pool, std::time::Duration::ZERO, 100);
    assert_eq!(resolve().await.unwrap(), 1);
    assert_eq!(
        app.count("llm_fallback_chains").await,
        0,
        "nothing answered yet"
    );
    assert_eq!(app.count("llm_chain_pending").await, 1, "queued again");
    assert_eq!(
        common::llm::export(&app, &token, &request("svc", vec![answer])).await,
        200
    );
    assert_eq!(resolve().await.unwrap(), 1);
    assert_eq!(app.count("llm_chain_pending").await, 0);
    let (first, answered, n): (String, String, i32) =
        sqlx::query_as("SELECT first_model, answer_model, attempts FROM llm_fallback_chains")
            .fetch_one(&pool)
            .await
            .unwrap();
    assert_eq!(
        (first.as_str(), answered.as_str(), n),
        ("gpt-4.1", "gpt-4.1-mini", 2)
    );
}

/// The reference: the top 20 traces by their calls in `[from, to)` matching `filters`, grouped
/// from the records in SQL.
async fn grouped_top(
    pool: &PgPool,
    from: OffsetDateTime,
    to: OffsetDateTime,
    filters: &[(&str, &str)],
) -> Vec<domain::storage::llm::TraceTotal> {
    let mut sql = "SELECT trace_id, min(service), count(*)::int8, sum(cost) FROM llm_usage
                    WHERE cost IS NOT NULL AND started_at >= $1 AND started_at < $2"
        .to_string();
    for (i, (k, _)) in filters.iter().enumerate() {
        sql.push_str(&format!(" AND {k} = ${}", i + 3));
    }
    sql.push_str(" GROUP BY trace_id ORDER BY sum(cost) DESC, trace_id LIMIT 20");
    let mut q = sqlx::query_as(&sql).bind(from).bind(to);
    for (_, v) in filters {
        q = q.bind(*v);
    }
    q.fetch_all(pool).await.unwrap()
}

/// The walk alone (no grouping after it), as `top_traces` runs it: in a REPEATABLE READ
/// snapshot, for the top 20.
async fn walk_alone(
    pool: &PgPool,
    range: (OffsetDateTime, OffsetDateTime),
    days: (time::Date, time::Date),
    filters: &[(String, String)],
) -> Option<Vec<domain::storage::llm::TraceTotal>> {
    let mut tx = pool.begin().await.unwrap();
    sqlx::query("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY")
        .execute(&mut *tx)
        .await
        .unwrap();
    domain::storage::llm::walk_top_traces(&mut tx, range, days, filters, 20)
        .await
        .unwrap()
}

/// The walk of the trace costs that answers a filtered view's top traces when its filter
/// matches most of the dearest traces gives exactly what grouping the week's records gives,
/// and is the path taken: 1,200 two-call traces (a chat call and a cheaper embeddings call;
/// every cost shared by two traces, so ties are ranked by trace id), a trace begun nine days
/// before the week with its dearest call in it (found only through the traces that span days),
/// a trace whose dearest call is after the week, and a trace raised to the top by a call not
/// yet folded (found only through the deltas). A filter matching few traces is left to the
/// grouping, with the same answer.
#[sqlx::test(migrations = "../migrations")]
async fn the_walk_of_trace_costs_is_exact_and_taken(pool: PgPool) {
    use domain::llm::tokens::{Buckets, RawUsage};
    use domain::storage::llm::{self as store, UsageRow};
    let monday = time::macros::date!(2026 - 06 - 01);
    let at = |day: i64, secs: i64| {
        monday.midnight().assume_utc() + Duration::days(day) + Duration::seconds(secs)
    };
    let mut conn = pool.acquire().await.unwrap();
    for d in -10..24 {
        store::ensure_partition(&mut conn, monday + Duration::days(d))
            .await
            .unwrap();
    }
    drop(conn);
    let price: i64 = sqlx::query_scalar(
        "INSERT INTO llm_prices (provider, model, effective_from, input, output, source)
         VALUES ('openai', 'gpt-4.1', '2020-01-01', 2, 8, 'test') RETURNING id",
    )
    .fetch_one(&pool)
    .await
    .unwrap();
    let row = |trace: &str,
               n: u32,
               when: OffsetDateTime,
               op: &str,
               feature: &str,
               service: &str,
               milli: i64| UsageRow {
        record_id: format!("{trace}-{n}"),
        trace_id: Some(trace.to_string()),
        span_id: Some(format!("{n:016x}")),
        parent_span_id: None,
        started_at: when,
        duration_ms: 100.0,
        provider: "openai".into(),
        model: "gpt-4.1".into(),
        request_model: None,
        operation: op.into(),
        service: service.into(),
        feature: feature.into(),
        tenant: "t".into(),
        service_tier: "default".into(),
        ok: true,
        error_type: None,
        buckets: Buckets::default(),
        raw: RawUsage::default(),
        price_id: Some(price),
        cost: Some(Decimal::new(milli, 3)),
    };
    let mut rows = vec![];
    for k in 0..1200i64 {
        let t = format!("{k:032x}");
        let (day, svc) = (k % 7, format!("svc-{}", k % 10));
        let feature = format!("f{}", k % 5);
        rows.push(row(
            &t,
            1,
            at(day, k),
            "chat",
            &feature,
            &svc,
            (k * 37) % 600 + 1,
        ));
        rows.push(row(
            &t,
            2,
            at(day, k + 1),
            "embeddings",
            "f0",
            &svc,
            (k * 53) % 300 + 1,
        ));
    }
    let (early, after, raised) = ("e".repeat(32), "a".repeat(32), format!("{:032x}", 5));
    rows.push(row(&early, 1, at(-9, 0), "chat", "f3", "svc-1", 1));
    rows.push(row(&early, 2, at(1, 0), "chat", "f3", "svc-1", 2_000));
    rows.push(row(&after, 1, at(6, 23 * 3600), "chat", "f3", "svc-2", 300));
    rows.push(row(&after, 2, at(7, 3600), "chat", "f3", "svc-2", 5_000));
    for part in rows.chunks(500) {
        store::insert_usage(&pool, part).await.unwrap();
    }
    domain::services::llm::fold_rollups(&pool, 100_000)
        .await
        .unwrap();
    let (from, to) = (at(0, 0), at(7, 0));
    let filters: [(&[(&str, &str)], bool); 5] = [
        (&[("operation", "chat")], true),
        (&[("provider", "openai")], true),
        (&[("feature", "f3")], true),
        (&[("operation", "chat"), ("feature", "f3")], true),
        (&[("service", "svc-x")], false),
    ];
    let check = |when: &'static str| {
        let pool = &pool;
        async move {
            for (f, walked) in filters {
                let want = grouped_top(pool, from, to, f).await;
                let owned: Vec<(String, String)> = f
                    .iter()
                    .map(|(k, v)| (k.to_string(), v.to_string()))
                    .collect();
                let days = (monday, monday + Duration::days(7));
                let got = store::top_traces(pool, (from, to), days, &owned, 20)
                    .await
                    .unwrap();
                assert_eq!(got, want, "{f:?} ({when})");
                let walk = walk_alone(pool, (from, to), days, &owned).await;
                if walked {
                    assert_eq!(walk.as_ref(), Some(&want), "{f:?} walked ({when})");
                } else {
                    assert_eq!(walk, None, "{f:?} is left to the grouping ({when})");
                }
            }
        }
    };
    check("folded").await;
    // The early trace leads the chat view; the one whose dearest call is after the week does not.
    let chat = [("operation".to_string(), "chat".to_string())];
    let days = (monday, monday + Duration::days(7));
    let top = store::top_traces(&pool, (from, to), days, &chat, 20)
        .await
        .unwrap();
    assert_eq!(top[0].0, early);
    assert!(!top.iter().any(|t| t.0 == after));
    // A folded trace raised to the top by a call whose delta is not folded yet.
    store::insert_usage(
        &pool,
        &[row(&raised, 9, at(5, 100), "chat", "f3", "svc-5", 3_000)],
    )
    .await
    .unwrap();
    check("a call not folded").await;
    let top = store::top_traces(&pool, (from, to), days, &chat, 20)
        .await
        .unwrap();
    assert_eq!(top[0].0, raised);
    domain::services::llm::fold_rollups(&pool, 100_000)
        .await
        .unwrap();
    check("all folded").await;

    // Ties at the walk's bound: the week after next, 300 traces of exactly 1.000, of which the
    // first 19 and the last 30 by id are in feature fz, and an unfolded trace of 1.000 in fz
    // with the greatest id. After one step the 20th found is that last trace, at the bound:
    // traces not read yet cost as much and come before it, so the walk must go on.
    let (from, to) = (at(14, 0), at(21, 0));
    let days = (monday + Duration::days(14), monday + Duration::days(21));
    let tied: Vec<UsageRow> = (0..300i64)
        .map(|k| {
            let f = if !(19..270).contains(&k) { "fz" } else { "fy" };
            row(
                &format!("{:032x}", 0x1000 + k),
                1,
                at(14 + k % 7, k),
                "chat",
                f,
                "svc-t",
                1_000,
            )
        })
        .collect();
    store::insert_usage(&pool, &tied).await.unwrap();
    domain::services::llm::fold_rollups(&pool, 100_000)
        .await
        .unwrap();
    let last = "f".repeat(32);
    store::insert_usage(
        &pool,
        &[row(&last, 1, at(16, 0), "chat", "fz", "svc-t", 1_000)],
    )
    .await
    .unwrap();
    let fz = [("feature".to_string(), "fz".to_string())];
    let want: Vec<String> = (0..19)
        .chain([270])
        .map(|k| format!("{:032x}", 0x1000 + k))
        .collect();
    let got = store::top_traces(&pool, (from, to), days, &fz, 20)
        .await
        .unwrap();
    assert_eq!(got.iter().map(|t| t.0.clone()).collect::<Vec<_>>(), want);
    let walk = walk_alone(&pool, (from, to), days, &fz).await;
    assert_eq!(walk, Some(got), "walked, past the tie");
}
