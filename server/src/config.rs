//! Configuration: command-line flags, each backed by an environment variable with a
//! documented default (`lookout --help` lists them). Invalid values stop the process at
//! start with a message that names the variable.

use clap::{Args, Parser, Subcommand, ValueEnum};
use domain::Role;
use std::net::SocketAddr;
use std::path::PathBuf;

#[derive(Debug, Parser)]
#[command(
    name = "lookout",
    version,
    about = "Lookout — a browser-based SRE console (incidents, deployment sign-off, LLM costs)",
    long_about = None,
    after_help = "Without a subcommand, `lookout` serves (same as `lookout serve`)."
)]
pub struct Cli {
    #[command(flatten)]
    pub config: Config,
    #[command(subcommand)]
    pub command: Option<Command>,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Serve the console, the API and the operations endpoints (the default).
    Serve,
    /// Apply pending database migrations and exit.
    Migrate,
    /// Create a user. The password is read from LOOKOUT_NEW_USER_PASSWORD or from stdin.
    CreateUser {
        #[arg(long)]
        username: String,
        #[arg(long, value_parser = parse_role)]
        role: Role,
        #[arg(long, default_value = "")]
        display_name: String,
    },
    /// Create an API token and print it once.
    CreateToken {
        #[arg(long)]
        name: String,
        #[arg(long, value_parser = parse_role)]
        role: Role,
    },
}

fn parse_secret_key(s: &str) -> Result<domain::secrets::SecretBox, String> {
    domain::secrets::SecretBox::from_config(s)
}

fn parse_mapping(s: &str) -> Result<domain::alertmanager::SeverityMapping, String> {
    domain::alertmanager::SeverityMapping::parse(s)
}

fn parse_week_offset(s: &str) -> Result<time::UtcOffset, String> {
    domain::services::llm::parse_offset(s)
}

fn parse_approvals(s: &str) -> Result<domain::deployments::ApprovalPolicy, String> {
    domain::deployments::ApprovalPolicy::parse(s)
}

fn parse_trusted_proxies(s: &str) -> Result<crate::client_addr::TrustedProxies, String> {
    s.parse()
}

/// A list of networks (a newtype so clap takes the whole list as one value).
#[derive(Debug, Clone)]
pub struct Networks(pub Vec<domain::reach::Network>);

fn parse_networks(s: &str) -> Result<Networks, String> {
    domain::reach::parse_networks(s).map(Networks)
}

