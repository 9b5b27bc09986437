//! `Schema`: a Python model class as the Rust side knows it — its fields as the core's
//! [`FieldInfo`], how each converts, and where each lives in an instance.
//!
//! Model classes store their fields in `__slots__`. Rows become instances here, in one
//! pass per row and without calling `__init__`: the instance is allocated with the type's
//! `tp_alloc`, each column is decoded straight into its slot, and a tuple of the values as
//! loaded goes into the `_chakra_loaded` slot. Flushing compares the slots with that tuple
//! to find the changed columns. Attribute reads and writes stay plain slot accesses.
//!
//! A query may load only some fields (`only()`, `defer()`): the others' slots stay empty
//! (reading one is an `AttributeError` naming it) and the tuple holds [`not_loaded`] for
//! them. Such a field is written only once it is set; a later query of the session that
//! loads it fills it in, without touching the fields already loaded.

use chakra::models::ast::{CompareOp, Expr, Select};
use chakra::models::{compile, ddl, FieldInfo, ForeignKey, OnDelete, Postgres};
use chakra::{Row, SharedStr, Value};
use pyo3::exceptions::PyTypeError;
use pyo3::ffi;
use pyo3::prelude::*;
use pyo3::types::{PyDict, PyString, PyTuple, PyType};

use crate::convert::{decode, to_value, Decoder, FieldKind, FieldType};

/// A model class's fields and layout, registered once per class.
#[pyclass(module = "chakra._core", frozen)]
pub(crate) struct Schema {
    pub(crate) model: Py<PyType>,
    /// The class name, for messages.
    pub(crate) name: String,
    pub(crate) table: SharedStr,
    pub(crate) fields: Vec<FieldInfo>,
    pub(crate) types: Vec<FieldType>,
    /// Interned field names, the keys of `values()` dicts.
    pub(crate) names: Vec<Py<PyString>>,
    /// Byte offset of each field's slot in an instance.
    offsets: Vec<isize>,
    loaded_offset: isize,
    pub(crate) pk: usize,
    /// `SELECT <fields> … WHERE <pk> = $1` and its batched form `… = ANY($1)`, compiled once.
    pub(crate) by_pk: (SharedStr, SharedStr),
    /// The values each field takes, where `choices=` limits them (and them as Python
    /// shows them, for errors).
    choices: Vec<Option<(Vec<Value>, String)>>,
}

/// The byte offset of slot `name` of `model` (a `__slots__` member descriptor).
fn slot_offset(model: &Bound<'_, PyType>, name: &str) -> PyResult<isize> {
    let descr = model.getattr(name)?;
    // SAFETY: the type check makes the cast to PyMemberDescrObject valid; its d_member
    // points to the PyMemberDef that CPython created for the slot.
    unsafe {
        let ptr = descr.as_ptr();
        if ffi::Py_TYPE(ptr) != std::ptr::addr_of_mut!(ffi::PyMemberDescr_Type) {
            return Err(PyTypeError::new_err(format!("`{name}` of {} is not a slot", model.name()?)));
        }
        let member = (*(ptr as *mut ffi::PyMemberDescrObject)).d_member as *const ffi::PyMemberDef;
        if (*member).type_code != ffi::Py_T_OBJECT_EX {
            return Err(PyTypeError::new_err(format!("slot `{name}` of {} does not hold objects", model.name()?)));
        }
        Ok((*member).offset)
    }
}

/// The address of the slot at `offset` in `obj`.
///
/// # Safety
/// `obj` must be an instance of the type the offset was read from.
unsafe fn slot(obj: *mut ffi::PyObject, offset: isize) -> *mut *mut ffi::PyObject {
    unsafe { (obj as *mut u8).offset(offset) as *mut *mut ffi::PyObject }
}

