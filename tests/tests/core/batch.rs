//! The batch layer: concurrent point lookups become a few `= ANY($1)` queries, and every
//! caller still gets exactly its own row.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use std::time::{Duration, Instant};

use chakra::acquire::AcquireLayer;
use chakra::batch::{BatchLayer, DEFAULT_MAX_BATCH};
use chakra::timeout::TimeoutLayer;
use chakra::{
    Config, ConnectionPool, ErrorKind, Labels, Mode, PointLookup, Queryable, Request, SharedStr, Statement, Value,
};
use chakra_service::Executor;
use futures::future::join_all;
use tower::{Service, ServiceBuilder, ServiceExt};

use chakra_tests::{admin, backends, builder, database_url, pool, unique};

struct Table {
    name: String,
    batch_sql: SharedStr,
}

/// A table of 100 rows, ids 1..=100, `name` = "user-{id}".
async fn table() -> Table {
    let name = unique("batch_users");
    let pool = pool().await;
    pool.execute(&format!("CREATE TABLE {name} (id int8 PRIMARY KEY, name text NOT NULL)"), vec![]).await.unwrap();
    pool.execute(&format!("INSERT INTO {name} SELECT g, 'user-' || g FROM generate_series(1, 100) g"), vec![])
        .await
        .unwrap();
    let batch_sql = format!("SELECT id, name FROM {name} WHERE id = ANY($1)").into();
    Table { name, batch_sql }
}

impl Table {
    fn lookup(&self, id: i64, mode: Mode) -> Request {
        Request::new(Statement::new(format!("SELECT id, name FROM {} WHERE id = $1", self.name), vec![id.into()]), mode)
            .labels(Labels::new("SELECT", Some(self.name.as_str().into())))
            .point_lookup(PointLookup { batch_sql: self.batch_sql.clone(), key_column: 0, key: Value::I64(id) })
    }

    async fn drop(self) {
        pool().await.execute(&format!("DROP TABLE {}", self.name), vec![]).await.unwrap();
    }
}

/// batch (at most `max_batch` lookups per statement) → (count statements) → acquire →
/// executor, on a real pool.
async fn counting_stack(
    statements: Arc<AtomicUsize>,
    max_batch: usize,
) -> impl Service<
    Request,
    Response = chakra::Response,
    Error = chakra::Error,
    Future = impl std::future::Future<Output = chakra::Result<chakra::Response>> + Send,
> + Clone
       + Send
       + 'static {
    let connections = ConnectionPool::open(Config::from_url(database_url())).await.unwrap();
    ServiceBuilder::new()
        .layer(BatchLayer::new(max_batch))
        .map_request(move |r: Request| {
            statements.fetch_add(1, Ordering::SeqCst);
            r
        })
        .layer(AcquireLayer::new(connections))
        .service(Executor)
}

