//! The pool: bounds, acquire deadlines, warm minimum, idle reaping, lifetimes, statement cache.

use std::future::{poll_fn, Future};
use std::pin::pin;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Wake, Waker};
use std::time::{Duration, Instant};

use chakra::{ErrorKind, Queryable};
use chakra_tests::{admin, backend_pid, backends, builder, database_url, eventually, unique};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn max_connections_is_never_exceeded_under_100_concurrent_requests() {
    let app = unique("pool_max");
    let pool = builder(&database_url(), &app).max_connections(5).build().await.unwrap();
    let admin = admin(&database_url()).await;

    let done = Arc::new(AtomicUsize::new(0));
    let requests: Vec<_> = (0..100)
        .map(|_| {
            let (pool, done) = (pool.clone(), done.clone());
            tokio::spawn(async move {
                pool.query("SELECT pg_sleep(0.02)", vec![]).await.unwrap();
                done.fetch_add(1, Ordering::Relaxed);
            })
        })
        .collect();
    let mut peak = 0;
    while done.load(Ordering::Relaxed) < 100 {
        peak = peak.max(backends(&admin, &app).await.len());
        assert!(pool.status().size <= 5, "pool opened {} connections", pool.status().size);
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    for r in requests {
        r.await.unwrap();
    }
    assert!(peak <= 5, "the server saw {peak} connections of a pool capped at 5");
    assert!(peak >= 2, "requests did not run concurrently (peak {peak})");
}

#[tokio::test]
async fn a_request_waiting_past_acquire_timeout_gets_pool_timeout() {
    let pool = builder(&database_url(), &unique("pool_wait"))
        .max_connections(1)
        .acquire_timeout(Duration::from_millis(200))
        .build()
        .await
        .unwrap();
    let held = pool.session().await.unwrap();
    held.query("SELECT 1", vec![]).await.unwrap();

    let start = Instant::now();
    let err = pool.query("SELECT 1", vec![]).await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::PoolTimeout, "{err}");
    assert!(err.to_string().contains("acquire_timeout"), "{err}");
    assert!(start.elapsed() >= Duration::from_millis(200));
    assert!(start.elapsed() < Duration::from_secs(5), "waited {:?}", start.elapsed());

    drop(held);
    pool.query("SELECT 1", vec![]).await.expect("the connection came back");
}

