//! The one Tokio runtime of the process, and the generation counter that tells state
//! created before a `fork` from state created after it.
//!
//! A forked child inherits the parent's memory but none of its threads: the runtime's
//! workers, and the tasks driving the pools' sockets, are gone. So the child gets a new
//! runtime and a new generation; everything stamped with an older generation (the old
//! runtime, pools, pinned connections) is leaked rather than dropped, because dropping it
//! would touch sockets the parent still uses and a scheduler nobody runs.

use std::future::Future;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use pyo3::prelude::*;
use tokio::runtime::{Handle, Runtime};

static GENERATION: AtomicU64 = AtomicU64::new(1);
static RUNTIME: Mutex<Option<Shared>> = Mutex::new(None);

struct Shared {
    pid: u32,
    runtime: Arc<Runtime>,
}

/// The generation of this process: bumped in a forked child.
pub(crate) fn generation() -> u64 {
    check_fork();
    GENERATION.load(Ordering::Acquire)
}

/// The runtime's handle, building the runtime on first use (and again in a forked child).
pub(crate) fn handle() -> Handle {
    let mut slot = RUNTIME.lock().unwrap_or_else(|e| e.into_inner());
    let pid = std::process::id();
    match &*slot {
        Some(shared) if shared.pid == pid => return shared.runtime.handle().clone(),
        Some(_) => forget_parent(&mut slot),
        None => {}
    }
    let runtime = Arc::new(build());
    let handle = runtime.handle().clone();
    *slot = Some(Shared { pid, runtime });
    handle
}

fn build() -> Runtime {
    // Two cores on the machines we measured: one worker per core, never more than two,
    // keeps the I/O driver and the tasks on warm caches. The LIFO slot stays on (the
    // default): a completion wakes the task that awaits it first.
    let workers = std::thread::available_parallelism().map_or(1, |n| n.get()).clamp(1, 2);
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(workers)
        .thread_name("chakra-worker")
        .enable_all()
        .build()
        .unwrap_or_else(|e| panic!("cannot start the Tokio runtime: {e}"))
}

/// In a forked child: the parent's runtime is leaked, never dropped (its threads do not
/// exist here, so dropping it would wait for them forever), and the generation moves on.
fn forget_parent(slot: &mut Option<Shared>) {
    if let Some(old) = slot.take() {
        std::mem::forget(old);
        GENERATION.fetch_add(1, Ordering::AcqRel);
    }
}

fn check_fork() {
    let mut slot = RUNTIME.lock().unwrap_or_else(|e| e.into_inner());
    if matches!(&*slot, Some(shared) if shared.pid != std::process::id()) {
        forget_parent(&mut slot);
    }
}

/// `os.register_at_fork(after_in_child=...)`: forget the parent's runtime at once rather
/// than at the next call, so nothing in the child can reach it.
#[pyfunction]
pub(crate) fn _after_fork_in_child() {
    check_fork();
    crate::completion::after_fork_in_child();
}

/// Drops `value` now, inside the runtime's context: connection handles do work when
/// dropped (return to the pool, or spawn a roll back or a cancel) and need the runtime
/// for it. Not on a task of its own: a connection given back must be back when the
/// caller goes on (a session's `async with` ends with it in the pool).
pub(crate) fn drop_in_runtime<T>(value: T) {
    let _context = handle().enter();
    drop(value);
}

/// Runs `future` to completion on the calling thread with the GIL released; the runtime's
/// workers drive the sockets. On the main thread, pending signals (Ctrl-C) are checked
/// every 100 ms: a `KeyboardInterrupt` drops the future, which cancels the statement.
pub(crate) fn block_on<T, F>(py: Python<'_>, future: F) -> PyResult<T>
where
    F: Future<Output = T> + Send,
    T: Send,
{
    let handle = handle();
    if !is_main_thread() {
        return Ok(py.detach(|| handle.block_on(future)));
    }
    py.detach(|| {
        handle.block_on(async move {
            tokio::pin!(future);
            loop {
                tokio::select! {
                    value = &mut future => return Ok(value),
                    () = tokio::time::sleep(Duration::from_millis(100)) => {
                        Python::attach(|py| py.check_signals())?;
                    }
                }
            }
        })
    })
}

fn is_main_thread() -> bool {
    // On Linux the main thread's id is the process id.
    // SAFETY: gettid and getpid take no arguments and cannot fail.
    unsafe { libc::gettid() == libc::getpid() }
}