fn check_own_row(id: i64, row: Option<chakra::Row>) {
    match (id <= 100, row) {
        (true, Some(row)) => {
            assert_eq!(row.get::<_, i64>("id"), id);
            assert_eq!(row.get::<_, String>("name"), format!("user-{id}"));
        }
        (false, None) => {}
        (expected, got) => panic!("lookup of {id}: expected a row: {expected}, got {got:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_lookups_from_many_tasks_share_few_statements() {
    let table = table().await;
    let statements = Arc::new(AtomicUsize::new(0));
    let stack = counting_stack(statements.clone(), DEFAULT_MAX_BATCH).await;

    // Ids 1..=120: the last 20 do not exist.
    let tasks: Vec<_> = (1..=120_i64)
        .map(|id| {
            let (stack, request) = (stack.clone(), table.lookup(id, Mode::Optional));
            tokio::spawn(async move { (id, stack.oneshot(request).await) })
        })
        .collect();
    for task in join_all(tasks).await {
        let (id, response) = task.unwrap();
        check_own_row(id, response.unwrap().into_optional().unwrap());
    }
    let n = statements.load(Ordering::SeqCst);
    assert!(n <= 12, "120 concurrent lookups took {n} statements");
    table.drop().await;
}

#[tokio::test]
async fn lookups_joined_in_one_task_become_two_statements() {
    let table = table().await;
    let statements = Arc::new(AtomicUsize::new(0));
    let stack = counting_stack(statements.clone(), DEFAULT_MAX_BATCH).await;

    // Duplicate keys too: both callers get the row.
    let ids: Vec<i64> = (1..=100).chain([5, 5, 150]).collect();
    let responses = join_all(ids.iter().map(|&id| stack.clone().oneshot(table.lookup(id, Mode::Optional)))).await;
    for (&id, response) in ids.iter().zip(responses) {
        check_own_row(id, response.unwrap().into_optional().unwrap());
    }
    // The first lookup goes at once (nothing to wait for); all the others share one.
    assert_eq!(statements.load(Ordering::SeqCst), 2);
    table.drop().await;
}

#[tokio::test]
async fn a_lone_lookup_runs_its_own_statement() {
    let table = table().await;
    let statements = Arc::new(AtomicUsize::new(0));
    let stack = counting_stack(statements.clone(), DEFAULT_MAX_BATCH).await;
    let row = stack.clone().oneshot(table.lookup(7, Mode::One)).await.unwrap().into_row().unwrap();
    check_own_row(7, Some(row));
    let err = stack.oneshot(table.lookup(1000, Mode::One)).await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::NotFound);
    assert_eq!(statements.load(Ordering::SeqCst), 2);
    table.drop().await;
}

#[tokio::test]
async fn batched_one_lookups_still_report_not_found_per_caller() {
    let table = table().await;
    let pool = pool().await;
    let results = join_all([3, 999, 4].map(|id| pool.run(table.lookup(id, Mode::One)))).await;
    assert_eq!(results[0].as_ref().unwrap().row_id(), 3);
    assert_eq!(results[1].as_ref().unwrap_err().kind(), ErrorKind::NotFound);
    assert_eq!(results[2].as_ref().unwrap().row_id(), 4);
    table.drop().await;
}

trait RowId {
    fn row_id(&self) -> i64;
}

impl RowId for chakra::Response {
    fn row_id(&self) -> i64 {
        match self {
            chakra::Response::Rows(rows) if rows.len() == 1 => rows[0].get("id"),
            other => panic!("expected one row, got {other:?}"),
        }
    }
}

/// Lookup 3 of `table`, in flight so that the next leads a group; lookup 1, that group's
/// leader, which yields on its first poll and then goes away before flushing; and lookup
/// 2, its member. Returns the first's future and the member's.
async fn orphaned_member<S>(stack: &mut S, table: &Table) -> (S::Future, S::Future)
where
    S: Service<Request, Response = chakra::Response, Error = chakra::Error>,
{
    stack.ready().await.unwrap();
    let first = stack.call(table.lookup(3, Mode::One));
    stack.ready().await.unwrap();
    let mut leader = Box::pin(stack.call(table.lookup(1, Mode::One)));
    stack.ready().await.unwrap();
    let member = stack.call(table.lookup(2, Mode::One));
    assert!(futures::poll!(&mut leader).is_pending());
    drop(leader);
    (first, member)
}

#[tokio::test]
async fn members_of_a_dropped_leader_run_their_own_statements() {
    let table = table().await;
    let statements = Arc::new(AtomicUsize::new(0));
    let mut stack = counting_stack(statements.clone(), DEFAULT_MAX_BATCH).await;

    let (first, member) = orphaned_member(&mut stack, &table).await;
    let row = tokio::time::timeout(std::time::Duration::from_secs(5), member)
        .await
        .expect("the member must not wait for a leader that is gone")
        .unwrap()
        .into_row()
        .unwrap();
    check_own_row(2, Some(row));
    check_own_row(3, Some(first.await.unwrap().into_row().unwrap()));
    table.drop().await;
}

/// Holds an exclusive lock on `table` until dropped (rolled back), so every lookup on it
/// waits on the server.
async fn lock(table: &Table) -> chakra::Transaction {
    let tx = pool().await.begin().await.unwrap();
    tx.execute(&format!("LOCK TABLE {} IN ACCESS EXCLUSIVE MODE", table.name), vec![]).await.unwrap();
    tx
}

#[tokio::test]
async fn lookups_merged_into_a_statement_that_times_out_all_time_out_with_it() {
    let table = table().await;
    let app = unique("batch_timeout");
    let limit = Duration::from_millis(300);
    let lookups = builder(&database_url(), &app).max_connections(4).query_timeout(limit).build().await.unwrap();
    let lock = lock(&table).await;

    let start = Instant::now();
    let results = join_all((1..=40).map(|id| lookups.run(table.lookup(id, Mode::One)))).await;
    let elapsed = start.elapsed();
    // The members waited on their leader's statement with no timer of their own: its
    // cancellation at the leader's deadline is each one's timeout, confirmed by the server.
    for result in results {
        let err = result.expect_err("the table is locked");
        assert_eq!(err.kind(), ErrorKind::Timeout, "{err}");
        assert!(err.to_string().contains("cancelled on the server"), "{err}");
    }
    assert!(elapsed >= limit && elapsed < Duration::from_secs(3), "took {elapsed:?}");
    let sessions = backends(&admin(&database_url()).await, &app).await;
    assert!(sessions.iter().all(|(_, state, _)| state == "idle"), "still busy after the timeout: {sessions:?}");

    lock.rollback().await.unwrap();
    check_own_row(7, Some(lookups.run(table.lookup(7, Mode::One)).await.unwrap().into_row().unwrap()));
    table.drop().await;
}

#[tokio::test]
async fn a_member_whose_leader_goes_away_keeps_its_own_deadline() {
    let table = table().await;
    let connections = ConnectionPool::open(Config::from_url(database_url())).await.unwrap();
    let mut stack = ServiceBuilder::new()
        .layer(TimeoutLayer::new(Some(Duration::from_millis(300))))
        .layer(BatchLayer::default())
        .layer(AcquireLayer::new(connections))
        .service(Executor);
    let lock = lock(&table).await;

    // The member joined covered by its leader's deadline.
    let (first, member) = orphaned_member(&mut stack, &table).await;
    // On its own again, the member runs its own statement, which waits on the lock: its
    // own deadline must end it, the leader's timer having gone with the leader.
    let start = Instant::now();
    let err = tokio::time::timeout(Duration::from_secs(5), member)
        .await
        .expect("the member must time out by its own deadline")
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Timeout, "{err}");
    assert!(start.elapsed() < Duration::from_secs(3), "took {:?}", start.elapsed());
    assert_eq!(first.await.unwrap_err().kind(), ErrorKind::Timeout);
    lock.rollback().await.unwrap();
    table.drop().await;
}

