//! Prometheus export of the core's metrics (query latency, errors, retries, pool gauges)
//! for Python programs, which have no Rust `main` to install a recorder in.

use std::net::SocketAddr;

use metrics_exporter_prometheus::{Matcher, PrometheusBuilder};
use pyo3::prelude::*;

use crate::{errors, runtime};

/// Latency buckets (seconds) for `chakra_query_duration_seconds`: without buckets the
/// exporter publishes a summary, and the dashboards' `_bucket` quantiles have no data.
const BUCKETS: &[f64] = &[0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0];

/// Serves every Chakra metric at `http://{address}/metrics` (Prometheus text format) from
/// the process's Tokio runtime. Call once per process, before or after opening pools.
#[pyfunction]
#[pyo3(signature = (address = "127.0.0.1:9464"))]
pub(crate) fn serve_metrics(py: Python<'_>, address: &str) -> PyResult<()> {
    let addr: SocketAddr = address
        .parse()
        .map_err(|e| errors::new(py, "ConfigError", format!("metrics address `{address}` is not host:port ({e})")))?;
    let builder = PrometheusBuilder::new()
        .with_http_listener(addr)
        .set_buckets_for_metric(Matcher::Full(chakra::telemetry::QUERY_DURATION.into()), BUCKETS)
        .map_err(|e| errors::new(py, "ConfigError", e.to_string()))?;
    let handle = runtime::handle();
    let _entered = handle.enter();
    let (recorder, exporter) = builder
        .build()
        .map_err(|e| errors::new(py, "OperationalError", format!("cannot serve metrics on {addr}: {e}")))?;
    metrics::set_global_recorder(recorder)
        .map_err(|_| errors::new(py, "ProgrammingError", "a metrics recorder is already installed in this process"))?;
    handle.spawn(async move {
        let _ = exporter.await;
    });
    Ok(())
}
