//! Users can put their own `tower::Layer` in front of the built-in stack with
//! `PoolBuilder::layer`. The example here is a small read-through cache, written only
//! against the public API, as a user would write it.

use std::collections::HashMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};

use chakra::{Error, Mode, Pool, Queryable, Request, Response, Row, Value};
use chakra_tests::{builder, database_url, unique};
use tower::util::BoxCloneSyncService;
use tower::{Layer, Service, ServiceExt};

/// What `PoolBuilder::layer` wraps: the built-in stack, type-erased.
type Stack = BoxCloneSyncService<Request, Response, Error>;

/// Remembers the rows of plain `SELECT`s (`Mode::All`, outside any transaction), keyed by
/// SQL text and parameters, and answers repeats without going to the database.
///
/// It never expires anything: a real cache would bound its size and age.
#[derive(Clone, Default)]
pub struct CacheLayer {
    entries: Arc<Mutex<HashMap<String, Vec<Row>>>>,
}

impl<S> Layer<S> for CacheLayer {
    type Service = Cache<S>;

    fn layer(&self, inner: S) -> Cache<S> {
        Cache { inner, entries: self.entries.clone() }
    }
}

/// The service [`CacheLayer`] wraps around the stack.
#[derive(Clone)]
pub struct Cache<S> {
    inner: S,
    entries: Arc<Mutex<HashMap<String, Vec<Row>>>>,
}

impl<S> Cache<S> {
    /// The cache key of a request worth caching, or `None` for requests that must reach
    /// the database: writes, single-row and streaming modes, and anything in a transaction
    /// or session, which must see its own changes.
    fn key(request: &Request) -> Option<String> {
        let cacheable = request.mode == Mode::All && request.labels.operation == "SELECT" && !request.is_pinned();
        cacheable.then(|| format!("{}\u{0}{:?}", request.statement.sql, request.statement.params))
    }
}

impl<S> Service<Request> for Cache<S>
where
    S: Service<Request, Response = Response, Error = Error>,
    S::Future: Send + 'static,
{
    type Response = Response;
    type Error = Error;
    type Future = Pin<Box<dyn Future<Output = Result<Response, Error>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: Request) -> Self::Future {
        let key = Self::key(&request);
        if let Some(key) = &key {
            // A poisoned lock only means another request panicked mid-insert; the map is fine.
            let hit = self.entries.lock().unwrap_or_else(|e| e.into_inner()).get(key).cloned();
            if let Some(rows) = hit {
                return Box::pin(async move { Ok(Response::Rows(rows)) });
            }
        }
        let response = self.inner.call(request);
        let entries = self.entries.clone();
        Box::pin(async move {
            let response = response.await?;
            if let (Some(key), Response::Rows(rows)) = (key, &response) {
                entries.lock().unwrap_or_else(|e| e.into_inner()).insert(key, rows.clone());
            }
            Ok(response)
        })
    }
}

/// A pool with the cache in front and a counter of the requests that got past it.
async fn cached_pool() -> (Pool, Arc<AtomicUsize>) {
    let past_the_cache = Arc::new(AtomicUsize::new(0));
    let counter = past_the_cache.clone();
    let count = tower::layer::layer_fn(move |inner: Stack| {
        let counter = counter.clone();
        inner.map_request(move |request: Request| {
            counter.fetch_add(1, Ordering::SeqCst);
            request
        })
    });
    // Layers added later wrap the earlier ones: the cache sees requests first.
    let pool = builder(&database_url(), &unique("cache"))
        .layer(count)
        .layer(CacheLayer::default())
        .build()
        .await
        .expect("connect");
    (pool, past_the_cache)
}

fn first_i64(rows: &[Row]) -> i64 {
    rows.first().expect("one row").get(0)
}

#[tokio::test]
async fn a_repeated_select_is_answered_from_the_cache() {
    let (pool, past_the_cache) = cached_pool().await;
    let seq = unique("seq");
    pool.execute(&format!("CREATE SEQUENCE {seq}"), vec![]).await.expect("create sequence");
    let calls_before = past_the_cache.load(Ordering::SeqCst);

    let next = format!("SELECT nextval('{seq}')");
    let first = first_i64(&pool.query(&next, vec![]).await.expect("first nextval"));
    let second = first_i64(&pool.query(&next, vec![]).await.expect("second nextval"));
    assert_eq!(first, 1);
    assert_eq!(second, first, "the second nextval reached the database");
    assert_eq!(past_the_cache.load(Ordering::SeqCst) - calls_before, 1);

    // The sequence really advanced only once.
    let check = pool.query_one(&format!("SELECT last_value FROM {seq}"), vec![]).await.expect("last_value");
    assert_eq!(check.get::<_, i64>(0), 1);
    pool.execute(&format!("DROP SEQUENCE {seq}"), vec![]).await.expect("drop sequence");
}

#[tokio::test]
async fn different_params_writes_and_transactions_reach_the_database() {
    let (pool, past_the_cache) = cached_pool().await;
    let seq = unique("seq");
    pool.execute(&format!("CREATE SEQUENCE {seq}"), vec![]).await.expect("create sequence");
    let calls_before = past_the_cache.load(Ordering::SeqCst);

    let next_plus = format!("SELECT nextval('{seq}') + $1");
    let plus = |n: i64| pool.query(&next_plus, vec![Value::I64(n)]);
    assert_eq!(first_i64(&plus(0).await.expect("nextval + 0")), 1);
    assert_eq!(
        first_i64(&plus(100).await.expect("nextval + 100")),
        102,
        "a different parameter was answered from the cache"
    );
    assert_eq!(first_i64(&plus(0).await.expect("nextval + 0 again")), 1, "the same parameter reached the database");

    // Not cached: executing a statement, and reading inside a transaction.
    let next = format!("SELECT nextval('{seq}')");
    assert_eq!(pool.execute(&next, vec![]).await.expect("execute nextval"), 1);
    assert_eq!(pool.execute(&next, vec![]).await.expect("execute nextval again"), 1);
    let tx = pool.begin().await.expect("begin");
    assert_eq!(first_i64(&tx.query(&next_plus, vec![Value::I64(0)]).await.expect("nextval in a transaction")), 5);
    tx.commit().await.expect("commit");

    // begin + query + commit are three more requests through the stack.
    assert_eq!(past_the_cache.load(Ordering::SeqCst) - calls_before, 2 + 2 + 3);
    pool.execute(&format!("DROP SEQUENCE {seq}"), vec![]).await.expect("drop sequence");
}