#[pymethods]
impl Schema {
    /// `fields`: one tuple per field, `(name, column, sql_type, column_type, nullable,
    /// primary_key, generated, unique, index, max_length)`.
    #[new]
    fn new(model: Bound<'_, PyType>, table: String, fields: Vec<Bound<'_, PyTuple>>) -> PyResult<Schema> {
        let name = model.name()?.to_string();
        let mut infos = Vec::with_capacity(fields.len());
        let mut types = Vec::with_capacity(fields.len());
        let mut names = Vec::with_capacity(fields.len());
        let mut offsets = Vec::with_capacity(fields.len());
        let mut allowed = Vec::with_capacity(fields.len());
        let mut pk = None;
        for (i, field) in fields.iter().enumerate() {
            let (
                fname,
                column,
                sql_type,
                column_type,
                nullable,
                primary_key,
                generated,
                unique,
                index,
                max_length,
                references,
                (default, check, choices),
            ): FieldSpec = field.extract()?;
            let kind = FieldKind::from_sql_type(&sql_type)
                .ok_or_else(|| PyTypeError::new_err(format!("{name}.{fname}: unsupported column type `{sql_type}`")))?;
            let references = match references {
                None => None,
                Some((table, column, on_delete)) => Some(ForeignKey {
                    table: table.into(),
                    column: column.into(),
                    on_delete: OnDelete::parse(&on_delete).ok_or_else(|| {
                        PyTypeError::new_err(format!("{name}.{fname}: unknown on_delete `{on_delete}`"))
                    })?,
                }),
            };
            if primary_key {
                if pk.is_some() {
                    return Err(PyTypeError::new_err(format!("{name} declares more than one primary key")));
                }
                pk = Some(i);
            }
            offsets.push(slot_offset(&model, &fname)?);
            names.push(PyString::intern(model.py(), &fname).unbind());
            infos.push(FieldInfo {
                name: fname.into(),
                column: column.into(),
                sql_type: sql_type.into(),
                nullable,
                primary_key,
                generated,
                column_type: Some(column_type.into()),
                unique,
                index,
                references,
                default: default.map(Into::into),
                check: check.map(Into::into),
            });
            let ty = FieldType { kind, max_length };
            let label = format!("{name}.{}", infos[i].name);
            let choices = match choices {
                None => None,
                Some(values) => {
                    let converted =
                        values.iter().map(|value| to_value(value, &ty, &label)).collect::<PyResult<Vec<_>>>().map_err(
                            |e| PyTypeError::new_err(format!("choices= of {label}: {}", e.value(model.py()))),
                        )?;
                    let shown = values.iter().map(|v| Ok(v.repr()?.to_string())).collect::<PyResult<Vec<_>>>()?;
                    Some((converted, shown.join(", ")))
                }
            };
            allowed.push(choices);
            types.push(ty);
        }
        let pk = pk.ok_or_else(|| PyTypeError::new_err(format!("{name} has no primary key field")))?;
        let loaded_offset = slot_offset(&model, "_chakra_loaded")?;
        let table: SharedStr = table.into();
        let by_pk = by_pk_sql(&table, &infos, pk);
        Ok(Schema {
            model: model.unbind(),
            name,
            table,
            fields: infos,
            types,
            names,
            offsets,
            loaded_offset,
            pk,
            by_pk,
            choices: allowed,
        })
    }

    /// The table's name.
    #[getter]
    fn table(&self) -> &str {
        &self.table
    }

    /// The names of the fields whose value differs from the one last loaded or saved;
    /// `None` for an object never saved.
    fn changed_fields(&self, obj: &Bound<'_, PyAny>) -> PyResult<Option<Vec<String>>> {
        self.check(obj)?;
        Ok(self.changes(obj)?.map(|idx| idx.into_iter().map(|i| self.fields[i].name.to_string()).collect()))
    }

    /// Whether any of `objs` (instances of this model) has unsaved changes.
    fn any_changed(&self, objs: &Bound<'_, PyAny>) -> PyResult<bool> {
        for obj in objs.try_iter()? {
            let obj = obj?;
            self.check(&obj)?;
            if self.changes(&obj)?.is_some_and(|c| !c.is_empty()) {
                return Ok(true);
            }
        }
        Ok(false)
    }

    /// The primary key value of `obj` as loaded (what identifies its row), or `None`.
    pub(crate) fn loaded_pk(&self, obj: &Bound<'_, PyAny>) -> PyResult<Option<Py<PyAny>>> {
        self.check(obj)?;
        Ok(self.loaded(obj).and_then(|t| t.get_item(self.pk).ok()).map(Bound::unbind))
    }

