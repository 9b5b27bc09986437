//! `batch`: concurrent lookups of single rows by key on the same table become one
//! `… = ANY($1)` query, and each caller gets back exactly its own row.
//!
//! A lookup with nothing of its shape in flight runs at once, unchanged: a lone or
//! sequential `get` pays neither a yield nor a timer. A lookup that arrives while one of
//! its shape is in flight leads a group instead: it yields, so the scheduler runs the other
//! ready tasks (and, inside one task, `join_all` polls its other futures), and every lookup
//! of the same shape arriving meanwhile joins. The leader yields again while the group
//! keeps growing, then sends one query for all keys. A group that reaches the size cap is
//! sealed, its leader woken to send it at once (the server starts on it while later
//! lookups still gather), and the next lookup starts a new group. Pinned (session and
//! transaction) requests are never batched.
//!
//! If the leader's future is dropped, its group's members notice their closed channel and
//! run their own statements: no lookup waits on a caller that went away.
//!
//! A member whose deadline comes no later than its leader's is *covered* by the leader's
//! (see [`CancelSlot`]): the timeout layer arms no timer for it while it waits, since the
//! merged statement is cancelled at the leader's deadline first, and that cancellation is
//! reported to the member as its own timeout. A member on its own again (its leader gone,
//! or its answer in) is uncovered, and its own deadline applies.

use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{ready, Context, Poll, Waker};
use std::time::Instant;

use chakra_service::telemetry::{BATCHED_LOOKUPS, BATCH_QUERIES};
use chakra_service::{
    hand_back, CancelSlot, Error, Key, Mode, Request, Response, Result, Row, SharedStr, Statement, Value,
};
use foldhash::{HashMap, HashMapExt, HashSet, HashSetExt};
use pin_project::{pin_project, pinned_drop};
use tokio::sync::oneshot;
use tower_layer::Layer;
use tower_service::Service;

/// The default cap on lookups merged into one query. Smaller groups go out sooner (a
/// full group is sent at once) and overlap with the server's work on the previous ones:
/// on 2,000 concurrent gets `chakra-bench --diagnose` measured 256 a little ahead of 1,000
/// and of 100.
pub const DEFAULT_MAX_BATCH: usize = 256;

/// How many times a leader yields while its group keeps growing.
const MAX_YIELDS: u8 = 8;

/// Merges concurrent [`PointLookup`](chakra_service::PointLookup) requests.
#[derive(Debug, Clone, Copy)]
pub struct BatchLayer {
    max_batch: usize,
}

impl BatchLayer {
    /// Merges at most `max_batch` lookups per query.
    pub fn new(max_batch: usize) -> Self {
        BatchLayer { max_batch: max_batch.max(1) }
    }
}

impl Default for BatchLayer {
    fn default() -> Self {
        BatchLayer::new(DEFAULT_MAX_BATCH)
    }
}

impl<S> Layer<S> for BatchLayer {
    type Service = Batch<S>;

    fn layer(&self, inner: S) -> Batch<S> {
        Batch { inner, groups: Arc::default(), max_batch: self.max_batch }
    }
}

/// See [`BatchLayer`]. Clones share their groups.
#[derive(Clone)]
pub struct Batch<S> {
    inner: S,
    groups: Arc<Mutex<Groups>>,
    max_batch: usize,
}

#[derive(Default)]
struct Groups {
    /// Groups still taking members, by shape.
    open: HashMap<Shape, Group>,
    /// Full groups whose leader has not flushed yet, by group id.
    sealed: HashMap<u64, Vec<Member>>,
    /// Statements of each shape on their way to the database (lone lookups and merged
    /// queries): while there are some, a new lookup waits for company.
    in_flight: HashMap<Shape, usize>,
    next_id: u64,
}

/// A group still taking members.
struct Group {
    id: u64,
    /// The leader's deadline, which covers members whose own comes no earlier.
    deadline: Option<Instant>,
    members: Vec<Member>,
    /// The leader, to wake as soon as the group is full.
    leader: Option<Waker>,
}

impl Groups {
    /// Group `id` while it is open (not yet full).
    fn open_group(&mut self, sql: &Shape, id: u64) -> Option<&mut Group> {
        self.open.get_mut(sql).filter(|group| group.id == id)
    }

    fn take(&mut self, sql: &Shape, id: u64) -> Vec<Member> {
        match self.open_group(sql, id).is_some() {
            true => self.open.remove(sql).map(|group| group.members).unwrap_or_default(),
            false => self.sealed.remove(&id).unwrap_or_default(),
        }
    }
}

