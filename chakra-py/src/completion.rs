//! The completion queue: how a result crosses from a Tokio task to the asyncio loop that
//! awaits it.
//!
//! Each event loop gets a [`Reactor`]: an `eventfd` the loop watches with `add_reader`, a
//! queue of finished results, and the table of asyncio futures waiting for them. A Tokio
//! task finishing pushes *plain Rust data* onto the queue and writes the eventfd only if
//! the queue was empty, so a burst of completions costs one wake-up. The loop then calls
//! [`Drain`] on its own thread, with the GIL: it takes the whole queue, converts every
//! result to Python objects in one pass and resolves the futures, skipping those
//! cancelled meanwhile. Tokio threads never take the GIL and never call into Python.

use std::any::Any;
use std::cell::RefCell;
use std::collections::HashMap;
use std::future::Future;
use std::os::fd::RawFd;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use pyo3::exceptions::PyRuntimeError;
use pyo3::prelude::*;
use pyo3::sync::PyOnceLock;
use pyo3::types::PyCFunction;
use tokio::task::AbortHandle;

use crate::runtime;

/// What a Tokio task hands back: any `Send` value, or the core's error.
pub(crate) type Outcome = Result<Box<dyn Any + Send>, chakra::Error>;

/// A boxed operation, ready to run on the runtime.
pub(crate) type BoxFuture = Pin<Box<dyn Future<Output = Outcome> + Send>>;

