//! The `lookout` server: configuration, startup, the router (Leptos pages and server
//! functions, `/api/v1`, operations endpoints), the auth layers and background workers.
//! `main.rs` only parses the command line; everything else is here so integration tests
//! can build the same router against a real PostgreSQL.

#![recursion_limit = "1024"]

/// jemalloc for every binary that links the server (the `lookout` binary, its tests and
/// benchmarks): OTLP ingest allocates and frees many small strings per span, and glibc's
/// malloc took a third of the server's CPU doing it (37–40k records/s against 47–48k with
/// jemalloc, same machine; BENCHMARKS.md).
#[global_allocator]
static GLOBAL: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

pub mod api;
pub mod auth;
pub mod client_addr;
pub mod config;
pub mod deadline;
pub mod embedded_pg;
pub mod error;
pub mod forms;
pub mod headers;
pub mod ingest;
pub mod live;
pub mod metrics;
pub mod ops;
pub mod routes;
pub mod state;
pub mod telemetry;
pub mod workers;

use app::state::AppState;
use app::{App, shell};
use axum::Router;
use axum::extract::{DefaultBodyLimit, Request};
use axum::serve::ListenerExt;
use config::Config;
use leptos::prelude::LeptosOptions;
use leptos_axum::{LeptosRoutes, generate_route_list};
use routes::{RouteSpec, Routes};
use sqlx::PgPool;
use sqlx::postgres::PgPoolOptions;
use state::Shared;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;
use tower_http::catch_panic::CatchPanicLayer;
use tower_http::compression::predicate::DefaultPredicate;
use tower_http::compression::{CompressionLayer, CompressionLevel};
use tower_http::limit::RequestBodyLimitLayer;
use tower_http::request_id::{MakeRequestUuid, PropagateRequestIdLayer, SetRequestIdLayer};
use tower_http::trace::TraceLayer;
use tower_sessions::cookie::SameSite;
use tower_sessions::{Expiry, SessionManagerLayer};

pub fn leptos_options(config: &Config) -> LeptosOptions {
    LeptosOptions::builder()
        .output_name(config.output_name.clone())
        .site_root(config.site_root.clone())
        .site_pkg_dir(config.site_pkg_dir.clone())
        .site_addr(config.site_addr)
        .hash_files(hashed_assets())
        .build()
}

/// The build gave the wasm, JS and CSS content-hashed names (cargo-leptos `hash-files`): it
/// wrote their hashes to `hash.txt` next to the binary, where Leptos reads them to name the
/// files in the page. Without the file the plain names are used (a binary built by
/// `cargo build` alone, the in-process tests).
fn hashed_assets() -> bool {
    std::env::current_exe()
        .ok()
        .and_then(|exe| exe.parent().map(|dir| dir.join("hash.txt")))
        .is_some_and(|f| f.is_file())
}

/// Connects to PostgreSQL. The URL's password never appears in the error.
pub async fn connect(url: &str, max: u32) -> Result<PgPool, String> {
    let shown = url::Url::parse(url)
        .map(|mut u| {
            if u.password().is_some() {
                let _ = u.set_password(Some("***"));
            }
            u.to_string()
        })
        .unwrap_or_else(|_| "(unparseable DATABASE_URL)".into());
    let options: sqlx::postgres::PgConnectOptions = url
        .parse()
        .map_err(|e| format!("DATABASE_URL: not a PostgreSQL URL ({shown}): {e}"))?;
    // No JIT: Lookout's queries are short, and LLVM compiling a plan the planner costs high
    // (the cost review's, over partitioned tables) took 400 ms of a 430 ms query.
    let options = options.options([("jit", "off")]);
    PgPoolOptions::new()
        .max_connections(max)
        .acquire_timeout(Duration::from_secs(10))
        .connect_with(options)
        .await
        .map_err(|e| format!("DATABASE_URL: cannot connect to PostgreSQL at {shown}: {e}"))
}

/// Applies the embedded migrations; the message says which one failed and why.
pub async fn migrate(pool: &PgPool) -> Result<(), String> {
    domain::storage::MIGRATOR.run(pool).await.map_err(|e| {
        format!(
            "database migration failed: {e}. Lookout did not start; fix the database (or the \
             migration) and start again."
        )
    })?;
    // An empty LLM price book gets the prices Lookout ships (docs/llm-costs.md).
    domain::services::llm::seed_default_prices(pool)
        .await
        .map(|_| ())
        .map_err(|e| format!("seeding the default LLM prices failed: {e:?}"))
}