/// A lookup's shape, identified by where its `batch_sql` text lives. Front-ends build
/// that once per model, so comparing addresses is exact, and no lookup hashes its SQL.
#[derive(Clone)]
struct Shape(SharedStr);

impl PartialEq for Shape {
    fn eq(&self, other: &Shape) -> bool {
        self.0.same(&other.0)
    }
}

impl Eq for Shape {}

impl std::hash::Hash for Shape {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        std::ptr::hash(self.0.as_ptr(), state)
    }
}

/// One lookup waiting in a group. The leader is always the first member.
struct Member {
    key: Key,
    reply: Option<oneshot::Sender<Result<Vec<Row>>>>,
    /// The member's cancel slot, while the leader's deadline covers it.
    covered: Option<CancelSlot>,
}

impl<S> Service<Request> for Batch<S>
where
    S: Service<Request, Response = Response, Error = Error> + Clone,
{
    type Response = Response;
    type Error = Error;
    type Future = BatchFuture<S>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<()>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: Request) -> BatchFuture<S> {
        let clone = self.inner.clone();
        let mut inner = std::mem::replace(&mut self.inner, clone);
        let lookup = request.point_lookup.as_ref().filter(|_| !request.is_pinned());
        let Some((lookup, key)) = lookup.and_then(|l| Some((l, Key::of(&l.key)?))) else {
            let future = inner.call(request);
            return BatchFuture::new(State::Direct { future }, inner, None);
        };
        let sql = Shape(lookup.batch_sql.clone());
        let deadline = request.cancel.as_ref().and_then(CancelSlot::deadline);
        let mut groups = self.groups.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(group) = groups.open.get_mut(&sql) {
            let (reply, receiver) = oneshot::channel();
            let covered = match (group.deadline, deadline) {
                (Some(leader), Some(own)) if own >= leader => request.cancel.clone(),
                _ => None,
            };
            if let Some(slot) = &covered {
                slot.cover(true);
            }
            group.members.push(Member { key, reply: Some(reply), covered });
            if group.members.len() >= self.max_batch {
                let full = groups.open.remove(&sql).expect("the group just joined");
                groups.sealed.insert(full.id, full.members);
                drop(groups);
                if let Some(leader) = full.leader {
                    leader.wake();
                }
            }
            return BatchFuture::new(State::Waiting { receiver, request: Some(request) }, inner, None);
        }
        if groups.in_flight.get(&sql).is_none_or(|n| *n == 0) {
            // Nothing of this shape is running, so there is nothing to wait for: go now.
            let in_flight = InFlight::counted(&mut groups, &self.groups, sql);
            drop(groups);
            let future = inner.call(request);
            let mut batch = BatchFuture::new(State::Direct { future }, inner, None);
            batch.in_flight = Some(in_flight);
            return batch;
        }
        let id = groups.next_id;
        groups.next_id += 1;
        // Room for the members a burst typically brings, so the group rarely regrows.
        let mut members = Vec::with_capacity(self.max_batch.min(DEFAULT_MAX_BATCH));
        members.push(Member { key, reply: None, covered: None });
        groups.open.insert(sql.clone(), Group { id, deadline, members, leader: None });
        let lead = Lead { groups: self.groups.clone(), sql, id };
        let yielded = Box::pin(tokio::task::yield_now());
        let state = State::Yielding { yielded, seen: 1, yields: 1, request: Some(Box::new(request)) };
        BatchFuture::new(state, inner, Some(lead))
    }
}

/// Counts a statement of one shape as in flight until dropped.
struct InFlight {
    groups: Arc<Mutex<Groups>>,
    sql: Shape,
}

impl InFlight {
    fn start(shared: &Arc<Mutex<Groups>>, sql: Shape) -> InFlight {
        InFlight::counted(&mut shared.lock().unwrap_or_else(|e| e.into_inner()), shared, sql)
    }

    /// Counts it in `groups`, already locked (`shared` is the same, for the release).
    fn counted(groups: &mut Groups, shared: &Arc<Mutex<Groups>>, sql: Shape) -> InFlight {
        *groups.in_flight.entry(sql.clone()).or_default() += 1;
        InFlight { groups: shared.clone(), sql }
    }
}

impl Drop for InFlight {
    fn drop(&mut self) {
        let mut groups = self.groups.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(n) = groups.in_flight.get_mut(&self.sql) {
            *n -= 1;
            if *n == 0 {
                groups.in_flight.remove(&self.sql);
            }
        }
    }
}

