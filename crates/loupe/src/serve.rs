//! `loupe serve`: open the store, start HTTP and gRPC, shut down in order
//! (stop accepting, finish requests, flush the store, sync the WAL).

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use anyhow::Context;
use loupe_api::auth::{Auth, AuthConfig, KEYS_FILE};
use loupe_api::tls::{CertStore, TlsListener};
use loupe_api::{ApiConfig, AppState};
use loupe_backend::SpanReader;
use tokio::sync::watch;

use crate::ServeArgs;
use crate::config::Config;
use crate::open::{Mode, open_store};

/// Applies the layers: file, then env/flags (clap merges those two).
fn resolve(args: ServeArgs) -> anyhow::Result<Config> {
    let mut config = match &args.config {
        Some(path) => Config::load(path)?,
        None => Config::default(),
    };
    if let Some(dir) = args.data_dir {
        config.store.data_dir = dir;
    }
    if let Some(addr) = args.http_addr {
        config.server.http_addr = addr;
    }
    if let Some(addr) = args.grpc_addr {
        config.server.grpc_addr = addr;
    }
    if let Some(d) = args.durability {
        config.store.durability = d;
    }
    if let Some(url) = args.cold_url {
        config.store.cold.url = url;
    }
    if let Some(days) = args.hot_days {
        config.store.cold.hot_days = days;
    }
    if let Some(backend) = args.backend {
        config.store.backend = backend;
    }
    if let Some(url) = args.clickhouse_url {
        config.store.clickhouse.get_or_insert_default().url = url;
    }
    if let Some(password) = args.clickhouse_password {
        config.store.clickhouse.get_or_insert_default().password = password;
    }
    if !args.tail.is_empty() {
        config.logs.files = args.tail;
    }
    if let Some(mode) = args.auth_mode {
        config.auth.mode = mode;
    }
    if let (Some(cert_file), Some(key_file)) = (args.tls_cert, args.tls_key) {
        let (client_ca_file, client_auth) = match config.server.tls.take() {
            Some(t) => (t.client_ca_file, t.client_auth),
            None => (None, Default::default()),
        };
        config.server.tls = Some(crate::config::TlsSection {
            cert_file,
            key_file,
            client_ca_file,
            client_auth,
        });
    }
    config.validate()?;
    Ok(config)
}

pub fn run(args: ServeArgs) -> anyhow::Result<()> {
    let config = resolve(args)?;
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")?
        .block_on(serve(config))
}