fn parse_role(s: &str) -> Result<Role, String> {
    s.parse()
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum LogFormat {
    Text,
    Json,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum CookieSecure {
    /// Secure when LOOKOUT_PUBLIC_URL starts with https://
    Auto,
    Always,
    Never,
}

#[derive(Debug, Clone, Args)]
pub struct Config {
    /// PostgreSQL connection URL. When unset, Lookout runs a private PostgreSQL under
    /// LOOKOUT_DATA_DIR (initdb + pg_ctl from the system's PostgreSQL packages).
    #[arg(long, env = "DATABASE_URL", global = true, hide_env_values = true)]
    pub database_url: Option<String>,

    /// Directory for the private PostgreSQL used when DATABASE_URL is unset.
    #[arg(long, env = "LOOKOUT_DATA_DIR", default_value = ".data", global = true)]
    pub data_dir: PathBuf,

    /// Directory holding initdb/pg_ctl/postgres; found under /usr/lib/postgresql when unset.
    #[arg(long, env = "LOOKOUT_PG_BINDIR", global = true)]
    pub pg_bindir: Option<PathBuf>,

    /// Maximum connections in the database pool.
    #[arg(long, env = "LOOKOUT_DB_MAX_CONNECTIONS", default_value_t = 10, value_parser = clap::value_parser!(u32).range(1..=500), global = true)]
    pub db_max_connections: u32,

    /// Address to listen on.
    #[arg(
        long,
        env = "LEPTOS_SITE_ADDR",
        default_value = "127.0.0.1:3000",
        global = true
    )]
    pub site_addr: SocketAddr,

    /// Directory with the built site (wasm, JS, CSS, public assets).
    #[arg(
        long,
        env = "LEPTOS_SITE_ROOT",
        default_value = "target/site",
        global = true
    )]
    pub site_root: String,

    /// Name of the wasm/JS/CSS bundle inside the site's pkg directory.
    #[arg(
        long,
        env = "LEPTOS_OUTPUT_NAME",
        default_value = "lookout",
        global = true
    )]
    pub output_name: String,

    /// The site's pkg directory, relative to the site root.
    #[arg(
        long,
        env = "LEPTOS_SITE_PKG_DIR",
        default_value = "pkg",
        global = true
    )]
    pub site_pkg_dir: String,

    /// The public origin browsers use (e.g. https://lookout.example.com). State-changing
    /// browser requests must carry this Origin. When unset, the request's Host is used.
    #[arg(long, env = "LOOKOUT_PUBLIC_URL", global = true)]
    pub public_url: Option<url::Url>,

    /// Whether session cookies carry the Secure attribute.
    #[arg(long, env = "LOOKOUT_COOKIE_SECURE", value_enum, default_value_t = CookieSecure::Auto, global = true)]
    pub cookie_secure: CookieSecure,

    /// Sessions end after this many hours without activity.
    #[arg(long, env = "LOOKOUT_SESSION_TTL_HOURS", default_value_t = 12, value_parser = clap::value_parser!(u32).range(1..=720), global = true)]
    pub session_ttl_hours: u32,

    /// Password for the first admin (user `admin`), used only when the database has no users.
    /// When unset on first start, a password is generated and printed once.
    #[arg(
        long,
        env = "LOOKOUT_ADMIN_PASSWORD",
        hide_env_values = true,
        global = true
    )]
    pub admin_password: Option<String>,

    /// Failed sign-ins allowed per account within the window.
    #[arg(long, env = "LOOKOUT_LOGIN_MAX_FAILURES_PER_USER", default_value_t = 5, value_parser = clap::value_parser!(i64).range(1..=1000), global = true)]
    pub login_max_failures_per_user: i64,

    /// Failed sign-ins allowed per client address within the window.
    #[arg(long, env = "LOOKOUT_LOGIN_MAX_FAILURES_PER_IP", default_value_t = 20, value_parser = clap::value_parser!(i64).range(1..=10000), global = true)]
    pub login_max_failures_per_ip: i64,

    /// The sign-in throttling window, in seconds.
    #[arg(long, env = "LOOKOUT_LOGIN_WINDOW_SECS", default_value_t = 900, value_parser = clap::value_parser!(i64).range(10..=86400), global = true)]
    pub login_window_secs: i64,

    /// Proxies in front of Lookout whose `X-Forwarded-For` hops are believed: a count of
    /// hops (e.g. `1` behind one load balancer) or a list of networks (`10.0.0.0/8,fd00::/8`).
    /// Unset: the header is ignored and the socket address is the client.
    #[arg(long, env = "LOOKOUT_TRUSTED_PROXIES", value_parser = parse_trusted_proxies, global = true)]
    pub trusted_proxies: Option<crate::client_addr::TrustedProxies>,

    /// Deprecated: the same as LOOKOUT_TRUSTED_PROXIES=1 (one proxy in front) when that is unset.
    #[arg(
        long,
        env = "LOOKOUT_TRUST_FORWARDED_FOR",
        default_value_t = false,
        global = true
    )]
    pub trust_forwarded_for: bool,

    /// Largest accepted request body, in bytes (larger → 413).
    #[arg(long, env = "LOOKOUT_MAX_BODY_BYTES", default_value_t = 1_048_576, value_parser = clap::value_parser!(u64).range(1024..=1_073_741_824), global = true)]
    pub max_body_bytes: u64,

    /// Seconds a request may take before it is answered 503 and its work abandoned (an
    /// open transaction is rolled back, so nothing is half-written): what a client sees when
    /// the database stops answering mid-request. Event streams are exempt.
    #[arg(long, env = "LOOKOUT_REQUEST_TIMEOUT_SECS", default_value_t = 30, value_parser = clap::value_parser!(u64).range(1..=3600), global = true)]
    pub request_timeout_secs: u64,

    /// Seconds to let in-flight requests finish after SIGTERM/Ctrl-C.
    #[arg(
        long,
        env = "LOOKOUT_SHUTDOWN_GRACE_SECS",
        default_value_t = 20,
        global = true
    )]
    pub shutdown_grace_secs: u64,

    /// Log format: human-readable text or one JSON object per line.
    #[arg(long, env = "LOOKOUT_LOG_FORMAT", value_enum, default_value_t = LogFormat::Text, global = true)]
    pub log_format: LogFormat,

    /// Log filter (tracing EnvFilter syntax).
    #[arg(
        long,
        env = "LOOKOUT_LOG",
        default_value = "info,sqlx=warn,tower_sessions=warn",
        global = true
    )]
    pub log_filter: String,

    /// Key that encrypts target credentials at rest: 64 hex characters or base64 of 32 bytes
    /// (e.g. `openssl rand -hex 32`). Required once any target holds a secret.
    #[arg(long, env = "LOOKOUT_SECRET_KEY", hide_env_values = true, value_parser = parse_secret_key, global = true)]
    pub secret_key: Option<domain::secrets::SecretBox>,

    /// Networks target hosts may resolve into (e.g. `10.20.0.0/16,fd00::/8`); checked at every
    /// connection. Unset: any address.
    #[arg(long, env = "LOOKOUT_TARGET_NETWORKS", value_parser = parse_networks, global = true)]
    pub target_networks: Option<Networks>,

    /// The only directory from which target connection options may read files (Kafka
    /// `ssl.ca.location`, PostgreSQL `sslrootcert`/`sslcert`/`sslkey`). Unset: such options are refused.
    #[arg(long, env = "LOOKOUT_TARGET_FILES_DIR", global = true)]
    pub target_files_dir: Option<PathBuf>,

    /// How Alertmanager alerts map to incident severities: `label:value=SEVn,…,*=SEVn`.
    #[arg(long, env = "LOOKOUT_ALERT_SEVERITY_MAPPING", default_value = "severity:critical=SEV2,warning=SEV3,*=SEV4", value_parser = parse_mapping, global = true)]
    pub alert_severity_mapping: domain::alertmanager::SeverityMapping,

    /// Approvals a deployment needs, per environment: `environment=count,…,*=count`.
    #[arg(long, env = "LOOKOUT_APPROVALS", default_value = "production=2,staging=1,*=0", value_parser = parse_approvals, global = true)]
    pub approvals: domain::deployments::ApprovalPolicy,

    /// Probe runs allowed at once against one target (across all replicas); more → 429.
    #[arg(long, env = "LOOKOUT_PROBE_RUNS_PER_TARGET", default_value_t = 2, value_parser = clap::value_parser!(i64).range(1..=50), global = true)]
    pub probe_runs_per_target: i64,

    /// Milliseconds between two looks for due measurements of automated deployment items
    /// (metric items); 0 turns the evaluation loop off.
    #[arg(long, env = "LOOKOUT_DEPLOYMENT_CHECK_TICK_MS", default_value_t = 1000, value_parser = clap::value_parser!(u64).range(0..=60_000), global = true)]
    pub deployment_check_tick_ms: u64,

    /// Measurements of deployment items waiting on one Prometheus at once (a hanging one
    /// holds no more than this many).
    #[arg(long, env = "LOOKOUT_DEPLOYMENT_CHECKS_PER_TARGET", default_value_t = 16, value_parser = clap::value_parser!(u64).range(1..=256), global = true)]
    pub deployment_checks_per_target: u64,

    /// Seconds between two samples of every Kafka target's consumer groups (0 turns the sampler off).
    #[arg(long, env = "LOOKOUT_KAFKA_SAMPLE_SECS", default_value_t = 30, value_parser = clap::value_parser!(u64).range(0..=3600), global = true)]
    pub kafka_sample_secs: u64,

    /// Kafka targets sampled at once (each round of a slow cluster waits only for itself).
    #[arg(long, env = "LOOKOUT_KAFKA_SAMPLE_CONCURRENCY", default_value_t = 4, value_parser = clap::value_parser!(u64).range(1..=64), global = true)]
    pub kafka_sample_concurrency: u64,

    /// Seconds a consumer group may stay in WARN or ERR before it opens an incident (or adds a
    /// finding to its open one); 0 turns lag alerts off. Target labels override it.
    #[arg(long, env = "LOOKOUT_KAFKA_ALERT_AFTER_SECS", default_value_t = 600, value_parser = clap::value_parser!(u64).range(0..=604_800), global = true)]
    pub kafka_alert_after_secs: u64,

    /// Hours of raw Kafka lag samples kept.
    #[arg(long, env = "LOOKOUT_KAFKA_RETENTION_HOURS", default_value_t = 48, value_parser = clap::value_parser!(i64).range(1..=8760), global = true)]
    pub kafka_retention_hours: i64,

    /// Days of 1-minute Kafka lag rollups kept.
    #[arg(long, env = "LOOKOUT_KAFKA_RETENTION_1M_DAYS", default_value_t = 14, value_parser = clap::value_parser!(i64).range(1..=3650), global = true)]
    pub kafka_retention_1m_days: i64,

    /// Days of 10-minute Kafka lag rollups kept.
    #[arg(long, env = "LOOKOUT_KAFKA_RETENTION_10M_DAYS", default_value_t = 60, value_parser = clap::value_parser!(i64).range(1..=3650), global = true)]
    pub kafka_retention_10m_days: i64,

    /// Days of 1-hour Kafka lag rollups kept.
    #[arg(long, env = "LOOKOUT_KAFKA_RETENTION_1H_DAYS", default_value_t = 400, value_parser = clap::value_parser!(i64).range(1..=3650), global = true)]
    pub kafka_retention_1h_days: i64,

    /// Span or resource attributes naming an LLM call's feature, first found wins (comma-separated).
    #[arg(
        long,
        env = "LOOKOUT_LLM_FEATURE_KEYS",
        default_value = "app.feature,feature",
        global = true
    )]
    pub llm_feature_keys: String,

    /// Span or resource attributes naming an LLM call's tenant, first found wins.
    #[arg(
        long,
        env = "LOOKOUT_LLM_TENANT_KEYS",
        default_value = "tenant.id,app.tenant",
        global = true
    )]
    pub llm_tenant_keys: String,

    /// Providers whose GenAI spans carry the provider's own token counting rather than the
    /// OpenTelemetry convention's (e.g. `anthropic` when its `input_tokens` arrive without the
    /// cache tokens); docs/llm-costs.md.
    #[arg(
        long,
        env = "LOOKOUT_LLM_PROVIDER_COUNTING",
        default_value = "",
        global = true
    )]
    pub llm_provider_counting: String,

    /// The zone the weekly LLM cost review's weeks start in: `UTC` or a whole-hour offset
    /// (`+02:00`, `-05:00`).
    #[arg(long, env = "LOOKOUT_LLM_WEEK_OFFSET", default_value = "UTC", value_parser = parse_week_offset, global = true)]
    pub llm_week_offset: time::UtcOffset,

    /// Days of LLM usage records kept (older daily partitions are dropped; older spans refused).
    #[arg(long, env = "LOOKOUT_LLM_RETENTION_DAYS", default_value_t = 400, value_parser = clap::value_parser!(u32).range(14..=3650), global = true)]
    pub llm_retention_days: u32,

    /// Where OTLP/gRPC trace ingest listens (e.g. `0.0.0.0:4317`); off when unset. OTLP/HTTP
    /// is always served at `/v1/traces` on the main address.
    #[arg(long, env = "LOOKOUT_OTLP_GRPC_ADDR", global = true)]
    pub otlp_grpc_addr: Option<std::net::SocketAddr>,

    /// OTLP/HTTP endpoint for Lookout's own traces (service.name `lookout`); off when unset.
    #[arg(long, env = "OTEL_EXPORTER_OTLP_ENDPOINT", global = true)]
    pub otlp_endpoint: Option<String>,
}

