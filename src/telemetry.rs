//! Logging: human-readable text or JSON lines (`--log-format`, or `REMEDIATOR_LOG_FORMAT`) on
//! stderr; the level comes from `RUST_LOG` (default `info`, or `warn` for commands that print
//! their own progress, such as `demo`). A job's lines carry its operation id through the `job`
//! span.

use tracing_subscriber::EnvFilter;

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum LogFormat {
    Text,
    Json,
}

/// How much is logged when `RUST_LOG` does not say.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DefaultLevel {
    Info,
    /// For commands whose stdout is the interesting part: only warnings and errors.
    Quiet,
}

pub fn init(format: LogFormat, default: DefaultLevel) {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| match default {
        DefaultLevel::Info => EnvFilter::new("info,lapin=warn,tower_http=warn"),
        DefaultLevel::Quiet => EnvFilter::new("warn"),
    });
    let json = format == LogFormat::Json;
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    // A second init (tests, demo) is harmless, so its error is ignored.
    let _ = if json {
        builder
            .json()
            .with_current_span(true)
            .with_span_list(false)
            .try_init()
    } else {
        builder.try_init()
    };
}

/// For tests: the same filter, written through the test harness so output is captured and
/// shown only for failing tests.
pub fn init_for_tests() {
    let filter =
        EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info,lapin=warn"));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_test_writer()
        .try_init();
}
