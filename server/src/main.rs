//! `lookout`: parses the command line and runs a subcommand (serve by default).

use clap::{CommandFactory, FromArgMatches};
use domain::services::{accounts, auth};
use domain::{AuthMethod, Principal, RequestMeta, Role};
use server::config::{Cli, Command, Config};
use server::embedded_pg::EmbeddedPostgres;
use std::io::{BufRead, IsTerminal};
use std::process::ExitCode;
use std::time::Duration;

/// Clap names the flag; operators set environment variables. Say both.
fn explain_clap_error(err: clap::Error) -> ! {
    use clap::error::{ContextKind, ContextValue, ErrorKind};
    if matches!(
        err.kind(),
        ErrorKind::InvalidValue | ErrorKind::ValueValidation
    ) && let Some(ContextValue::String(arg)) = err.get(ContextKind::InvalidArg)
    {
        let long = arg
            .trim_start_matches("--")
            .split([' ', '='])
            .next()
            .unwrap_or_default()
            .to_string();
        let cmd = Cli::command();
        if let Some(env) = cmd
            .get_arguments()
            .find(|a| a.get_long() == Some(long.as_str()))
            .and_then(|a| a.get_env())
        {
            eprintln!(
                "lookout: invalid configuration in {} (--{long}):",
                env.to_string_lossy()
            );
        }
    }
    err.exit()
}

fn main() -> ExitCode {
    let matches = Cli::command()
        .try_get_matches()
        .unwrap_or_else(|e| explain_clap_error(e));
    let cli = Cli::from_arg_matches(&matches).unwrap_or_else(|e| explain_clap_error(e));
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            eprintln!("lookout: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let result = runtime.block_on(run(cli));
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(msg) => {
            eprintln!("lookout: {msg}");
            ExitCode::FAILURE
        }
    }
}

/// The database for this process: DATABASE_URL, or the private cluster it starts.
async fn database(config: &Config) -> Result<(String, Option<EmbeddedPostgres>), String> {
    match config.database_url.clone().filter(|u| !u.is_empty()) {
        Some(url) => Ok((url, None)),
        None => {
            let dir = config.data_dir.clone();
            let bindir = config.pg_bindir.clone();
            let pg = tokio::task::spawn_blocking(move || {
                EmbeddedPostgres::start(&dir, bindir.as_deref())
            })
            .await
            .map_err(|e| format!("starting PostgreSQL: {e}"))??;
            tracing::info!(data_dir = %config.data_dir.display(), "using the private PostgreSQL (DATABASE_URL is unset)");
            Ok((pg.url.clone(), Some(pg)))
        }
    }
}

fn cli_principal() -> Principal {
    Principal {
        user_id: None,
        name: "cli".into(),
        role: Role::Admin,
        method: AuthMethod::Cli,
        token_id: None,
        deploy_services: None,
        ingest: false,
    }
}

async fn run(cli: Cli) -> Result<(), String> {
    let config = cli.config;
    let _telemetry = server::telemetry::init(&config)?;
    let (url, embedded) = database(&config).await?;
    let outcome = run_with_db(cli.command.unwrap_or(Command::Serve), &config, &url).await;
    if let Some(pg) = embedded {
        let _ = tokio::task::spawn_blocking(move || pg.stop()).await;
    }
    outcome
}

async fn run_with_db(command: Command, config: &Config, url: &str) -> Result<(), String> {
    let pool = server::connect(url, config.db_max_connections).await?;
    server::migrate(&pool).await?;
    if matches!(command, Command::Serve) {
        server::prepare(&pool, config).await?;
    }
    let result = match command {
        Command::Migrate => {
            println!(
                "migrations applied ({} known)",
                domain::storage::MIGRATOR.iter().count()
            );
            Ok(())
        }
        Command::CreateUser {
            username,
            role,
            display_name,
        } => {
            let password = match std::env::var("LOOKOUT_NEW_USER_PASSWORD") {
                Ok(p) => p,
                Err(_) => {
                    if std::io::stdin().is_terminal() {
                        eprint!("password for {username}: ");
                    }
                    let mut line = String::new();
                    std::io::stdin()
                        .lock()
                        .read_line(&mut line)
                        .map_err(|e| format!("reading the password from stdin: {e}"))?;
                    line.trim_end_matches(['\r', '\n']).to_string()
                }
            };
            let user = accounts::create_user(
                &pool,
                &cli_principal(),
                &RequestMeta::default(),
                accounts::NewUser {
                    username,
                    display_name,
                    role,
                    password,
                },
            )
            .await
            .map_err(|e| e.public_message())?;
            println!("created user {} with the {} role", user.username, user.role);
            Ok(())
        }
        Command::CreateToken { name, role } => {
            let t = accounts::create_token(
                &pool,
                &cli_principal(),
                &RequestMeta::default(),
                &name,
                role,
            )
            .await
            .map_err(|e| e.public_message())?;
            println!("{}", t.secret);
            eprintln!(
                "token {:?} ({}) created; this is the only time it is shown",
                t.token.name, t.token.role
            );
            Ok(())
        }
        Command::Serve => serve(pool.clone(), config.clone()).await,
    };
    pool.close().await;
    result
}

