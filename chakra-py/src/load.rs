//! Rows into instances: the query's model, and the rows `select_related` joined to each
//! row, attached to the instance that refers to them.

use chakra::Row;
use pyo3::ffi;
use pyo3::prelude::*;
use pyo3::types::{PyDict, PyList};

use crate::convert::Decoder;
use crate::schema::{Layout, Schema};

/// A relation `select_related` loads in the query's statement (the core's `Join` of the
/// same index says how): its model, and the Python callable that makes a loaded row (or
/// `None`) the relation's value on the instance referring to it.
pub(crate) struct Joined {
    /// The relation's lookup from the query's model (`"author__publisher"`).
    pub(crate) path: String,
    pub(crate) schema: Py<Schema>,
    pub(crate) attach: Py<PyAny>,
}

impl Joined {
    pub(crate) fn clone_ref(&self, py: Python<'_>) -> Joined {
        Joined { path: self.path.clone(), schema: self.schema.clone_ref(py), attach: self.attach.clone_ref(py) }
    }
}

/// How one statement's rows become instances, through a session's identity maps when
/// given (the model's, and one per join).
pub(crate) struct Loader {
    schema: Py<Schema>,
    identity: Option<Py<PyDict>>,
    /// Where each row's own columns (the fields, then the annotations) end: the joined
    /// rows' columns follow.
    own: usize,
    /// Which fields the rows hold, when not every one in order (`only()`, `defer()`).
    layout: Option<Layout>,
    joins: Vec<JoinLoad>,
}

struct JoinLoad {
    schema: Py<Schema>,
    attach: Py<PyAny>,
    identity: Option<Py<PyDict>>,
    /// The instance referring to this join's row: the query's (`None`) or an earlier join's.
    from: Option<usize>,
    /// The row's first column of this join's.
    at: usize,
}

impl Loader {
    /// `own`: the columns of the model's fields and annotations; `layout`: which fields
    /// they hold, if not all; `from`: each join's `Join::from`; `identities`: the
    /// identity map of each join's model, if any.
    pub(crate) fn new(
        py: Python<'_>,
        schema: &Py<Schema>,
        identity: Option<Py<PyDict>>,
        (own, layout): (usize, Option<Layout>),
        joins: &[(&Joined, Option<usize>)],
        identities: Option<Vec<Py<PyDict>>>,
    ) -> PyResult<Loader> {
        let mut identities = identities.map(Vec::into_iter);
        let mut at = own;
        let mut loads = Vec::with_capacity(joins.len());
        for &(joined, from) in joins {
            let identity = match identities.as_mut() {
                None => None,
                Some(maps) => Some(maps.next().ok_or_else(|| {
                    PyErr::new::<pyo3::exceptions::PyValueError, _>("one identity map per joined relation")
                })?),
            };
            loads.push(JoinLoad {
                schema: joined.schema.clone_ref(py),
                attach: joined.attach.clone_ref(py),
                identity,
                from,
                at,
            });
            at += joined.schema.get().fields.len();
        }
        Ok(Loader { schema: schema.clone_ref(py), identity, own, layout, joins: loads })
    }

    /// The instance of one row, with its joined rows attached.
    pub(crate) fn one<'py>(&self, py: Python<'py>, row: &Row, decoders: &[Decoder]) -> PyResult<Bound<'py, PyAny>> {
        let identity = self.identity.as_ref().map(|d| d.bind(py));
        let obj = self.schema.get().build_at(py, row, 0, self.own, decoders, identity, self.layout.as_ref())?;
        if self.joins.is_empty() {
            return Ok(obj);
        }
        let mut loaded: Vec<Option<Bound<'py, PyAny>>> = Vec::with_capacity(self.joins.len());
        for join in &self.joins {
            let identity = join.identity.as_ref().map(|d| d.bind(py));
            let found = join.schema.get().build_joined(py, row, join.at, decoders, identity)?;
            // Below a relation that found no row there is nothing to attach to.
            let owner = match join.from {
                None => Some(&obj),
                Some(i) => loaded[i].as_ref(),
            };
            if let Some(owner) = owner {
                join.attach.bind(py).call1((owner, found.as_ref()))?;
            }
            loaded.push(found);
        }
        Ok(obj)
    }

    /// The instances of `rows`, in order.
    pub(crate) fn all<'py>(&self, py: Python<'py>, rows: &[Row]) -> PyResult<Bound<'py, PyList>> {
        let Some(first) = rows.first() else {
            return Ok(PyList::empty(py));
        };
        let decoders = Decoder::for_row(first);
        // SAFETY: PyList_New returns a list of `len` NULL items (or NULL with an exception
        // set); SET_ITEM fills each exactly once and steals the reference. If a row fails,
        // the list is dropped with its remaining items NULL, which list_dealloc allows.
        unsafe {
            let list = ffi::PyList_New(rows.len() as ffi::Py_ssize_t);
            if list.is_null() {
                return Err(PyErr::fetch(py));
            }
            let list = Bound::from_owned_ptr(py, list).cast_into_unchecked::<PyList>();
            for (i, row) in rows.iter().enumerate() {
                let obj = self.one(py, row, &decoders)?;
                ffi::PyList_SET_ITEM(list.as_ptr(), i as ffi::Py_ssize_t, obj.into_ptr());
            }
            Ok(list)
        }
    }
}