/// What the configuration asks of the database before serving: the daily LLM rollups in the
/// review's zone (rebuilt from the hourly ones when `LOOKOUT_LLM_WEEK_OFFSET` changed).
pub async fn prepare(pool: &PgPool, config: &Config) -> Result<(), String> {
    match domain::services::llm::set_rollup_zone(pool, config.llm_week_offset).await {
        Ok(true) => {
            tracing::info!(
                offset = %config.llm_week_offset,
                "rebuilt the daily LLM rollups in the review's zone"
            );
            Ok(())
        }
        Ok(false) => Ok(()),
        Err(e) => Err(format!(
            "moving the daily LLM rollups to the zone {} failed: {e:?}",
            config.llm_week_offset
        )),
    }
}

/// Everything served besides the Leptos pages and server functions: operations, sign-in and
/// sign-out, plain form posts, and `/api/v1`.
fn server_routes() -> Routes<AppState> {
    let r = Routes::new();
    let r = route!(r, "/healthz", get(ops::healthz));
    let r = route!(r, "/readyz", get(ops::readyz));
    let r = route!(r, "/metrics", get(ops::metrics));
    let r = route!(r, "/auth/login", post(auth::login));
    let r = route!(r, "/auth/logout", post(auth::logout));
    let r = route!(r, "/settings/tokens", post(forms::create_token));
    let r = route!(r, "/kubernetes/manifests", post(forms::check_manifests));
    let r = route!(r, "/v1/traces", post(ingest::traces));
    r.merge(api::routes())
}

/// The routes [`router`] serves besides Leptos's pages and server functions, with their
/// methods, read from the router's own construction (tests check every one has an
/// authorization rule and, under `/api/v1`, documentation).
pub fn route_table() -> Vec<RouteSpec> {
    server_routes().into_parts().1
}

/// The whole HTTP surface, with its layers.
pub fn router(pool: PgPool, config: Config) -> Router {
    router_with_shared(pool, config).0
}

/// [`router`], and what its handlers share (the OTLP/gRPC server, `ingest::grpc`, serves
/// from the same state on its own port).
pub fn router_with_shared(pool: PgPool, config: Config) -> (Router, Arc<Shared>) {
    let leptos_options = leptos_options(&config);
    let stats_cache = Arc::new(domain::services::incidents::StatsCache::new(
        Duration::from_secs(60),
    ));
    let state = AppState {
        leptos_options: leptos_options.clone(),
        pool: pool.clone(),
        stats_cache: stats_cache.clone(),
        access: config.access(),
        runner: domain::services::probe_runs::Runner::new(config.probe_runs_per_target),
        approvals: config.approvals.clone(),
        llm_retention_days: i64::from(config.llm_retention_days),
        llm_week_offset: config.llm_week_offset,
    };
    let max_body = config.max_body_bytes as usize;
    let session_layer =
        SessionManagerLayer::new(domain::storage::sessions::PgSessionStore::new(pool.clone()))
            .with_name("lookout_session")
            .with_http_only(true)
            .with_same_site(SameSite::Lax)
            .with_secure(config.cookie_secure())
            .with_expiry(Expiry::OnInactivity(
                tower_sessions::cookie::time::Duration::hours(i64::from(config.session_ttl_hours)),
            ));
    let shared = Arc::new(Shared {
        access: config.access(),
        trusted_proxies: config.trusted(),
        stats_cache,
        live: live::Live::start(pool.clone()),
        runner: state.runner.clone(),
        severity_mapping: config.alert_severity_mapping.clone(),
        pool,
        config,
        metrics: Arc::new(metrics::Metrics::new()),
        ingest_slots: Arc::new(tokio::sync::Semaphore::new(ingest::CONCURRENT_BATCHES)),
    });

    let routes = generate_route_list(App);
    let (own, _) = server_routes().into_parts();
    let router = Router::new()
        .merge(own)
        .leptos_routes_with_context(&state, routes, headers::provide_page_nonce, {
            let opts = leptos_options.clone();
            move || shell(opts.clone())
        })
        .fallback(leptos_axum::file_and_error_handler_with_context::<
            AppState,
            _,
        >(headers::provide_page_nonce, shell))
        .with_state(state)
        .layer(axum::middleware::from_fn(auth::authenticate))
        .layer(session_layer)
        .layer(axum::middleware::from_fn_with_state(
            Duration::from_secs(shared.config.request_timeout_secs),
            deadline::deadline,
        ))
        .layer(axum::middleware::from_fn_with_state(
            shared.metrics.clone(),
            metrics::track,
        ))
        .layer(axum::middleware::from_fn(headers::security_headers))
        .layer(axum::Extension(shared.clone()))
        .layer(DefaultBodyLimit::max(max_body))
        .layer(RequestBodyLimitLayer::new(max_body))
        .layer(axum::middleware::from_fn_with_state(
            max_body,
            error::api_too_large,
        ))
        // Brotli or gzip by Accept-Encoding, at a level cheap enough for dynamic pages (4);
        // never SSE (streamed as is), images or tiny bodies (tower-http's default
        // predicate), never what already has an encoding (the precompressed static files).
        .layer(
            CompressionLayer::new()
                .quality(CompressionLevel::Precise(4))
                .compress_when(DefaultPredicate::new()),
        )
        .layer(axum::middleware::from_fn(headers::cache_control))
        .layer(
            TraceLayer::new_for_http()
                .make_span_with(|req: &Request| {
                    let request_id = req
                        .headers()
                        .get("x-request-id")
                        .and_then(|v| v.to_str().ok())
                        .unwrap_or_default();
                    tracing::info_span!(
                        "request",
                        method = %req.method(),
                        path = %req.uri().path(),
                        request_id = %request_id,
                        user = tracing::field::Empty,
                    )
                })
                .on_response(
                    tower_http::trace::DefaultOnResponse::new().level(tracing::Level::INFO),
                ),
        )
        .layer(PropagateRequestIdLayer::x_request_id())
        .layer(SetRequestIdLayer::x_request_id(MakeRequestUuid))
        .layer(CatchPanicLayer::new());
    (router, shared)
}