async fn serve(pool: sqlx::PgPool, config: Config) -> Result<(), String> {
    domain::services::targets::check_key_present(&pool, config.secret_key.as_ref()).await?;
    let installed = domain::services::deployments::install_built_in_templates(&pool)
        .await
        .map_err(|e| format!("built-in deployment templates: {e}"))?;
    if installed > 0 {
        tracing::info!(
            versions = installed,
            "installed built-in deployment templates"
        );
    }
    match auth::ensure_first_admin(&pool, config.admin_password.as_deref())
        .await
        .map_err(|e| e.public_message())?
    {
        auth::Bootstrap::AlreadyInitialised => {}
        auth::Bootstrap::CreatedWithGivenPassword => {
            tracing::info!("created the first admin user `admin` with LOOKOUT_ADMIN_PASSWORD");
        }
        auth::Bootstrap::CreatedWithGeneratedPassword(pw) => {
            // Printed once, to the terminal only; not to the log.
            println!(
                "\n  First start: created the admin user.\n    username: admin\n    password: {pw}\n  \
                 It is not shown again. Change it under Your account after signing in.\n"
            );
        }
    }

    // SIGTERM and Ctrl-C are caught from here on: before anything listens.
    let shutdown = server::shutdown_signal();
    let addr = config.site_addr;
    let listener = tokio::net::TcpListener::bind(addr)
        .await
        .map_err(|e| format!("LEPTOS_SITE_ADDR: cannot listen on {addr}: {e}"))?;
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let mut workers = vec![
        server::workers::spawn(pool.clone(), config.login_window_secs, stop_rx.clone()),
        server::workers::spawn_llm_partitions(
            pool.clone(),
            config.llm_retention_days,
            stop_rx.clone(),
        ),
        server::workers::spawn_llm_budgets(pool.clone(), stop_rx.clone()),
        server::workers::spawn_llm_rollups(pool.clone(), stop_rx.clone()),
    ];
    let mut sampler = server::workers::SamplerSettings::new(
        Duration::from_secs(config.kafka_sample_secs),
        domain::services::kafka_lag::Retention {
            raw_hours: config.kafka_retention_hours,
            minute_days: config.kafka_retention_1m_days,
            ten_minute_days: config.kafka_retention_10m_days,
            hour_days: config.kafka_retention_1h_days,
        },
        (config.kafka_alert_after_secs > 0)
            .then(|| Duration::from_secs(config.kafka_alert_after_secs)),
    );
    sampler.concurrency = config.kafka_sample_concurrency as usize;
    workers.extend(server::workers::spawn_kafka_sampler(
        pool.clone(),
        config.access(),
        sampler,
        stop_rx.clone(),
    ));
    workers.extend(server::workers::spawn_deployment_checks(
        pool.clone(),
        config.access(),
        // Its own runner (cancelling a run goes through the database flag as well).
        domain::services::probe_runs::Runner::new(config.probe_runs_per_target),
        server::workers::CheckSettings {
            tick: Duration::from_millis(config.deployment_check_tick_ms),
            per_target: config.deployment_checks_per_target as usize,
            ..Default::default()
        },
        stop_rx.clone(),
    ));
    let grace = Duration::from_secs(config.shutdown_grace_secs);
    let grpc_addr = config.otlp_grpc_addr;
    let (router, shared) = server::router_with_shared(pool, config);
    if let Some(a) = grpc_addr {
        let l = tokio::net::TcpListener::bind(a)
            .await
            .map_err(|e| format!("LOOKOUT_OTLP_GRPC_ADDR: cannot listen on {a}: {e}"))?;
        let mut stop = stop_rx.clone();
        tracing::info!("OTLP/gRPC trace ingest on {a}");
        workers.push(tokio::spawn(async move {
            let done = async move {
                let _ = stop.changed().await;
            };
            if let Err(e) = server::ingest::grpc::serve(l, shared, done).await {
                tracing::error!(error = %e, "OTLP/gRPC ingest stopped");
            }
        }));
    }
    tracing::info!("Lookout is serving on http://{addr}");
    server::serve(listener, router, shutdown, grace).await;
    // Workers finish what they are doing (each within its own limit) and release their leases.
    let _ = stop_tx.send(true);
    for w in workers {
        if tokio::time::timeout(grace, w).await.is_err() {
            tracing::warn!("a background worker did not stop in time");
        }
    }
    Ok(())
}
