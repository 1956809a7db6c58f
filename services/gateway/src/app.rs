//! The app factory and the HTTP server with graceful shutdown.

use std::io;
use std::net::SocketAddr;
use std::time::Duration;

use actix_web::body::MessageBody;
use actix_web::dev::{ServerHandle, ServiceFactory, ServiceRequest, ServiceResponse};
use actix_web::middleware::from_fn;
use actix_web::{App, HttpServer, web};

use crate::error::{self, ApiError};
use crate::middleware;
use crate::negotiate::BodyLimit;
use crate::routes;
use crate::state::AppState;

/// Every route, extractor configuration and middleware of the API.
pub fn build_app(
    state: AppState,
) -> App<
    impl ServiceFactory<
        ServiceRequest,
        Config = (),
        Response = ServiceResponse<impl MessageBody>,
        Error = actix_web::Error,
        InitError = (),
    >,
> {
    let limit = state.settings().server.max_body_bytes;
    App::new()
        .app_data(web::Data::new(state))
        .app_data(BodyLimit(limit))
        .app_data(web::PathConfig::default().error_handler(error::path_error))
        .app_data(web::QueryConfig::default().error_handler(error::query_error))
        .app_data(
            web::JsonConfig::default()
                .limit(limit)
                .error_handler(error::json_error),
        )
        .app_data(web::PayloadConfig::default().limit(limit))
        .wrap(from_fn(middleware::request_context))
        .wrap(from_fn(crate::audit::record_calls))
        .configure(routes::configure)
        .default_service(web::to(|| async {
            Err::<actix_web::HttpResponse, _>(ApiError::from_status(
                actix_web::http::StatusCode::NOT_FOUND,
            ))
        }))
}

/// Starts servers; see [`RunningServer`].
pub struct Server;

/// A server accepting connections on `addr`.
pub struct RunningServer {
    pub addr: SocketAddr,
    pub handle: ServerHandle,
    state: AppState,
    task: tokio::task::JoinHandle<io::Result<()>>,
}

impl Server {
    /// Binds `state.settings().server.bind` (port 0 picks a free port) and starts serving on
    /// the current Tokio runtime. Signals are not handled here: see
    /// [`RunningServer::run_until_signal`].
    pub fn start(state: AppState) -> io::Result<RunningServer> {
        let server_settings = state.settings().server.clone();
        let factory_state = state.clone();
        let mut server = HttpServer::new(move || build_app(factory_state.clone()))
            .disable_signals()
            .shutdown_timeout(server_settings.shutdown_timeout_secs)
            // A client that closes its side has gone (HTTP clients do not half-close while
            // waiting for an answer): dropping its request at once cancels its generation, also
            // a non-streaming one that has not written a byte yet.
            .h1_allow_half_closed(false)
            .keep_alive(Duration::from_secs(server_settings.keep_alive_secs));
        if server_settings.workers > 0 {
            server = server.workers(server_settings.workers);
        }
        let server = server.bind(server_settings.bind)?;
        let addr = server
            .addrs()
            .first()
            .copied()
            .ok_or_else(|| io::Error::other("the server bound no address"))?;
        let server = server.run();
        let handle = server.handle();
        let task = tokio::spawn(server);
        tracing::info!(%addr, "listening");
        Ok(RunningServer {
            addr,
            handle,
            state,
            task,
        })
    }
}

impl RunningServer {
    /// Graceful stop: stop accepting, let in-flight requests and streams finish (up to
    /// `server.shutdown_timeout_secs`), then return.
    pub async fn shutdown(self) -> io::Result<()> {
        self.state.start_draining();
        tracing::info!("graceful shutdown: draining in-flight requests");
        self.handle.stop(true).await;
        self.task.await.map_err(io::Error::other)?
    }

    /// Waits for SIGINT or SIGTERM, then shuts down gracefully.
    pub async fn run_until_signal(self) -> io::Result<()> {
        wait_for_signal().await?;
        self.shutdown().await
    }

    pub fn state(&self) -> &AppState {
        &self.state
    }
}

#[cfg(unix)]
async fn wait_for_signal() -> io::Result<()> {
    use tokio::signal::unix::{SignalKind, signal};
    let mut term = signal(SignalKind::terminate())?;
    tokio::select! {
        r = tokio::signal::ctrl_c() => r,
        _ = term.recv() => Ok(()),
    }
}

#[cfg(not(unix))]
async fn wait_for_signal() -> io::Result<()> {
    tokio::signal::ctrl_c().await
}
