//! Prometheus metrics: one recorder per process, rendered at `/metrics` by the intake and by a
//! worker's metrics listener. Counters are recorded where things happen; gauges that describe
//! shared state (queue depth, oldest pending operation, unpublished outbox rows) are sampled
//! periodically by `sample_forever`.

use std::sync::OnceLock;
use std::time::{Duration, Instant};

use axum::extract::{MatchedPath, Request};
use axum::http::{Method, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use lapin::options::QueueDeclareOptions;
use lapin::types::FieldTable;
use metrics_exporter_prometheus::{PrometheusBuilder, PrometheusHandle};
use secrecy::SecretString;

use crate::db::{DbPool, operations, outbox};
use crate::queue::topology::Topology;
use crate::shutdown::Shutdown;

static HANDLE: OnceLock<Option<PrometheusHandle>> = OnceLock::new();

/// Installs the recorder on first use; later calls (tests, demo) share it.
pub fn handle() -> Option<&'static PrometheusHandle> {
    HANDLE
        .get_or_init(|| match PrometheusBuilder::new().install_recorder() {
            Ok(handle) => Some(handle),
            Err(error) => {
                tracing::warn!(%error, "metrics recorder not installed");
                None
            }
        })
        .as_ref()
}

/// `GET /metrics` in the Prometheus text format.
pub async fn render() -> Response {
    let body = handle().map(|h| h.render()).unwrap_or_default();
    (
        [(
            axum::http::header::CONTENT_TYPE,
            "text/plain; version=0.0.4",
        )],
        body,
    )
        .into_response()
}

/// Counts requests and their latency. Every label comes from a closed set, whatever the
/// client sends: the method if it is a standard one (else `other`), the matched route template
/// (else `unmatched`; never the raw path) and the status class. A label taken from the request
/// would let any client, without a token, create series that live as long as the process.
pub async fn track_http(request: Request, next: Next) -> Response {
    let route = request
        .extensions()
        .get::<MatchedPath>()
        .map_or_else(|| "unmatched".to_owned(), |p| p.as_str().to_owned());
    let method = method_label(request.method());
    let started = Instant::now();
    let response = next.run(request).await;
    let status = status_class(response.status());
    metrics::counter!("remediator_http_requests_total", "method" => method, "route" => route.clone(), "status" => status)
        .increment(1);
    metrics::histogram!("remediator_http_request_duration_seconds", "route" => route)
        .record(started.elapsed().as_secs_f64());
    response
}

/// The methods of RFC 9110 and PATCH by name; anything else, `other`.
pub fn method_label(method: &Method) -> &'static str {
    match *method {
        Method::GET => "GET",
        Method::HEAD => "HEAD",
        Method::POST => "POST",
        Method::PUT => "PUT",
        Method::DELETE => "DELETE",
        Method::PATCH => "PATCH",
        Method::OPTIONS => "OPTIONS",
        Method::CONNECT => "CONNECT",
        Method::TRACE => "TRACE",
        _ => "other",
    }
}

/// `2xx`, `4xx`, ...: five values.
pub fn status_class(status: StatusCode) -> &'static str {
    match status.as_u16() {
        100..=199 => "1xx",
        200..=299 => "2xx",
        300..=399 => "3xx",
        400..=499 => "4xx",
        _ => "5xx",
    }
}

/// A request refused by the per-organisation rate limit, by endpoint (`trigger`, `cancel`).
/// Counted instead of logged at warn: an organisation over its limit would otherwise write a
/// line per refused request.
pub fn rate_limited(endpoint: &'static str) {
    metrics::counter!("remediator_rate_limited_total", "endpoint" => endpoint).increment(1);
}

/// A webhook delivery, by forge and outcome (`refused`, `applied`, `unchanged`,
/// `unknown_pull_request`, `ignored`, `duplicate`): both label sets are closed.
pub fn webhook_delivery(forge: &'static str, outcome: &'static str) {
    metrics::counter!("remediator_webhook_deliveries_total", "forge" => forge, "outcome" => outcome)
        .increment(1);
}