    /// Forgets what was loaded: the object counts as never saved (after a rollback of
    /// the transaction that inserted it).
    fn forget_loaded(&self, obj: &Bound<'_, PyAny>) -> PyResult<()> {
        self.check(obj)?;
        // SAFETY: `check` verified the layout.
        unsafe { replace_slot(obj, self.loaded_offset, None) };
        Ok(())
    }

    /// Marks `obj`'s current values as the saved ones.
    fn mark_saved(&self, obj: &Bound<'_, PyAny>) -> PyResult<()> {
        self.check(obj)?;
        self.snapshot(obj)
    }

    /// `CREATE TABLE IF NOT EXISTS` and its indexes.
    fn create_sql(&self) -> Vec<String> {
        ddl::create_table(&Postgres, &self.table, &self.fields).into_iter().map(|s| s.sql.to_string()).collect()
    }

    /// `DROP TABLE IF EXISTS`.
    fn drop_sql(&self) -> String {
        ddl::drop_table(&Postgres, &self.table).sql.to_string()
    }

    fn __repr__(&self) -> String {
        format!("<Schema {} table={:?}>", self.name, &*self.table)
    }
}

/// A field as `chakra.models` describes it (`_FieldSpec` in `_core.pyi`): name, column,
/// SQL type, column type in DDL, nullable, primary key, generated, unique, index, maximum
/// length, the foreign key (referenced table and column, `on_delete`), and the column's
/// `DEFAULT` and `CHECK` as SQL with the values `choices=` allows.
type FieldSpec<'py> = (
    String,
    String,
    String,
    String,
    bool,
    bool,
    bool,
    bool,
    bool,
    Option<usize>,
    Option<(String, String, String)>,
    (Option<String>, Option<String>, Option<Vec<Bound<'py, PyAny>>>),
);

/// The lookup-by-primary-key statements. Only their text is kept: the placeholder
/// values stand in for the key (non-NULL, which would render `IS NULL`).
fn by_pk_sql(table: &str, fields: &[FieldInfo], pk: usize) -> (SharedStr, SharedStr) {
    let columns = fields.iter().map(|f| f.column.clone());
    let key = fields[pk].column.clone();
    let mut one = Select::new(table.to_owned(), columns.clone());
    one.filter(Expr::Compare { column: key.clone(), op: CompareOp::Eq, value: Value::I64(0).into() });
    let mut many = Select::new(table.to_owned(), columns);
    many.filter(Expr::In { column: key, values: vec![Value::I64(0)], negated: false });
    (compile::select(&Postgres, &one).sql, compile::select(&Postgres, &many).sql)
}

static NOT_LOADED: pyo3::sync::PyOnceLock<Py<PyAny>> = pyo3::sync::PyOnceLock::new();

