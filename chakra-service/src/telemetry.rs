//! Names of the metrics Chakra emits, shared by the layers that record them, the pool
//! that publishes its gauges, and the dashboards that query them.

/// Histogram of statement duration in seconds, labelled `operation`, `table`, `outcome`.
pub const QUERY_DURATION: &str = "chakra_query_duration_seconds";
/// Counter of statements run, labelled `operation`, `table`.
pub const QUERIES: &str = "chakra_queries_total";
/// Counter of statements that failed, labelled `operation`, `table`, `kind`.
pub const QUERY_ERRORS: &str = "chakra_query_errors_total";
/// Counter of retried statements, labelled `operation`, `table`.
pub const QUERY_RETRIES: &str = "chakra_query_retries_total";
/// Counter of point lookups merged by the batch layer, and of the queries they became.
pub const BATCHED_LOOKUPS: &str = "chakra_batched_lookups_total";
pub const BATCH_QUERIES: &str = "chakra_batch_queries_total";
/// Gauge of pool connections, labelled `state` = `in_use` | `idle`.
pub const POOL_CONNECTIONS: &str = "chakra_pool_connections";
/// Gauge of requests waiting for a pool connection.
pub const POOL_WAITING: &str = "chakra_pool_waiting";