impl Config {
    pub fn cookie_secure(&self) -> bool {
        match self.cookie_secure {
            CookieSecure::Always => true,
            CookieSecure::Never => false,
            CookieSecure::Auto => self
                .public_url
                .as_ref()
                .is_some_and(|u| u.scheme() == "https"),
        }
    }

    /// The origin (`scheme://host[:port]`) expected on state-changing browser requests.
    pub fn public_origin(&self) -> Option<String> {
        self.public_url
            .as_ref()
            .map(|u| u.origin().ascii_serialization())
    }

    /// What connecting to targets needs: the secrets' key and the reach limits.
    pub fn access(&self) -> domain::reach::Access {
        domain::reach::Access {
            key: self.secret_key.clone(),
            reach: domain::reach::Reach {
                networks: self
                    .target_networks
                    .as_ref()
                    .map(|n| n.0.clone())
                    .unwrap_or_default(),
                files_dir: self.target_files_dir.clone(),
            },
        }
    }

    /// Whose forwarded hops to believe (the deprecated boolean means one proxy).
    pub fn trusted(&self) -> crate::client_addr::TrustedProxies {
        match (&self.trusted_proxies, self.trust_forwarded_for) {
            (Some(t), _) => t.clone(),
            (None, true) => crate::client_addr::TrustedProxies::Hops(1),
            (None, false) => crate::client_addr::TrustedProxies::None,
        }
    }

    pub fn throttle(&self) -> domain::services::auth::ThrottlePolicy {
        domain::services::auth::ThrottlePolicy {
            max_per_user: self.login_max_failures_per_user,
            max_per_ip: self.login_max_failures_per_ip,
            window_secs: self.login_window_secs,
        }
    }

    /// A configuration with defaults, for tests.
    pub fn for_tests(database_url: &str) -> Self {
        let cli = Cli::parse_from(["lookout", "--database-url", database_url]);
        cli.config
    }
}