#[tokio::test]
async fn sequential_lookups_each_run_their_own_statement_unchanged() {
    let table = table().await;
    let statements = Arc::new(AtomicUsize::new(0));
    let stack = counting_stack(statements.clone(), DEFAULT_MAX_BATCH).await;
    for id in 1..=5 {
        let row = stack.clone().oneshot(table.lookup(id, Mode::One)).await.unwrap().into_row().unwrap();
        check_own_row(id, Some(row));
    }
    // Nothing else of their shape was in flight, so none waited to form a group.
    assert_eq!(statements.load(Ordering::SeqCst), 5);
    table.drop().await;
}

#[tokio::test]
async fn lookups_in_a_transaction_each_get_their_row() {
    let table = table().await;
    let pool = pool().await;
    let tx = pool.begin().await.unwrap();
    let rows = join_all((1..=10).map(|id| tx.run(table.lookup(id, Mode::One)))).await;
    for (id, r) in (1..=10).zip(rows) {
        check_own_row(id, Some(r.unwrap().into_row().unwrap()));
    }
    tx.commit().await.unwrap();
    table.drop().await;
}

/// Counts the wake-ups of the future polled with it.
#[derive(Default)]
struct Wakes(AtomicUsize);

impl futures::task::ArcWake for Wakes {
    fn wake_by_ref(wakes: &Arc<Self>) {
        wakes.0.fetch_add(1, Ordering::SeqCst);
    }
}

#[tokio::test]
async fn a_full_group_wakes_its_leader_at_once() {
    use std::future::Future;
    use std::pin::pin;
    use std::task::{Context, Poll};

    let table = table().await;
    let statements = Arc::new(AtomicUsize::new(0));
    let stack = counting_stack(statements.clone(), 3).await;
    let lookup = |id| stack.clone().oneshot(table.lookup(id, Mode::Optional));
    let (wakes, other) = (Arc::new(Wakes::default()), Arc::new(Wakes::default()));
    let (waker, other) = (futures::task::waker(wakes.clone()), futures::task::waker(other));
    let poll = |future: std::pin::Pin<&mut _>, waker| {
        let future: std::pin::Pin<&mut dyn Future<Output = chakra::Result<chakra::Response>>> = future;
        future.poll(&mut Context::from_waker(waker))
    };

    // All polled by hand, inside one poll of this test: the leader's own yield cannot
    // have woken it yet when the group fills.
    let (mut lone, mut leader) = (pin!(lookup(1)), pin!(lookup(2)));
    let (mut second, mut third) = (pin!(lookup(3)), pin!(lookup(4)));
    assert!(poll(lone.as_mut(), &other).is_pending(), "the lone lookup is on its way");
    assert!(poll(leader.as_mut(), &waker).is_pending(), "the leader waits for company");
    assert!(poll(second.as_mut(), &other).is_pending());
    assert_eq!(wakes.0.load(Ordering::SeqCst), 0, "woken before its group is full");
    assert!(poll(third.as_mut(), &other).is_pending(), "the third member fills the group of 3");
    assert_eq!(wakes.0.load(Ordering::SeqCst), 1, "a full group's leader is woken to send it at once");
    assert!(matches!(poll(leader.as_mut(), &waker), Poll::Pending), "the merged query is on its way");
    assert_eq!(statements.load(Ordering::SeqCst), 2, "the lone lookup, then the full group");

    for (id, future) in [(1, lone), (2, leader), (3, second), (4, third)] {
        check_own_row(id, future.await.unwrap().into_optional().unwrap());
    }
    table.drop().await;
}