/// A question the reconciler asked a forge, by what it learned (`open`, `conflicting`,
/// `merged`, `closed`, `failed`).
pub fn reconciler_request(outcome: &'static str) {
    metrics::counter!("remediator_reconciler_requests_total", "outcome" => outcome).increment(1);
}

/// A connection refused because the process already serves `intake.max_connections`.
pub fn connection_refused() {
    metrics::counter!("remediator_http_connections_refused_total").increment(1);
}

// The worker's metrics below take `&'static str` labels: values written in the code, never
// taken from a message, a repository or a model's answer, so their sets are closed too. The
// queue label of `remediator_queue_depth` is one of the two queue names from the config.

/// A job ended (or was skipped, retried, parked, dead-lettered).
pub fn job_outcome(outcome: &'static str) {
    metrics::counter!("remediator_jobs_total", "outcome" => outcome).increment(1);
}

pub fn step_duration(step: &'static str, elapsed: Duration) {
    metrics::histogram!("remediator_step_duration_seconds", "step" => step)
        .record(elapsed.as_secs_f64());
}

pub fn job_attempt(attempt: i32) {
    metrics::histogram!("remediator_job_attempts").record(f64::from(attempt));
}

pub fn dead_letter(reason: &'static str) {
    metrics::counter!("remediator_dead_letters_total", "reason" => reason).increment(1);
}

/// Samples the gauges every `every` until shutdown. A failed sample is logged and skipped.
pub async fn sample_forever(
    pool: DbPool,
    amqp_url: SecretString,
    topology: Topology,
    every: Duration,
    shutdown: Shutdown,
) {
    let mut broker: Option<(lapin::Connection, lapin::Channel)> = None;
    loop {
        if let Ok(mut conn) = pool.get().await {
            if let Ok(age) = operations::oldest_pending_age_secs(&mut conn).await {
                metrics::gauge!("remediator_oldest_pending_operation_seconds").set(age);
            }
            if let Ok(count) = outbox::unpublished_count(&mut conn).await {
                metrics::gauge!("remediator_outbox_unpublished").set(count as f64);
            }
            if let Ok(count) = outbox::quarantined_count(&mut conn).await {
                metrics::gauge!("remediator_outbox_quarantined").set(count as f64);
            }
        }
        if broker
            .as_ref()
            .is_none_or(|(_, ch)| !ch.status().connected())
        {
            broker = match crate::queue::connect(&amqp_url, "remediator-metrics").await {
                Ok(conn) => match conn.create_channel().await {
                    // Declaring is idempotent; it makes the passive look-ups below succeed even
                    // before the first relay or worker declared the queues.
                    Ok(channel) if topology.declare(&channel).await.is_ok() => {
                        Some((conn, channel))
                    }
                    _ => None,
                },
                Err(_) => None,
            };
        }
        if let Some((_, channel)) = &broker {
            for queue in [&topology.work_queue, &topology.dead_queue] {
                let passive = QueueDeclareOptions {
                    passive: true,
                    ..Default::default()
                };
                match channel
                    .queue_declare(queue.as_str().into(), passive, FieldTable::default())
                    .await
                {
                    Ok(declared) => {
                        metrics::gauge!("remediator_queue_depth", "queue" => queue.clone())
                            .set(f64::from(declared.message_count()))
                    }
                    // A missing queue closes the channel; the next round opens a new one.
                    Err(_) => break,
                }
            }
        }
        tokio::select! {
            _ = tokio::time::sleep(every) => {}
            _ = shutdown.triggered() => break,
        }
    }
    if let Some((conn, _)) = broker {
        let _ = conn.close(200, "metrics sampler stopping".into()).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn labels_come_from_closed_sets() {
        assert_eq!(method_label(&Method::GET), "GET");
        for odd in ["FOOBAR", "get", "XGET", &"M".repeat(1000)] {
            let method = Method::from_bytes(odd.as_bytes()).unwrap();
            assert_eq!(method_label(&method), "other", "{odd}");
        }
        let classes: std::collections::HashSet<_> = (100..=999)
            .map(|code| status_class(StatusCode::from_u16(code).unwrap()))
            .collect();
        assert_eq!(classes.len(), 5);
    }
}