/// Turns an [`Outcome`] into a Python object, on the thread (and with the GIL) of the
/// code awaiting it.
pub(crate) type Converter = Box<dyn FnOnce(Python<'_>, Outcome) -> PyResult<Py<PyAny>> + Send>;

/// Finished results waiting for their loop, and the eventfd that wakes it.
struct Queue {
    fd: RawFd,
    items: Mutex<Vec<(u64, Outcome)>>,
}

impl Queue {
    fn new() -> PyResult<Queue> {
        // SAFETY: eventfd takes plain integers; a negative result is reported below.
        let fd = unsafe { libc::eventfd(0, libc::EFD_NONBLOCK | libc::EFD_CLOEXEC) };
        if fd < 0 {
            return Err(PyRuntimeError::new_err(format!("eventfd failed: {}", std::io::Error::last_os_error())));
        }
        Ok(Queue { fd, items: Mutex::new(Vec::new()) })
    }

    /// Called on a Tokio thread. Only the push that finds the queue empty writes the
    /// eventfd: the drain reads the eventfd *before* taking the queue, so every item is
    /// either taken by a drain already woken or announced by its own write.
    fn push(&self, id: u64, outcome: Outcome) {
        let was_empty = {
            let mut items = self.items.lock().unwrap_or_else(|e| e.into_inner());
            let was_empty = items.is_empty();
            items.push((id, outcome));
            was_empty
        };
        if was_empty {
            let one: u64 = 1;
            // SAFETY: writes 8 bytes from a live u64 to our own eventfd. It cannot block
            // (EFD_NONBLOCK) and only fails when the counter is saturated, i.e. a wake-up
            // is already pending.
            unsafe { libc::write(self.fd, (&one as *const u64).cast(), 8) };
        }
    }

    fn take(&self) -> Vec<(u64, Outcome)> {
        let mut counter: u64 = 0;
        // SAFETY: reads 8 bytes into a live u64; EAGAIN (nothing to read) is harmless.
        unsafe { libc::read(self.fd, (&mut counter as *mut u64).cast(), 8) };
        std::mem::take(&mut *self.items.lock().unwrap_or_else(|e| e.into_inner()))
    }
}

impl Drop for Queue {
    fn drop(&mut self) {
        // SAFETY: the fd is ours and closed exactly once.
        unsafe { libc::close(self.fd) };
    }
}

/// An asyncio future waiting for a Tokio task, and how to convert the task's result.
struct Pending {
    future: Py<PyAny>,
    convert: Converter,
}

/// One event loop's side of the queue. Only used on that loop's thread, with the GIL.
pub(crate) struct Reactor {
    event_loop: Py<PyAny>,
    queue: Arc<Queue>,
    pending: Mutex<HashMap<u64, Pending>>,
    next_id: AtomicU64,
    generation: u64,
    /// The runtime of `generation`, kept here so starting an op takes no lock.
    runtime: tokio::runtime::Handle,
}

thread_local! {
    /// The reactor of the loop last seen running on this thread: a thread runs one loop
    /// at a time, and nearly always the same one, so this is one pointer comparison.
    static CURRENT: RefCell<Option<Arc<Reactor>>> = const { RefCell::new(None) };
}

static GET_RUNNING_LOOP: PyOnceLock<Py<PyAny>> = PyOnceLock::new();

/// The running loop of this thread, if any (`asyncio._get_running_loop()`).
pub(crate) fn running_loop(py: Python<'_>) -> PyResult<Option<Bound<'_, PyAny>>> {
    let get = GET_RUNNING_LOOP
        .get_or_try_init(py, || py.import("asyncio.events")?.getattr("_get_running_loop").map(Bound::unbind))?;
    let event_loop = get.bind(py).call0()?;
    Ok((!event_loop.is_none()).then_some(event_loop))
}

fn current(py: Python<'_>) -> PyResult<Arc<Reactor>> {
    let Some(event_loop) = running_loop(py)? else {
        return Err(PyRuntimeError::new_err(
            "no running event loop: await this inside `async def` code, or call the `_sync` variant",
        ));
    };
    let generation = runtime::generation();
    let cached = CURRENT.with_borrow(|current| {
        current.as_ref().filter(|r| r.event_loop.is(&event_loop) && r.generation == generation).cloned()
    });
    if let Some(reactor) = cached {
        return Ok(reactor);
    }
    let reactor = Arc::new(Reactor {
        event_loop: event_loop.clone().unbind(),
        queue: Arc::new(Queue::new()?),
        pending: Mutex::new(HashMap::new()),
        next_id: AtomicU64::new(1),
        generation,
        runtime: runtime::handle(),
    });
    // The loop holds the drain callback, which holds the reactor only weakly: the
    // thread-local slot owns it, so replacing it (another loop) frees it.
    let weak = Arc::downgrade(&reactor);
    let drain = PyCFunction::new_closure(py, None, None, move |args, _| {
        if let Some(reactor) = weak.upgrade() {
            reactor.drain(args.py());
        }
    })?;
    event_loop.call_method1("add_reader", (reactor.queue.fd, drain))?;
    let previous = CURRENT.with_borrow_mut(|current| current.replace(reactor.clone()));
    if let Some(previous) = previous {
        previous.detach(py);
    }
    Ok(reactor)
}

impl Reactor {
    /// Stops watching this reactor's eventfd (its loop is no longer this thread's).
    fn detach(&self, py: Python<'_>) {
        let event_loop = self.event_loop.bind(py);
        let closed = event_loop.call_method0("is_closed").and_then(|c| c.is_truthy()).unwrap_or(true);
        if !closed {
            let _ = event_loop.call_method1("remove_reader", (self.queue.fd,));
        }
    }

    /// The loop's reader callback: resolves every finished operation.
    fn drain(&self, py: Python<'_>) {
        let items = self.queue.take();
        if items.is_empty() {
            return;
        }
        // Results that nobody awaits any more are dropped here; connection handles in
        // them need the runtime's context to clean up.
        let _runtime = self.runtime.enter();
        for (id, outcome) in items {
            let pending = self.pending.lock().unwrap_or_else(|e| e.into_inner()).remove(&id);
            let Some(Pending { future, convert }) = pending else {
                continue;
            };
            let future = future.bind(py);
            if future.call_method0("done").and_then(|d| d.is_truthy()).unwrap_or(true) {
                continue;
            }
            let resolved = match convert(py, outcome) {
                Ok(value) => future.call_method1("set_result", (value,)),
                Err(err) => future.call_method1("set_exception", (err.into_value(py),)),
            };
            if let Err(err) = resolved {
                err.write_unraisable(py, Some(future));
            }
        }
    }
}

/// A started operation: the Tokio task and the asyncio future waiting for it.
pub(crate) struct Ticket {
    reactor: Arc<Reactor>,
    id: u64,
    abort: AbortHandle,
    pub(crate) future: Py<PyAny>,
}

/// Spawns `future` on the runtime; its result will resolve a new asyncio future of the
/// running loop, converted by `convert`.
pub(crate) fn start(py: Python<'_>, future: BoxFuture, convert: Converter) -> PyResult<Ticket> {
    let reactor = match current(py) {
        Ok(reactor) => reactor,
        Err(err) => {
            // Never started: its connection handles still belong on the runtime.
            runtime::drop_in_runtime(future);
            return Err(err);
        }
    };
    let asyncio_future = reactor.event_loop.bind(py).call_method0("create_future")?.unbind();
    let id = reactor.next_id.fetch_add(1, Ordering::Relaxed);
    reactor
        .pending
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .insert(id, Pending { future: asyncio_future.clone_ref(py), convert });
    let queue = reactor.queue.clone();
    let task = reactor.runtime.spawn(async move {
        let outcome = future.await;
        queue.push(id, outcome);
    });
    Ok(Ticket { reactor, id, abort: task.abort_handle(), future: asyncio_future })
}

impl Ticket {
    /// Aborts the Tokio task (dropping its future cancels the statement and cleans the
    /// connection, see `chakra_service::Conn`) and forgets the asyncio future.
    pub(crate) fn cancel(&self) {
        self.abort.abort();
        let pending = self.reactor.pending.lock().unwrap_or_else(|e| e.into_inner()).remove(&self.id);
        drop(pending);
    }
}

/// In a forked child: the inherited reactor's eventfd is shared with the parent, whose
/// loop may still watch it; it must never be read here. Leak it and start afresh.
pub(crate) fn after_fork_in_child() {
    let _ = CURRENT.try_with(|current| {
        if let Some(reactor) = current.borrow_mut().take() {
            std::mem::forget(reactor);
        }
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pending_wakeups(queue: &Queue) -> u64 {
        let mut counter: u64 = 0;
        // SAFETY: as in `Queue::take`.
        let n = unsafe { libc::read(queue.fd, (&mut counter as *mut u64).cast(), 8) };
        if n == 8 {
            counter
        } else {
            0
        }
    }

    #[test]
    fn a_burst_of_completions_wakes_the_loop_once() {
        let queue = Queue::new().unwrap();
        for id in 0..100 {
            queue.push(id, Ok(Box::new(id)));
        }
        assert_eq!(pending_wakeups(&queue), 1);
        assert_eq!(queue.items.lock().unwrap().len(), 100);
    }

    #[test]
    fn a_push_after_a_drain_wakes_the_loop_again() {
        let queue = Queue::new().unwrap();
        queue.push(1, Ok(Box::new(())));
        assert_eq!(queue.take().len(), 1);
        assert_eq!(pending_wakeups(&queue), 0, "take() consumed the wake-up");
        queue.push(2, Ok(Box::new(())));
        assert_eq!(pending_wakeups(&queue), 1);
    }
}