async fn serve(mut config: Config) -> anyhow::Result<()> {
    let store = open_store(&mut config, Mode::Serve).await?;
    let background = store.spawn_background();
    let spans = crate::spans::Spans::open(&config, &store).await?;
    let pipeline = crate::open::pipeline_to(&config, &store, spans.writer())?;
    let auth = Auth::new(AuthConfig {
        mode: config.auth.mode,
        keys: config.auth.keys.clone(),
        keys_file: Some(store.config().data_dir.join(KEYS_FILE)),
        metrics_public: config.auth.metrics_public,
        allowed_hosts: config.auth.allowed_hosts.clone(),
    })
    .context("cannot load the API keys")?;
    let auth_enforced = auth.enforced();
    if !auth_enforced {
        for (addr, key) in [
            (config.server.http_addr, "server.http_addr"),
            (config.server.grpc_addr, "server.grpc_addr"),
        ] {
            if !addr.ip().is_loopback() {
                anyhow::bail!(
                    "no API key exists, and {key} = {addr} is not a loopback address: Loupe serves \
                     without keys only on 127.0.0.1/::1. Create a key first \
                     (`loupe keys create --project P --scope admin`, then one with --scope ingest for Dify), \
                     or listen on 127.0.0.1"
                );
            }
        }
        tracing::warn!(
            "no API key exists: serving openly on loopback (project from x-loupe-project, \
             default `default`); create keys with `loupe keys create` before exposing Loupe"
        );
    }
    let (stop_tx, stop_rx) = watch::channel(false);
    let dify =
        crate::cli_dify::spawn_sync(&config, pipeline.clone(), &store, stop_rx.clone()).await?;
    let (dify_task, dify_status) = dify.unzip();
    let tail_task = crate::tail::spawn(
        &config.logs,
        config.ingest.clone(),
        pipeline.clone(),
        stop_rx.clone(),
    )?;
    let health = crate::cli_dify::spawn_health(&config, &store, stop_rx.clone()).await?;
    let (health_task, dify_health) = health.unzip();
    let ingest_gate = loupe_api::admission::IngestGate::new(
        config.store.max_concurrent_appends,
        config.store.append_queue_timeout,
    );
    store.set_query_memory(config.query.total_memory_bytes);
    let reader: Arc<dyn SpanReader> = spans.reader();
    let relay = Arc::new(loupe_rollup::relay::Relay::new(
        config.ingest.max_metric_series,
    ));
    let budget_book = crate::budgets::BudgetBook::open(&config)?;
    let state = AppState {
        pipeline: pipeline.clone(),
        reader: reader.clone(),
        logs: Some(Arc::new(store.clone())),
        config: Arc::new(ApiConfig {
            max_body_bytes: config.server.max_body_bytes,
            max_decompressed_bytes: config.server.max_decompressed_bytes,
            query_timeout: config.query.timeout,
            query_memory_bytes: config.query.memory_bytes,
            query_max_rows: config.query.max_rows,
            query_max_answer_bytes: config.query.max_answer_bytes,
            query_max_function_bytes: config.query.max_function_bytes,
            ingest: config.ingest.clone(),
            tls: config.server.tls.is_some(),
        }),
        ready: Arc::new(AtomicBool::new(false)),
        auth: Arc::new(auth),
        metrics: Some({
            let (spans, gate, relay) = (spans.clone(), ingest_gate.clone(), relay.clone());
            let dify_status = dify_status.clone();
            let dify_health = dify_health.clone();
            let dify_project = config.dify.project.clone();
            Arc::new(move |format, project| {
                let own = crate::ops::own_metrics(&gate, dify_status.as_deref());
                let mut text = spans.render_metrics(format, project, own);
                relay.render_into(&mut text, format, project);
                // The database's health, for its sync's own project (and
                // the unscoped exposition).
                if let Some(h) = &dify_health
                    && project.is_none_or(|p| p == dify_project)
                {
                    h.render_metrics(
                        &mut text,
                        format == loupe_rollup::expose::Format::OpenMetrics,
                    );
                }
                text
            })
        }),
        alerts: {
            let engine = crate::cli_alerts::engine(&config, &spans)?;
            if let Some(engine) = &engine {
                let mut sources = vec![crate::ops::log_gauges(store.clone())];
                if let Some(health) = &dify_health {
                    sources.push(crate::ops::health_gauges(
                        health.clone(),
                        config.dify.project.clone(),
                    ));
                }
                engine.set_gauges(crate::ops::all_gauges(sources));
            }
            engine
        },
        ingest_gate,
        read_gate: loupe_api::admission::IngestGate::reads(
            config.query.max_concurrent,
            config.query.queue_timeout,
        ),
        dify_ids: Arc::new(loupe_ingest::otlp::IdCache::default()),
        relay: Some(relay),
        info: Some(Arc::new(crate::ops::ServerView::new(
            &config,
            store.clone(),
            dify_status,
            dify_health,
            budget_book.clone(),
        ))),
        cleanup: crate::cli_dify::ConsoleCleanups::new(
            &config,
            reader.clone(),
            {
                let store = store.clone();
                Arc::new(move || store.retention_by_project())
            },
            stop_rx.clone(),
        )
        .map(|c| Arc::new(c) as Arc<dyn loupe_api::CleanupControl>),
    };

    let http = tokio::net::TcpListener::bind(config.server.http_addr)
        .await
        .with_context(|| {
            format!(
                "cannot listen on {} (server.http_addr)",
                config.server.http_addr
            )
        })?;
    let grpc = tokio::net::TcpListener::bind(config.server.grpc_addr)
        .await
        .with_context(|| {
            format!(
                "cannot listen on {} (server.grpc_addr)",
                config.server.grpc_addr
            )
        })?;
    let alerts_task = (state.alerts.clone()).map(|e| tokio::spawn(e.run(stop_rx.clone())));
    // Always running: the console may add a budget at any time.
    let budgets_task = Some(tokio::spawn(
        crate::budgets::Budgets::new(&config, budget_book.clone(), state.reader.clone())?
            .run(stop_rx.clone()),
    ));
    let stopped = |mut rx: watch::Receiver<bool>| async move {
        let _ = rx.wait_for(|s| *s).await;
    };

    let router = loupe_api::router(state.clone());
    let server = &config.server;
    // Per-connection bounds of gRPC (issue 14): streams at once on one
    // connection, keepalive pings that close dead peers, a time limit per
    // call. Connections per listener are bounded by `ConnLimit` below.
    let grpc_server = tonic::transport::Server::builder()
        .max_concurrent_streams(server.grpc_max_concurrent_streams)
        .concurrency_limit_per_connection(server.grpc_max_concurrent_streams as usize)
        .http2_keepalive_interval(Some(server.grpc_keepalive_interval))
        .http2_keepalive_timeout(Some(server.grpc_keepalive_timeout))
        .tcp_keepalive(Some(server.grpc_keepalive_interval))
        .timeout(server.grpc_request_timeout)
        .add_service(loupe_api::grpc::trace_service(state.clone()))
        .add_service(loupe_api::grpc::metrics_service(state.clone()))
        .add_service(loupe_api::grpc::logs_service(state.clone()));
    let (http_limit, grpc_limit) = (
        loupe_api::conn::ConnLimit::new(server.max_connections),
        loupe_api::conn::ConnLimit::new(server.max_connections),
    );
    let (http_task, grpc_task, tls_task) = match &config.server.tls {
        None => (
            tokio::spawn(
                axum::serve(http_limit.listener(http), router)
                    .with_graceful_shutdown(stopped(stop_rx.clone()))
                    .into_future(),
            ),
            tokio::spawn(grpc_server.serve_with_incoming_shutdown(
                grpc_limit.incoming(Box::pin(tokio_stream_listener(grpc))),
                stopped(stop_rx.clone()),
            )),
            None,
        ),
        Some(tls) => {
            let certs = CertStore::load(&tls.cert_file, &tls.key_file)
                .context("cannot load [server.tls]")?;
            let client = tls.client_auth();
            let http = TlsListener::new(
                http,
                certs.server_config(&[b"h2", b"http/1.1"], client.as_ref())?,
            )?;
            let grpc = TlsListener::new(grpc, certs.server_config(&[b"h2"], client.as_ref())?)?;
            (
                tokio::spawn(
                    axum::serve(http_limit.listener(http), router)
                        .with_graceful_shutdown(stopped(stop_rx.clone()))
                        .into_future(),
                ),
                tokio::spawn(grpc_server.serve_with_incoming_shutdown(
                    grpc_limit.incoming(Box::pin(grpc.into_stream())),
                    stopped(stop_rx.clone()),
                )),
                Some(tokio::spawn(loupe_api::tls::watch(
                    vec![certs],
                    stop_rx.clone(),
                ))),
            )
        }
    };
    state.ready.store(true, Ordering::Release);
    tracing::info!(
        http = %config.server.http_addr,
        grpc = %config.server.grpc_addr,
        data_dir = %store.config().data_dir.display(),
        spans = spans.backend().as_str(),
        durability = ?store.config().durability,
        auth = if auth_enforced { "keys" } else { "open" },
        tls = config.server.tls.is_some(),
        "loupe is serving"
    );

    shutdown_signal().await;
    tracing::info!("shutting down: finishing requests, then flushing");
    state.ready.store(false, Ordering::Release);
    let _ = stop_tx.send(true);
    http_task.await?.context("http server failed")?;
    grpc_task.await?.context("grpc server failed")?;
    if let Some(task) = dify_task {
        let _ = task.await;
    }
    if let Some(task) = tail_task {
        let _ = task.await;
    }
    if let Some(task) = health_task {
        let _ = task.await;
    }
    if let Some(task) = alerts_task {
        let _ = task.await;
    }
    if let Some(task) = budgets_task {
        let _ = task.await;
    }
    if let Some(task) = tls_task {
        let _ = task.await;
    }
    background.abort();
    store.shutdown().await.context("flush on shutdown failed")?;
    tracing::info!("stopped cleanly");
    Ok(())
}

fn tokio_stream_listener(
    listener: tokio::net::TcpListener,
) -> impl futures_core_stream::Stream<Item = std::io::Result<tokio::net::TcpStream>> {
    futures_core_stream::unfold(listener, |listener| async move {
        let conn = listener.accept().await.map(|(stream, _)| stream);
        Some((conn, listener))
    })
}

mod futures_core_stream {
    pub use futures::stream::{Stream, unfold};
}

async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {},
        () = term => {},
    }
}
