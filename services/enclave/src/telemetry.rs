//! Logging set-up. `--log-format` (`ENCLAVE_LOG_FORMAT`): `auto` (the default) writes
//! human-readable text to a terminal and JSON lines otherwise (a service manager, a container,
//! a pipe); `text` and `json` force one. `ENCLAVE_LOG` holds the filter (`info`,
//! `warn,enclave_gateway=debug`, ...).
//!
//! A JSON line is one event: `timestamp`, `level`, `target`, the event's fields at the top level,
//! and `span` with the request's fields (`request_id`, `method`, `path`) for everything logged
//! while serving a request, so one request's lines are found by its `X-Request-Id`.

use std::io::IsTerminal as _;

use tracing_subscriber::EnvFilter;

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum, Default)]
pub enum LogFormat {
    #[default]
    Auto,
    Text,
    Json,
}

pub fn init(format: LogFormat) {
    let filter = EnvFilter::try_from_env("ENCLAVE_LOG").unwrap_or_else(|_| EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    let json = match format {
        LogFormat::Auto => !std::io::stderr().is_terminal(),
        LogFormat::Text => false,
        LogFormat::Json => true,
    };
    // A second init (tests calling the library twice) is harmless, so its error is ignored.
    let _ = if json {
        builder
            .json()
            .flatten_event(true)
            .with_current_span(true)
            .with_span_list(false)
            .try_init()
    } else {
        builder.try_init()
    };
}