/// The leader's claim on its group until it flushes.
struct Lead {
    groups: Arc<Mutex<Groups>>,
    sql: Shape,
    id: u64,
}

impl Lead {
    /// The group's size while it is open, leaving `waker` to be woken when it fills up;
    /// `None` once it is full.
    fn watch(&self, waker: &Waker) -> Option<usize> {
        let mut groups = self.groups.lock().unwrap_or_else(|e| e.into_inner());
        let group = groups.open_group(&self.sql, self.id)?;
        match &mut group.leader {
            Some(leader) => leader.clone_from(waker),
            None => group.leader = Some(waker.clone()),
        }
        Some(group.members.len())
    }

    fn take_members(self) -> Vec<Member> {
        self.groups.lock().unwrap_or_else(|e| e.into_inner()).take(&self.sql, self.id)
    }
}

/// Response future of [`Batch`].
#[pin_project(PinnedDrop)]
pub struct BatchFuture<S: Service<Request>> {
    #[pin]
    state: State<S::Future>,
    inner: S,
    lead: Option<Lead>,
    /// Held while this future's own statement runs.
    in_flight: Option<InFlight>,
}

#[pin_project(project = StateProj)]
enum State<F> {
    /// Not a batchable lookup, a lone one, or a member whose leader went away.
    Direct {
        #[pin]
        future: F,
    },
    /// A member waiting for its leader's reply, keeping its request in case the leader
    /// goes away or the merged query's connection fails.
    Waiting { receiver: oneshot::Receiver<Result<Vec<Row>>>, request: Option<Request> },
    /// A leader letting other lookups join; `seen` members at the last yield. (Leaders box
    /// their request: this future is part of every request's, and most run `Direct`.)
    Yielding {
        yielded: Pin<Box<dyn Future<Output = ()> + Send>>,
        seen: usize,
        yields: u8,
        request: Option<Box<Request>>,
    },
    /// A leader running the merged query for `members`.
    Flushing {
        #[pin]
        future: F,
        members: Vec<Member>,
        key_column: usize,
        request: Box<Request>,
    },
}

impl<S: Service<Request>> BatchFuture<S> {
    fn new(state: State<S::Future>, inner: S, lead: Option<Lead>) -> Self {
        BatchFuture { state, inner, lead, in_flight: None }
    }
}

impl<S> Future for BatchFuture<S>
where
    S: Service<Request, Response = Response, Error = Error>,
{
    type Output = Result<Response>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let mut this = self.project();
        loop {
            match this.state.as_mut().project() {
                StateProj::Direct { future } => {
                    let output = ready!(future.poll(cx));
                    *this.in_flight = None;
                    return Poll::Ready(output);
                }
                StateProj::Waiting { receiver, request } => {
                    let reply = ready!(Pin::new(receiver).poll(cx));
                    let own = request.as_ref().expect("members keep their request until they finish");
                    // On its own again, whatever the reply: its own deadline applies.
                    if let Some(slot) = &own.cancel {
                        slot.cover(false);
                    }
                    match reply {
                        Ok(Ok(rows)) => return Poll::Ready(Response::for_request(rows, own)),
                        // The merged query's failure is this lookup's: retried as this lookup.
                        Ok(Err(e)) => return Poll::Ready(Err(hand_back(e, request.take().expect("kept")))),
                        Err(_) => {
                            // The leader was dropped before answering: run our own statement.
                            ready!(this.inner.poll_ready(cx))?;
                            let future = this.inner.call(request.take().expect("kept"));
                            this.state.set(State::Direct { future });
                        }
                    }
                }
                StateProj::Yielding { yielded, seen, yields, request } => {
                    let lead = this.lead.as_ref().expect("the leader holds its lead");
                    if yielded.as_mut().poll(cx).is_pending() {
                        // Woken after the yield, or as soon as the group is full; if it
                        // already is, it goes now.
                        if lead.watch(cx.waker()).is_some() {
                            return Poll::Pending;
                        }
                    } else if let Some(size) =
                        lead.watch(cx.waker()).filter(|size| *size > *seen && *yields < MAX_YIELDS)
                    {
                        // Still growing: other tasks are still arriving, give them another pass.
                        *seen = size;
                        *yields += 1;
                        *yielded = Box::pin(tokio::task::yield_now());
                        continue;
                    }
                    ready!(this.inner.poll_ready(cx))?;
                    let lead = this.lead.take().expect("the leader holds its lead");
                    *this.in_flight = Some(InFlight::start(&lead.groups, lead.sql.clone()));
                    let members = lead.take_members();
                    let request = request.take().expect("the leader keeps its request until it flushes");
                    if members.len() <= 1 {
                        let future = this.inner.call(*request);
                        this.state.set(State::Direct { future });
                        continue;
                    }
                    let key_column = request.point_lookup.as_ref().expect("leaders are lookups").key_column;
                    let merged = merged_request(&request, &members);
                    metrics::counter!(BATCHED_LOOKUPS).increment(members.len() as u64);
                    metrics::counter!(BATCH_QUERIES).increment(1);
                    let future = this.inner.call(merged);
                    this.state.set(State::Flushing { future, members, key_column, request });
                }
                StateProj::Flushing { future, members, key_column, request } => {
                    let result = ready!(future.poll(cx)).and_then(Response::into_rows);
                    *this.in_flight = None;
                    if result.is_err() && request.cancel.as_ref().is_some_and(CancelSlot::was_sent) {
                        // Cancelled at the leader's deadline: the members it covered time out with it.
                        members.iter().filter_map(|m| m.covered.as_ref()).for_each(CancelSlot::cancel_with_cover);
                    }
                    let own = distribute(result, members, *key_column);
                    return Poll::Ready(match own {
                        Ok(rows) => Response::for_request(rows, request),
                        Err(e) => Err(hand_back(e, (**request).clone())),
                    });
                }
            }
        }
    }
}

