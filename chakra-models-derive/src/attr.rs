//! The `#[chakra(...)]` options: their grammar, and errors that name the option at fault.
//!
//! Parsing collects every mistake it can recover from (an unknown or repeated option, a
//! value of the wrong kind) so one build reports them all; only a syntax error ends the
//! attribute it is in.

use syn::meta::ParseNestedMeta;
use syn::{Attribute, Expr, ExprLit, Lit, LitBool, LitStr, Path, Token};

/// Errors gathered while reading a struct, reported together.
#[derive(Default)]
pub(crate) struct Errors(Option<syn::Error>);

impl Errors {
    pub(crate) fn push(&mut self, error: syn::Error) {
        match &mut self.0 {
            Some(errors) => errors.combine(error),
            None => self.0 = Some(error),
        }
    }

    pub(crate) fn finish(self) -> syn::Result<()> {
        self.0.map_or(Ok(()), Err)
    }

    /// Every error so far and `last`, which ends the derive.
    pub(crate) fn fail(self, last: syn::Error) -> syn::Error {
        match self.0 {
            Some(mut errors) => {
                errors.combine(last);
                errors
            }
            None => last,
        }
    }
}

/// Options on the struct.
#[derive(Default)]
pub(crate) struct StructOptions {
    /// `table = "users"`.
    pub(crate) table: Option<LitStr>,
    /// `crate = "path"`: where the facade is, for crates that rename or re-export it.
    pub(crate) krate: Option<Path>,
}

const STRUCT_OPTIONS: &[&str] = &["table", "crate"];

impl StructOptions {
    pub(crate) fn parse(attrs: &[Attribute], errors: &mut Errors) -> Self {
        let mut options = StructOptions::default();
        each_option(attrs, STRUCT_OPTIONS, errors, |name, meta, errors| {
            match name {
                "table" => options.table = string(meta, "table = \"users\"", errors)?,
                "crate" => {
                    let Some(lit) = string(meta, "crate = \"my_app::chakra\"", errors)? else { return Ok(()) };
                    match lit.parse::<Path>() {
                        Ok(path) => options.krate = Some(path),
                        Err(_) => errors.push(syn::Error::new_spanned(
                            &lit,
                            format!("`crate` must be a path to the chakra crate, as in `crate = \"my_app::chakra\"`; `{}` is not a path", lit.value()),
                        )),
                    }
                }
                _ => unreachable!("`each_option` passes only names in STRUCT_OPTIONS"),
            }
            Ok(())
        });
        options
    }
}

/// Options on a field.
#[derive(Default)]
pub(crate) struct FieldOptions {
    /// `primary_key`: the word itself, for errors that point at it.
    pub(crate) primary_key: Option<Path>,
    /// `generated = true|false`, with the option's name for errors.
    pub(crate) generated: Option<(Path, bool)>,
    /// `column = "order"`.
    pub(crate) column: Option<LitStr>,
    /// `unique`, for `create_table`.
    pub(crate) unique: bool,
    /// `index`, for `create_table`.
    pub(crate) index: bool,
    /// `column_type = "varchar(100)"`, for `create_table`.
    pub(crate) column_type: Option<LitStr>,
    /// `references = "authors.id"`, for `create_table`.
    pub(crate) references: Option<LitStr>,
    /// `on_delete = "cascade"`, with `references`.
    pub(crate) on_delete: Option<LitStr>,
    /// `db_default = "now()"`, for `create_table`.
    pub(crate) db_default: Option<LitStr>,
    /// `check = "price >= 0"`, for `create_table`.
    pub(crate) check: Option<LitStr>,
}

const FIELD_OPTIONS: &[&str] = &[
    "primary_key",
    "generated",
    "column",
    "unique",
    "index",
    "column_type",
    "references",
    "on_delete",
    "db_default",
    "check",
];

impl FieldOptions {
    pub(crate) fn parse(attrs: &[Attribute], errors: &mut Errors) -> Self {
        let mut options = FieldOptions::default();
        each_option(attrs, FIELD_OPTIONS, errors, |name, meta, errors| {
            match name {
                "primary_key" => {
                    flag(meta, errors)?;
                    options.primary_key = Some(meta.path.clone());
                }
                "unique" => options.unique = flag(meta, errors)?,
                "index" => options.index = flag(meta, errors)?,
                "column_type" => options.column_type = string(meta, "column_type = \"varchar(100)\"", errors)?,
                "references" => options.references = string(meta, "references = \"authors.id\"", errors)?,
                "on_delete" => options.on_delete = string(meta, "on_delete = \"cascade\"", errors)?,
                "db_default" => options.db_default = string(meta, "db_default = \"now()\"", errors)?,
                "check" => options.check = string(meta, "check = \"price >= 0\"", errors)?,
                "generated" => {
                    if let Some(value) = boolean(meta, "generated = false", errors)? {
                        options.generated = Some((meta.path.clone(), value.value));
                    }
                }
                "column" => options.column = string(meta, "column = \"order\"", errors)?,
                _ => unreachable!("`each_option` passes only names in FIELD_OPTIONS"),
            }
            Ok(())
        });
        options
    }
}