/// Responses go out at once: without TCP_NODELAY a response written in two parts (headers,
/// then body) can wait ~40 ms for the client's delayed ACK (measured: a 1 KB static file
/// took 42 ms p50 before, under 1 ms after).
fn set_nodelay(stream: &mut tokio::net::TcpStream) {
    if let Err(e) = stream.set_nodelay(true) {
        tracing::trace!(error = %e, "could not set TCP_NODELAY");
    }
}

/// Serves without a shutdown signal (tests, benchmarks).
pub async fn serve_until_dropped(
    listener: tokio::net::TcpListener,
    router: Router,
) -> std::io::Result<()> {
    axum::serve(
        listener.tap_io(set_nodelay),
        router.into_make_service_with_connect_info::<SocketAddr>(),
    )
    .await
}

/// Serves until `shutdown` resolves, then lets in-flight requests finish for at most `grace`.
pub async fn serve(
    listener: tokio::net::TcpListener,
    router: Router,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
    grace: Duration,
) {
    let (tx, mut rx) = tokio::sync::watch::channel(false);
    let server = tokio::spawn(async move {
        axum::serve(
            listener.tap_io(set_nodelay),
            router.into_make_service_with_connect_info::<SocketAddr>(),
        )
        .with_graceful_shutdown(async move {
            let _ = rx.changed().await;
        })
        .await
    });
    shutdown.await;
    tracing::info!("shutting down: no new connections; finishing in-flight requests");
    let _ = tx.send(true);
    match tokio::time::timeout(grace, server).await {
        Ok(Ok(Ok(()))) => tracing::info!("all requests finished"),
        Ok(Ok(Err(e))) => tracing::error!(error = %e, "server error during shutdown"),
        Ok(Err(e)) => tracing::error!(error = %e, "server task failed"),
        Err(_) => tracing::warn!(
            grace_secs = grace.as_secs(),
            "in-flight requests did not finish in time; closing them"
        ),
    }
}

/// Resolves on SIGTERM or Ctrl-C (SIGINT). The handlers are installed when this is
/// *called*, not when the future is first polled: a SIGTERM that arrives while the server
/// is already answering but before the signal future ran would otherwise kill the process
/// with the default action (no graceful shutdown, and the private PostgreSQL left running).
pub fn shutdown_signal() -> impl std::future::Future<Output = ()> + Send + 'static {
    use tokio::signal::unix::{SignalKind, signal};
    let mut term = signal(SignalKind::terminate()).ok();
    let mut int = signal(SignalKind::interrupt()).ok();
    async move {
        let term = async {
            match term.as_mut() {
                Some(s) => {
                    s.recv().await;
                }
                None => std::future::pending::<()>().await,
            }
        };
        let int = async {
            match int.as_mut() {
                Some(s) => {
                    s.recv().await;
                }
                None => std::future::pending::<()>().await,
            }
        };
        tokio::select! {
            _ = term => {},
            _ = int => {},
        }
    }
}
