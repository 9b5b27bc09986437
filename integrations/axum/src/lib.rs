//! Axum integration: state, extractors and error responses. Arrives with the Rust models
//! issue; `chakra::Pool` is already `Clone + Send + Sync` and works as `State<Pool>`.