/// Calls `option` once for each option of every `#[chakra(...)]` in `attrs` whose name is
/// in `valid` and not seen before; reports the others.
pub(crate) fn each_option(
    attrs: &[Attribute],
    valid: &[&'static str],
    errors: &mut Errors,
    mut option: impl FnMut(&'static str, &ParseNestedMeta, &mut Errors) -> syn::Result<()>,
) {
    let mut seen: Vec<&'static str> = Vec::new();
    for attr in attrs.iter().filter(|attr| attr.path().is_ident("chakra")) {
        let parsed = attr.parse_nested_meta(|meta| {
            let Some(name) = valid.iter().copied().find(|name| meta.path.is_ident(name)) else {
                errors.push(meta.error(format!(
                    "unknown chakra option `{}`; expected {}",
                    path_text(&meta.path),
                    one_of(valid)
                )));
                return skip_value(&meta);
            };
            if seen.contains(&name) {
                errors.push(meta.error(format!("`{name}` is given more than once")));
                return skip_value(&meta);
            }
            seen.push(name);
            option(name, &meta, errors)
        });
        if let Err(error) = parsed {
            errors.push(error);
        }
    }
}

/// An option that is a word alone (`primary_key`, `unique`); reports a value given to it.
fn flag(meta: &ParseNestedMeta, errors: &mut Errors) -> syn::Result<bool> {
    if meta.input.peek(Token![=]) {
        let name = path_text(&meta.path);
        errors.push(meta.error(format!("`{name}` takes no value: write `#[chakra({name})]`")));
        skip_value(meta)?;
    }
    Ok(true)
}

/// The string value of `name = "..."`; `None` after reporting a value of another kind.
pub(crate) fn string(meta: &ParseNestedMeta, example: &str, errors: &mut Errors) -> syn::Result<Option<LitStr>> {
    let Some(value) = value(meta, "a string", example, errors)? else { return Ok(None) };
    match literal(&value) {
        Some(Lit::Str(lit)) if lit.value().is_empty() => {
            errors.push(syn::Error::new_spanned(lit, format!("`{}` must not be empty", path_text(&meta.path))));
            Ok(None)
        }
        Some(Lit::Str(lit)) => Ok(Some(lit.clone())),
        _ => {
            errors.push(wrong_kind(meta, &value, "a string", example));
            Ok(None)
        }
    }
}

/// The value of `name = true|false`; `None` after reporting a value of another kind.
fn boolean(meta: &ParseNestedMeta, example: &str, errors: &mut Errors) -> syn::Result<Option<LitBool>> {
    let Some(value) = value(meta, "`true` or `false`", example, errors)? else { return Ok(None) };
    if let Some(Lit::Bool(lit)) = literal(&value) {
        return Ok(Some(lit.clone()));
    }
    errors.push(wrong_kind(meta, &value, "`true` or `false`", example));
    Ok(None)
}

/// The expression after `name =`; `None` after reporting that the `=` is missing.
fn value(meta: &ParseNestedMeta, kind: &str, example: &str, errors: &mut Errors) -> syn::Result<Option<Expr>> {
    if !meta.input.peek(Token![=]) {
        errors.push(meta.error(format!("`{}` needs {kind}, as in `{example}`", path_text(&meta.path))));
        skip_value(meta)?;
        return Ok(None);
    }
    Ok(Some(meta.value()?.parse()?))
}

fn literal(expr: &Expr) -> Option<&Lit> {
    match expr {
        Expr::Lit(ExprLit { lit, .. }) => Some(lit),
        // A literal passed through a `macro_rules!` fragment arrives in an invisible group.
        Expr::Group(group) => literal(&group.expr),
        _ => None,
    }
}

fn wrong_kind(meta: &ParseNestedMeta, value: &Expr, kind: &str, example: &str) -> syn::Error {
    syn::Error::new_spanned(value, format!("`{}` takes {kind}, as in `{example}`", path_text(&meta.path)))
}

/// Steps over whatever follows an option's name — `= expr` or `(...)` — so the options
/// after it are still read.
fn skip_value(meta: &ParseNestedMeta) -> syn::Result<()> {
    if meta.input.peek(Token![=]) {
        meta.value()?.parse::<Expr>()?;
    } else if meta.input.peek(syn::token::Paren) {
        meta.input.parse::<proc_macro2::TokenTree>()?;
    }
    Ok(())
}

fn path_text(path: &Path) -> String {
    let segments: Vec<String> = path.segments.iter().map(|s| s.ident.to_string()).collect();
    segments.join("::")
}

/// "`a` or `b`", "one of `a`, `b`, `c`".
fn one_of(names: &[&str]) -> String {
    let quoted: Vec<String> = names.iter().map(|n| format!("`{n}`")).collect();
    match quoted.as_slice() {
        [a] => a.clone(),
        [a, b] => format!("{a} or {b}"),
        _ => format!("one of {}", quoted.join(", ")),
    }
}