#[pinned_drop]
impl<S: Service<Request>> PinnedDrop for BatchFuture<S> {
    fn drop(self: Pin<&mut Self>) {
        // A leader dropped before flushing dissolves its group; dropping the members'
        // reply senders sends each member off to run its own statement.
        if let Some(lead) = self.project().lead.take() {
            drop(lead.take_members());
        }
    }
}

/// One query for every distinct key of the group, all labels kept from the leader.
fn merged_request(leader: &Request, members: &[Member]) -> Request {
    let lookup = leader.point_lookup.as_ref().expect("leaders are lookups");
    let mut seen = HashSet::with_capacity(members.len());
    let keys: Vec<Value> = members.iter().filter(|m| seen.insert(&m.key)).map(|m| m.key.clone().into()).collect();
    let mut merged = leader.clone();
    merged.statement = Statement::new(lookup.batch_sql.clone(), vec![Value::Array(keys)]);
    merged.mode = Mode::All;
    merged.point_lookup = None;
    merged
}

/// Hands every member but the leader its rows (or the error) and returns the leader's.
fn distribute(result: Result<Vec<Row>>, members: &mut [Member], key_column: usize) -> Result<Vec<Row>> {
    let rows = match result {
        Ok(rows) => rows,
        Err(mut e) => {
            // The merged request is nobody's to send again; each lookup gets its own back.
            e.take_request();
            for member in members.iter_mut().skip(1) {
                if let Some(reply) = member.reply.take() {
                    let _ = reply.send(Err(e.clone()));
                }
            }
            return Err(e);
        }
    };
    // One slot per distinct key: its rows, and how many members still want them.
    let mut slot_of: HashMap<&Key, usize> = HashMap::with_capacity(members.len());
    let mut slots: Vec<(Vec<Row>, usize)> = Vec::with_capacity(members.len());
    let member_slots: Vec<usize> = members
        .iter()
        .map(|member| {
            let slot = *slot_of.entry(&member.key).or_insert_with(|| {
                slots.push((Vec::new(), 0));
                slots.len() - 1
            });
            slots[slot].1 += 1;
            slot
        })
        .collect();
    for row in rows {
        let value: Value = row.try_get(key_column).map_err(Error::from)?;
        if let Some(&slot) = Key::of(&value).as_ref().and_then(|key| slot_of.get(key)) {
            // A key's lookup nearly always finds one row: room for just that one (a Vec
            // would start at four, 288 bytes, and a burst of them is slow to allocate).
            let rows = &mut slots[slot].0;
            rows.reserve_exact(1);
            rows.push(row);
        }
    }
    // The last member wanting a key's rows takes them; any before it get copies.
    let mut own = Vec::new();
    for (i, (member, slot)) in members.iter_mut().zip(member_slots).enumerate() {
        let (rows, wanting) = &mut slots[slot];
        *wanting -= 1;
        let rows = if *wanting == 0 { std::mem::take(rows) } else { rows.clone() };
        match (i, member.reply.take()) {
            (0, _) => own = rows,
            (_, Some(reply)) => drop(reply.send(Ok(rows))),
            (_, None) => {}
        }
    }
    Ok(own)
}
