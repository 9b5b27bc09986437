//! End-to-end tests of the core against a real PostgreSQL: one test binary, one module
//! per behaviour. Tests named `<module>::fault_*` restart or kill backends of the
//! throwaway cluster and run alone, after the rest (see scripts/test).

mod batch;
mod bulk_load;
mod custom_layer;
mod errors;
mod models;
mod pool;
mod related;
mod retry;
mod spec_examples;
mod streaming;
mod telemetry;
mod timeout;
mod tls;
mod transactions;
mod values;