/// `chakra.models.NOT_LOADED`: what the as-loaded tuple holds for a field a query left
/// out.
fn not_loaded(py: Python<'_>) -> PyResult<&Bound<'_, PyAny>> {
    NOT_LOADED
        .get_or_try_init(py, || py.import("chakra.models")?.getattr("NOT_LOADED").map(Bound::unbind))
        .map(|m| m.bind(py))
}

static DB_DEFAULT: pyo3::sync::PyOnceLock<Py<PyAny>> = pyo3::sync::PyOnceLock::new();

/// `chakra.fields.DB_DEFAULT`: what a field with a database default holds until its
/// row is inserted.
fn db_default(py: Python<'_>) -> PyResult<&Bound<'_, PyAny>> {
    DB_DEFAULT
        .get_or_try_init(py, || py.import("chakra.fields")?.getattr("DB_DEFAULT").map(Bound::unbind))
        .map(|m| m.bind(py))
}

/// Where a row's columns hold a model's fields when a query loads only some of them
/// (`only()`, `defer()`): field `i` in column `columns[i]` (from the row's first of the
/// model's), or not loaded.
pub(crate) struct Layout {
    pub(crate) columns: Vec<Option<usize>>,
    /// How many fields are loaded: the annotations' columns follow them.
    pub(crate) loaded: usize,
}

static DEEPCOPY: pyo3::sync::PyOnceLock<Py<PyAny>> = pyo3::sync::PyOnceLock::new();

fn deepcopy(py: Python<'_>) -> PyResult<&Bound<'_, PyAny>> {
    DEEPCOPY.get_or_try_init(py, || py.import("copy")?.getattr("deepcopy").map(Bound::unbind)).map(|f| f.bind(py))
}

/// Stores `value` (or NULL) in the slot at `offset`, releasing the previous value.
///
/// # Safety
/// `obj` must have the layout the offset was read from.
unsafe fn replace_slot(obj: &Bound<'_, PyAny>, offset: isize, value: Option<Bound<'_, PyAny>>) {
    unsafe {
        let at = slot(obj.as_ptr(), offset);
        let old = *at;
        *at = value.map_or(std::ptr::null_mut(), Bound::into_ptr);
        if !old.is_null() {
            ffi::Py_DECREF(old);
        }
    }
}

impl Schema {
    /// Fails unless `obj` is exactly this schema's model (slots are read by offset).
    pub(crate) fn check(&self, obj: &Bound<'_, PyAny>) -> PyResult<()> {
        if obj.get_type().is(self.model.bind(obj.py())) {
            Ok(())
        } else {
            Err(PyTypeError::new_err(format!("expected a {} instance, got {}", self.name, obj.get_type().name()?)))
        }
    }

    /// `Model.field`, for messages.
    pub(crate) fn label(&self, field: usize) -> String {
        format!("{}.{}", self.name, self.fields[field].name)
    }

    /// The value of field `i` of `obj` (`None` if never set).
    pub(crate) fn get<'py>(&self, obj: &Bound<'py, PyAny>, i: usize) -> Bound<'py, PyAny> {
        // SAFETY: callers `check` the object first; a NULL slot is an unset attribute.
        unsafe {
            let value = *slot(obj.as_ptr(), self.offsets[i]);
            if value.is_null() {
                obj.py().None().into_bound(obj.py())
            } else {
                Bound::from_borrowed_ptr(obj.py(), value)
            }
        }
    }

    /// Whether field `i` of `obj` holds a value (a field a query left out does not).
    pub(crate) fn is_set(&self, obj: &Bound<'_, PyAny>, i: usize) -> bool {
        // SAFETY: as in `get`.
        unsafe { !(*slot(obj.as_ptr(), self.offsets[i])).is_null() }
    }

    fn loaded<'py>(&self, obj: &Bound<'py, PyAny>) -> Option<Bound<'py, PyTuple>> {
        // SAFETY: as in `get`; the slot only ever holds a tuple or NULL/None.
        unsafe {
            let value = *slot(obj.as_ptr(), self.loaded_offset);
            if value.is_null() {
                return None;
            }
            Bound::from_borrowed_ptr(obj.py(), value).cast_into::<PyTuple>().ok()
        }
    }

    /// Field `i` of `obj` converted for the database; an error for a field a query left
    /// out (and nothing set since), whose value is not known.
    pub(crate) fn value(&self, obj: &Bound<'_, PyAny>, i: usize) -> PyResult<Value> {
        if !self.is_set(obj, i) {
            return Err(crate::errors::new(
                obj.py(),
                "FieldError",
                format!(
                    "{} was not loaded (only() or defer() left it out): set it, or refresh the instance",
                    self.label(i)
                ),
            ));
        }
        let value = self.get(obj, i);
        if value.is(db_default(obj.py())?) {
            return Err(crate::errors::new(
                obj.py(),
                "FieldError",
                format!(
                    "{} holds DB_DEFAULT, which only an insert gives a value: set the field, or refresh the instance",
                    self.label(i)
                ),
            ));
        }
        self.written(i, &value)
    }

    /// `value` converted for field `i` to write, if the field takes it: a `DataError`
    /// naming the field and its choices otherwise.
    pub(crate) fn written(&self, i: usize, value: &Bound<'_, PyAny>) -> PyResult<Value> {
        let converted = to_value(value, &self.types[i], &self.label(i))?;
        match &self.choices[i] {
            Some((allowed, shown)) if !matches!(converted, Value::Null) && !allowed.contains(&converted) => {
                Err(crate::errors::new(
                    value.py(),
                    "DataError",
                    format!("{} takes one of its choices ({shown}), got {}", self.label(i), value.repr()?),
                ))
            }
            _ => Ok(converted),
        }
    }

    /// The fields an insert of `obj` leaves to the database: a generated key not given,
    /// and those holding [`DB_DEFAULT`](db_default).
    pub(crate) fn left_to_database(&self, obj: &Bound<'_, PyAny>) -> PyResult<Vec<usize>> {
        let default = db_default(obj.py())?;
        let mut left = Vec::new();
        for (i, field) in self.fields.iter().enumerate().filter(|(_, f)| f.generated || f.default.is_some()) {
            let value = self.get(obj, i);
            if (field.generated && value.is_none()) || (field.default.is_some() && value.is(default)) {
                left.push(i);
            }
        }
        Ok(left)
    }

    /// Indices of the fields changed since load; `None` for a never-saved object.
    pub(crate) fn changes(&self, obj: &Bound<'_, PyAny>) -> PyResult<Option<Vec<usize>>> {
        let Some(loaded) = self.loaded(obj) else {
            return Ok(None);
        };
        let mut changed = Vec::new();
        let not_loaded = not_loaded(obj.py())?;
        for i in 0..self.fields.len() {
            let current = self.get(obj, i);
            let before = loaded.get_item(i)?;
            // A field left out by the query counts as changed once it is set.
            if before.is(not_loaded) {
                if self.is_set(obj, i) {
                    changed.push(i);
                }
                continue;
            }
            if current.is(&before) {
                continue;
            }
            if !current.get_type().is(before.get_type()) || !current.eq(&before)? {
                changed.push(i);
            }
        }
        Ok(Some(changed))
    }

    /// Records `saved` (values taken when the write was planned) as the saved ones.
    pub(crate) fn set_saved(&self, obj: &Bound<'_, PyAny>, saved: Bound<'_, PyTuple>) -> PyResult<()> {
        self.check(obj)?;
        // SAFETY: checked above.
        unsafe { replace_slot(obj, self.loaded_offset, Some(saved.into_any())) };
        Ok(())
    }

    /// The current values, as a tuple to keep as the saved ones. JSON values are copied:
    /// a dict changed in place must still compare unequal to what was saved.
    pub(crate) fn saved_values<'py>(&self, obj: &Bound<'py, PyAny>) -> PyResult<Bound<'py, PyTuple>> {
        let py = obj.py();
        let values = (0..self.fields.len())
            .map(|i| {
                let value = self.get(obj, i);
                match self.types[i].kind {
                    _ if !self.is_set(obj, i) => Ok(not_loaded(py)?.clone()),
                    FieldKind::Json if !value.is_none() => deepcopy(py)?.call1((value,)),
                    _ => Ok(value),
                }
            })
            .collect::<PyResult<Vec<_>>>()?;
        PyTuple::new(py, values)
    }

    /// Records the current values as the saved ones.
    pub(crate) fn snapshot(&self, obj: &Bound<'_, PyAny>) -> PyResult<()> {
        let tuple = self.saved_values(obj)?;
        // SAFETY: callers `check` the object first.
        unsafe { replace_slot(obj, self.loaded_offset, Some(tuple.into_any())) };
        Ok(())
    }

    /// A new instance from a row whose columns are this model's fields, in order, then
    /// a queryset's annotations, or the instance `identity` already holds for the row's
    /// primary key.
    pub(crate) fn build<'py>(
        &self,
        py: Python<'py>,
        row: &Row,
        decoders: &[Decoder],
        identity: Option<&Bound<'py, PyDict>>,
    ) -> PyResult<Bound<'py, PyAny>> {
        self.build_at(py, row, 0, row.len(), decoders, identity, None)
    }

    /// [`build`](Self::build) from the columns `at..end` of a longer row (one with
    /// joined rows after the model's), the fields laid out as `layout` says (all of them,
    /// in order, if `None`).
    #[allow(clippy::too_many_arguments)] // the row, where in it, and how it is read
    pub(crate) fn build_at<'py>(
        &self,
        py: Python<'py>,
        row: &Row,
        at: usize,
        end: usize,
        decoders: &[Decoder],
        identity: Option<&Bound<'py, PyDict>>,
        layout: Option<&Layout>,
    ) -> PyResult<Bound<'py, PyAny>> {
        let pk = layout.map_or(Some(self.pk), |l| l.columns[self.pk]).expect("the primary key is always loaded");
        let key = decode(py, row, at + pk, &decoders[at + pk])?;
        let obj = self.instance(py, row, at, decoders, identity, key, layout)?;
        let fields = layout.map_or(self.fields.len(), |l| l.loaded);
        if end > at + fields {
            self.annotate(py, &obj, row, at + fields..end, decoders)?;
        }
        Ok(obj)
    }

    /// The instance of a row of raw SQL ([`crate::raw::raw_models`]): its fields where
    /// `layout` says, the columns `extra` as annotations.
    pub(crate) fn build_raw<'py>(
        &self,
        py: Python<'py>,
        row: &Row,
        decoders: &[Decoder],
        identity: Option<&Bound<'py, PyDict>>,
        (layout, extra): (&Layout, &[usize]),
    ) -> PyResult<Bound<'py, PyAny>> {
        let pk = layout.columns[self.pk].expect("raw rows hold the primary key");
        let key = decode(py, row, pk, &decoders[pk])?;
        let obj = self.instance(py, row, 0, decoders, identity, key, Some(layout))?;
        if !extra.is_empty() {
            self.annotate(py, &obj, row, extra.iter().copied(), decoders)?;
        }
        Ok(obj)
    }

    /// The instance of the joined row whose fields start at column `at`, or `None` when
    /// the join found no row (its primary key is NULL).
    pub(crate) fn build_joined<'py>(
        &self,
        py: Python<'py>,
        row: &Row,
        at: usize,
        decoders: &[Decoder],
        identity: Option<&Bound<'py, PyDict>>,
    ) -> PyResult<Option<Bound<'py, PyAny>>> {
        let key = decode(py, row, at + self.pk, &decoders[at + self.pk])?;
        match key.is_none() {
            true => Ok(None),
            false => self.instance(py, row, at, decoders, identity, key, None).map(Some),
        }
    }

    /// The instance for primary key `key`: `identity`'s (with the fields it lacks and the
    /// row holds filled in), or a new one filled from the row.
    #[allow(clippy::too_many_arguments)] // the row, where in it, and how it is read
    fn instance<'py>(
        &self,
        py: Python<'py>,
        row: &Row,
        at: usize,
        decoders: &[Decoder],
        identity: Option<&Bound<'py, PyDict>>,
        key: Bound<'py, PyAny>,
        layout: Option<&Layout>,
    ) -> PyResult<Bound<'py, PyAny>> {
        let Some(map) = identity else {
            return self.fill(py, None, row, at, decoders, Some(key), layout);
        };
        if let Some(existing) = map.get_item(&key)? {
            self.fill_unloaded(py, &existing, row, at, decoders, layout)?;
            return Ok(existing);
        }
        let obj = self.fill(py, None, row, at, decoders, Some(key.clone()), layout)?;
        map.set_item(key, &obj)?;
        Ok(obj)
    }

    /// Fills in the fields a query left out of `obj` that the row holds, as loaded; the
    /// fields `obj` has are kept as they are (changed or not), as a session's instance.
    fn fill_unloaded(
        &self,
        py: Python<'_>,
        obj: &Bound<'_, PyAny>,
        row: &Row,
        at: usize,
        decoders: &[Decoder],
        layout: Option<&Layout>,
    ) -> PyResult<()> {
        let Some(loaded) = self.loaded(obj) else { return Ok(()) };
        let not_loaded = not_loaded(py)?;
        let mut saved: Option<Vec<Bound<'_, PyAny>>> = None;
        for i in 0..self.fields.len() {
            let column = layout.map_or(Some(i), |l| l.columns[i]);
            let Some(column) = column.filter(|_| !self.is_set(obj, i)) else { continue };
            if !loaded.get_item(i)?.is(not_loaded) {
                continue;
            }
            let saved = match &mut saved {
                Some(saved) => saved,
                None => saved.insert(loaded.iter().collect()),
            };
            let value = decode(py, row, at + column, &decoders[at + column])?;
            saved[i] = match self.types[i].kind {
                FieldKind::Json if !value.is_none() => decode(py, row, at + column, &decoders[at + column])?,
                _ => value.clone(),
            };
            // SAFETY: `obj` came from this model's identity map.
            unsafe { replace_slot(obj, self.offsets[i], Some(value)) };
        }
        if let Some(saved) = saved {
            let saved = PyTuple::new(py, saved)?;
            // SAFETY: as above.
            unsafe { replace_slot(obj, self.loaded_offset, Some(saved.into_any())) };
        }
        Ok(())
    }

    /// The columns `columns` — a queryset's annotations — as a dict by name in the
    /// instance's `_chakra_annotations`, where `Model.__getattr__` finds them; the
    /// session's instance of the row gets the new values too.
    fn annotate(
        &self,
        py: Python<'_>,
        obj: &Bound<'_, PyAny>,
        row: &Row,
        columns: impl IntoIterator<Item = usize>,
        decoders: &[Decoder],
    ) -> PyResult<()> {
        let annotations = PyDict::new(py);
        for i in columns {
            annotations.set_item(row.columns()[i].name(), decode(py, row, i, &decoders[i])?)?;
        }
        obj.setattr(pyo3::intern!(py, "_chakra_annotations"), annotations)
    }

    /// Writes a row (its columns from `at` on, laid out as `layout` says) into `target`
    /// (or a new instance): every slot and the as-loaded tuple.
    #[allow(clippy::too_many_arguments)] // the row, where in it, and how it is read
    pub(crate) fn fill<'py>(
        &self,
        py: Python<'py>,
        target: Option<&Bound<'py, PyAny>>,
        row: &Row,
        at: usize,
        decoders: &[Decoder],
        pk: Option<Bound<'py, PyAny>>,
        layout: Option<&Layout>,
    ) -> PyResult<Bound<'py, PyAny>> {
        let n = self.fields.len();
        let obj = match target {
            Some(obj) => obj.clone(),
            None => self.alloc(py)?,
        };
        // SAFETY: `obj` is this model's instance (allocated here, or checked by callers);
        // PyTuple_New returns a tuple of `n` NULL items that SET_ITEM fills, each taking
        // a reference of its own.
        unsafe {
            let loaded = ffi::PyTuple_New(n as ffi::Py_ssize_t);
            if loaded.is_null() {
                return Err(PyErr::fetch(py));
            }
            let loaded = Bound::from_owned_ptr(py, loaded);
            for i in 0..n {
                let Some(column) = layout.map_or(Some(at + i), |l| l.columns[i].map(|c| at + c)) else {
                    ffi::PyTuple_SET_ITEM(loaded.as_ptr(), i as ffi::Py_ssize_t, not_loaded(py)?.clone().into_ptr());
                    replace_slot(&obj, self.offsets[i], None);
                    continue;
                };
                let decoder = &decoders[column];
                let value = match (&pk, i == self.pk) {
                    (Some(pk), true) => pk.clone(),
                    _ => decode(py, row, column, decoder)?,
                };
                // JSON arrives as mutable dicts and lists: the saved copy must be another
                // object, or a change made in place would compare equal to it.
                let saved = match self.types[i].kind {
                    FieldKind::Json if !value.is_none() => decode(py, row, column, decoder)?,
                    _ => value.clone(),
                };
                ffi::PyTuple_SET_ITEM(loaded.as_ptr(), i as ffi::Py_ssize_t, saved.into_ptr());
                replace_slot(&obj, self.offsets[i], Some(value));
            }
            replace_slot(&obj, self.loaded_offset, Some(loaded));
        }
        Ok(obj)
    }

    /// A new, empty instance (no `__init__`).
    fn alloc<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        let tp = self.model.as_ptr() as *mut ffi::PyTypeObject;
        // SAFETY: `tp` is a live heap type; tp_alloc returns a new reference or NULL with
        // an exception set.
        unsafe {
            let alloc = (*tp).tp_alloc.unwrap_or(ffi::PyType_GenericAlloc);
            let obj = alloc(tp, 0);
            if obj.is_null() {
                return Err(PyErr::fetch(py));
            }
            Ok(Bound::from_owned_ptr(py, obj))
        }
    }

    /// The field index of `name` (`pk` names the primary key).
    pub(crate) fn index_of(&self, name: &str) -> Option<usize> {
        if name == "pk" {
            return Some(self.pk);
        }
        self.fields.iter().position(|f| f.name == name)
    }
}