#[tokio::test]
async fn min_connections_are_open_when_the_pool_is_built() {
    let app = unique("pool_min");
    let pool = builder(&database_url(), &app).min_connections(3).max_connections(6).build().await.unwrap();
    assert_eq!(pool.status().size, 3);
    assert_eq!(pool.status().idle, 3);
    let admin = admin(&database_url()).await;
    assert_eq!(backends(&admin, &app).await.len(), 3);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idle_connections_above_the_minimum_are_closed_after_idle_timeout() {
    let app = unique("pool_idle");
    let pool = builder(&database_url(), &app)
        .min_connections(1)
        .max_connections(4)
        .idle_timeout(Duration::from_millis(300))
        .build()
        .await
        .unwrap();
    let busy: Vec<_> = (0..4).map(|_| pool.query("SELECT pg_sleep(0.1)", vec![])).collect();
    futures::future::try_join_all(busy).await.unwrap();
    assert_eq!(pool.status().size, 4);

    let admin = admin(&database_url()).await;
    eventually(Duration::from_secs(5), "idle connections are reaped down to min_connections", || async {
        (pool.status().size == 1 && backends(&admin, &app).await.len() == 1).then_some(())
    })
    .await;
    // And the minimum is kept, not reaped with the rest.
    tokio::time::sleep(Duration::from_millis(700)).await;
    assert_eq!(backends(&admin, &app).await.len(), 1);
}

/// The pids of `app`'s backends.
async fn pids(admin: &tokio_postgres::Client, app: &str) -> Vec<i32> {
    backends(admin, app).await.into_iter().map(|(pid, ..)| pid).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idle_connections_older_than_max_lifetime_are_replaced_in_the_background() {
    let app = unique("pool_lifetime");
    let pool = builder(&database_url(), &app)
        .min_connections(2)
        .max_connections(4)
        .max_lifetime(Duration::from_millis(400))
        .build()
        .await
        .unwrap();
    let admin = admin(&database_url()).await;
    let first = pids(&admin, &app).await;
    assert_eq!(first.len(), 2);
    eventually(Duration::from_secs(5), "both warm connections replaced by new ones", || async {
        let now = pids(&admin, &app).await;
        (now.len() == 2 && pool.status().size == 2 && now.iter().all(|pid| !first.contains(pid))).then_some(())
    })
    .await;
    pool.query("SELECT 1", vec![]).await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_connection_in_use_past_max_lifetime_is_kept_until_it_comes_back_then_replaced() {
    let app = unique("pool_lifetime_busy");
    let pool = builder(&database_url(), &app)
        .max_connections(1)
        .max_lifetime(Duration::from_millis(300))
        .build()
        .await
        .unwrap();
    let admin = admin(&database_url()).await;
    let session = pool.session().await.unwrap();
    session.execute("BEGIN", vec![]).await.unwrap();
    let old = backend_pid(&session).await;
    tokio::time::sleep(Duration::from_millis(600)).await;
    // Never cut while in use: the transaction goes on, on the same connection.
    assert_eq!(backend_pid(&session).await, old);
    session.execute("COMMIT", vec![]).await.unwrap();
    drop(session);

    let new = backend_pid(&pool).await;
    assert_ne!(new, old, "a connection past max_lifetime went out again");
    eventually(Duration::from_secs(5), "the old backend is gone", || async {
        (pids(&admin, &app).await == [new]).then_some(())
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn max_lifetime_zero_keeps_connections() {
    let app = unique("pool_lifetime_off");
    let pool = builder(&database_url(), &app)
        .min_connections(1)
        .max_connections(1)
        .idle_timeout(Duration::from_millis(200))
        .max_lifetime(Duration::ZERO)
        .build()
        .await
        .unwrap();
    let old = backend_pid(&pool).await;
    tokio::time::sleep(Duration::from_millis(700)).await;
    assert_eq!(backend_pid(&pool).await, old);
}

#[tokio::test]
async fn statements_are_prepared_once_per_connection_with_the_cache_on() {
    let pool = builder(&database_url(), &unique("cache_on")).build().await.unwrap();
    let session = pool.session().await.unwrap();
    for i in 0..3_i64 {
        let row = session.query_one("SELECT $1::int8 + 1", vec![i.into()]).await.unwrap();
        assert_eq!(row.get::<_, i64>(0), i + 1);
    }
    let prepared = session
        .query_one("SELECT count(*) FROM pg_prepared_statements WHERE statement = 'SELECT $1::int8 + 1'", vec![])
        .await
        .unwrap();
    assert_eq!(prepared.get::<_, i64>(0), 1);
}

#[tokio::test]
async fn with_the_cache_off_nothing_is_prepared_so_pgbouncer_transaction_mode_works() {
    let pool = builder(&database_url(), &unique("cache_off")).statement_cache(false).build().await.unwrap();
    let session = pool.session().await.unwrap();
    let table = unique("cache_off_t");
    session.execute(&format!("CREATE TEMP TABLE {table} (id int4, name text)"), vec![]).await.unwrap();
    // An i64 parameter against an int4 column, and NULL, as a dynamic front-end sends them.
    session
        .execute(
            &format!("INSERT INTO {table} VALUES ($1, $2), ($3, $4)"),
            vec![1_i64.into(), "a".into(), 2_i64.into(), chakra::Value::Null],
        )
        .await
        .unwrap();
    let rows = session.query(&format!("SELECT name FROM {table} WHERE id = $1"), vec![1_i64.into()]).await.unwrap();
    assert_eq!(rows[0].get::<_, String>(0), "a");
    let prepared = session.query_one("SELECT count(*) FROM pg_prepared_statements", vec![]).await.unwrap();
    assert_eq!(prepared.get::<_, i64>(0), 0, "named statements were prepared with the cache off");
}

#[tokio::test]
async fn a_session_keeps_one_connection_and_returns_it() {
    let pool = builder(&database_url(), &unique("session")).max_connections(2).build().await.unwrap();
    let session = pool.session().await.unwrap();
    let first = backend_pid(&session).await;
    for _ in 0..3 {
        assert_eq!(backend_pid(&session).await, first);
    }
    assert_eq!(pool.status().in_use, 1);
    drop(session);
    eventually(Duration::from_secs(2), "the session's connection is back in the pool", || async {
        (pool.status().in_use == 0).then_some(())
    })
    .await;
}

/// The task running a statement is the one that reads its connection's socket: a statement
/// whose server output must be read before its answer comes (here 100,000 notices, about
/// 10 MB, far more than the socket buffers hold) still completes, and leaves the connection
/// fit for reuse.
#[tokio::test]
async fn a_statement_flooding_notices_completes_and_its_connection_is_reused() {
    let app = unique("notices");
    let pool = builder(&database_url(), &app).max_connections(1).build().await.unwrap();
    let level: String = pool.query_one("SHOW client_min_messages", vec![]).await.unwrap().get(0);
    assert_eq!(level, "notice", "notices reach the client");
    let flood =
        "DO $$ BEGIN FOR i IN 1..100000 LOOP RAISE NOTICE 'notice number % of a long flood', i; END LOOP; END $$";
    tokio::time::timeout(Duration::from_secs(20), pool.execute(flood, vec![]))
        .await
        .expect("the statement finished")
        .unwrap();
    let row = pool.query_one("SELECT 41 + 1", vec![]).await.unwrap();
    assert_eq!(row.get::<_, i32>(0), 42);
    assert_eq!(pool.status().size, 1, "the same connection served both");
}

/// Runs `future`, counting the wakes its own polling causes: those that arrive on the
/// polling thread while it polls. A Tokio task woken while it runs is queued again and
/// another worker woken to take it: a futex wake, an `epoll_wait` and a poll for nothing.
/// (An answer arriving just then wakes the task from the other worker: that wake is due.)
async fn wakes_while_polled<F: Future>(future: F) -> (F::Output, usize) {
    #[derive(Default)]
    struct Watch {
        task: Mutex<Option<Waker>>,
        /// The thread polling the future, while it does.
        polling: Mutex<Option<std::thread::ThreadId>>,
        wakes: AtomicUsize,
    }
    impl Wake for Watch {
        fn wake(self: Arc<Self>) {
            self.wake_by_ref();
        }
        fn wake_by_ref(self: &Arc<Self>) {
            if *self.polling.lock().unwrap() == Some(std::thread::current().id()) {
                self.wakes.fetch_add(1, Ordering::SeqCst);
            }
            if let Some(task) = self.task.lock().unwrap().as_ref() {
                task.wake_by_ref();
            }
        }
    }
    let watch = Arc::new(Watch::default());
    let waker = Waker::from(watch.clone());
    let mut future = pin!(future);
    let output = poll_fn(|cx| {
        *watch.task.lock().unwrap() = Some(cx.waker().clone());
        *watch.polling.lock().unwrap() = Some(std::thread::current().id());
        let poll = future.as_mut().poll(&mut Context::from_waker(&waker));
        *watch.polling.lock().unwrap() = None;
        poll
    })
    .await;
    (output, watch.wakes.load(Ordering::SeqCst))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_statement_does_not_wake_its_own_task_while_it_is_polled() {
    let pool = builder(&database_url(), &unique("self_wake")).max_connections(1).build().await.unwrap();
    pool.query_one("SELECT $1::int", vec![0.into()]).await.unwrap();
    let ((), wakes) = wakes_while_polled(async {
        for i in 1..=50 {
            let row = pool.query_one("SELECT $1::int", vec![i.into()]).await.unwrap();
            assert_eq!(row.get::<_, i32>(0), i);
        }
    })
    .await;
    assert_eq!(wakes, 0, "50 statements woke their own task {wakes} times while it polled them");
    // Answers larger than the client's channel: the connection waits for room, which the
    // same poll makes by taking the rows in.
    let rows = pool.query("SELECT g FROM generate_series(1, 10000) AS g", vec![]).await.unwrap();
    assert_eq!(rows.iter().map(|row| row.get::<_, i32>(0)).sum::<i32>(), 50_005_000);
}

#[tokio::test]
async fn the_statement_cache_keeps_its_capacity_on_the_server() {
    // One connection keeping three statements: ten distinct statements leave three
    // prepared on the server (the counting query among them), not ten.
    let pool = builder(&database_url(), &unique("stmt_cache"))
        .max_connections(1)
        .statement_cache_capacity(3)
        .build()
        .await
        .unwrap();
    let before = backend_pid(&pool).await;
    for k in 0..10_i64 {
        let row = pool.query_one(&format!("SELECT $1::int8 + {k}"), vec![1_i64.into()]).await.unwrap();
        assert_eq!(row.get::<_, i64>(0), 1 + k);
    }
    let prepared = "SELECT count(*) FROM pg_prepared_statements WHERE from_sql = false";
    let count: i64 = pool.query_one(prepared, vec![]).await.unwrap().get(0);
    assert_eq!(count, 3, "the least recently used statements were not closed on the server");

    // An evicted statement is prepared again when it comes back, on the same connection.
    let row = pool.query_one("SELECT $1::int8 + 0", vec![5_i64.into()]).await.unwrap();
    assert_eq!(row.get::<_, i64>(0), 5);
    let count: i64 = pool.query_one(prepared, vec![]).await.unwrap().get(0);
    assert_eq!(count, 3);
    assert_eq!(backend_pid(&pool).await, before);
}
