//! The struct being derived, checked and reduced to what the expansion needs.

use quote::quote;
use syn::ext::IdentExt;
use syn::punctuated::Punctuated;
use syn::{Data, DeriveInput, Field, Fields, Ident, LitStr, Path, Token, Type, Visibility};

use crate::attr::{Errors, FieldOptions, StructOptions};

/// `Model`'s provided methods. A field with one of these names would get an accessor
/// that shadows the method (`User::get()` would be a column, not a lookup).
const RESERVED: &[&str] = &[
    "query",
    "get",
    "insert",
    "update",
    "delete",
    "save",
    "insert_all",
    "insert_many",
    "update_many",
    "column_array",
    "field_value",
    "statements",
    "from_row",
    "from_row_at",
    "to_values",
    "primary_key",
    "create_table",
    "drop_table",
];

/// A struct that can be a model.
pub(crate) struct ModelInput {
    pub(crate) ident: Ident,
    /// The facade's path: `::chakra` unless `#[chakra(crate = "...")]` says otherwise.
    pub(crate) krate: Path,
    pub(crate) table: String,
    pub(crate) fields: Vec<FieldInput>,
    /// Index of the primary key in `fields`.
    pub(crate) primary_key: usize,
}

pub(crate) struct FieldInput {
    /// As written, `r#` included.
    pub(crate) ident: Ident,
    /// As Rust code spells it everywhere else: without `r#`.
    pub(crate) name: String,
    pub(crate) column: String,
    pub(crate) vis: Visibility,
    pub(crate) ty: Type,
    /// The database fills it in (only ever true for the primary key).
    pub(crate) generated: bool,
    /// What `create_table` makes of the column beyond its type.
    pub(crate) ddl: ColumnDdl,
}

/// The `create_table` options of a field.
#[derive(Default)]
pub(crate) struct ColumnDdl {
    pub(crate) unique: bool,
    pub(crate) index: bool,
    pub(crate) column_type: Option<LitStr>,
    /// The referenced table and column, and the `OnDelete` variant, spanned at the option.
    pub(crate) references: Option<(String, String, Ident)>,
    /// The column's `DEFAULT`, as SQL.
    pub(crate) db_default: Option<LitStr>,
    /// The column's `CHECK` condition, as SQL.
    pub(crate) check: Option<LitStr>,
}

/// `on_delete`'s values, as `OnDelete::parse` reads them, and their variants.
const ON_DELETE: &[(&str, &str)] = &[
    ("no action", "NoAction"),
    ("restrict", "Restrict"),
    ("cascade", "Cascade"),
    ("set null", "SetNull"),
    ("set default", "SetDefault"),
];

impl ModelInput {
    /// Checks `input`, reporting every problem found at the token that causes it.
    pub(crate) fn from_derive(input: DeriveInput) -> syn::Result<Self> {
        let mut errors = Errors::default();
        let options = StructOptions::parse(&input.attrs, &mut errors);

        if !input.generics.params.is_empty() || input.generics.where_clause.is_some() {
            errors.push(syn::Error::new_spanned(
                &input.generics,
                "#[derive(Model)] does not support generic structs yet; give the model concrete field types",
            ));
        }

        let named = match named_fields(input.data, &input.ident) {
            Ok(named) => named,
            Err(error) => return Err(errors.fail(error)),
        };

        let mut fields: Vec<FieldInput> = Vec::with_capacity(named.len());
        let mut primary_key: Option<usize> = None;
        for field in named {
            let (field, key) = FieldInput::read(field, &fields, &mut errors);
            if let Some(word) = key {
                match primary_key {
                    Some(first) => errors.push(syn::Error::new_spanned(
                        word,
                        format!(
                            "`{}` is already the primary key; a model has exactly one (composite keys are not supported)",
                            fields[first].name
                        ),
                    )),
                    None => primary_key = Some(fields.len()),
                }
            }
            fields.push(field);
        }

        let Some(primary_key) = primary_key else {
            return Err(errors.fail(syn::Error::new_spanned(
                &input.ident,
                format!("model `{}` has no primary key; mark its key field with `#[chakra(primary_key)]`", input.ident),
            )));
        };
        errors.finish()?;

        let table = match options.table {
            Some(lit) => lit.value(),
            None => snake_case(&input.ident.unraw().to_string()),
        };
        let krate = options.krate.unwrap_or_else(|| syn::parse_quote!(::chakra));
        Ok(ModelInput { ident: input.ident, krate, table, fields, primary_key })
    }
}

impl FieldInput {
    /// Reads one field, checking it against the fields before it; also returns its
    /// `primary_key` option, if any.
    fn read(field: Field, before: &[FieldInput], errors: &mut Errors) -> (Self, Option<Path>) {
        let options = FieldOptions::parse(&field.attrs, errors);
        let ident = field.ident.expect("named fields have names");
        let name = ident.unraw().to_string();

        if RESERVED.contains(&name.as_str()) {
            errors.push(syn::Error::new_spanned(
                &ident,
                format!(
                    "a field named `{name}` would hide `Model::{name}` behind its column accessor; \
                     rename the field and keep the column with `#[chakra(column = \"{name}\")]`"
                ),
            ));
        }

        let column = options.column.as_ref().map_or_else(|| name.clone(), LitStr::value);
        if let Some(other) = before.iter().find(|f| f.column == column) {
            let culprit = options.column.as_ref().map_or_else(|| ident.span(), LitStr::span);
            errors.push(syn::Error::new(
                culprit,
                format!("column `{column}` is already the column of field `{}`", other.name),
            ));
        }

        let generated = match (&options.primary_key, options.generated) {
            (Some(_), Some((_, generated))) => generated,
            (Some(_), None) => is_integer_key(&field.ty),
            (None, Some((word, _))) => {
                errors.push(syn::Error::new_spanned(
                    word,
                    "`generated` applies only to the primary key: `#[chakra(primary_key, generated = false)]`",
                ));
                false
            }
            (None, None) => false,
        };

        let ddl = ColumnDdl {
            unique: options.unique,
            index: options.index,
            column_type: options.column_type,
            references: references(options.references, options.on_delete, errors),
            db_default: options.db_default,
            check: options.check,
        };
        (FieldInput { ident, name, column, vis: field.vis, ty: field.ty, generated, ddl }, options.primary_key)
    }
}

/// `references = "table.column"` and its `on_delete`, checked.
fn references(
    target: Option<LitStr>,
    on_delete: Option<LitStr>,
    errors: &mut Errors,
) -> Option<(String, String, Ident)> {
    let variant = match &on_delete {
        None => "NoAction",
        Some(lit) => {
            let name = lit.value().to_ascii_lowercase().replace('_', " ");
            match ON_DELETE.iter().find(|(n, _)| *n == name) {
                Some((_, variant)) => variant,
                None => {
                    let names: Vec<String> = ON_DELETE.iter().map(|(n, _)| format!("`{n}`")).collect();
                    errors.push(syn::Error::new_spanned(
                        lit,
                        format!("`on_delete` is one of {}; not `{}`", names.join(", "), lit.value()),
                    ));
                    "NoAction"
                }
            }
        }
    };
    let Some(target) = target else {
        if let Some(lit) = on_delete {
            errors.push(syn::Error::new_spanned(
                lit,
                "`on_delete` goes with `references`: `#[chakra(references = \"authors.id\", on_delete = \"cascade\")]`",
            ));
        }
        return None;
    };
    let value = target.value();
    match value.split_once('.') {
        Some((table, column)) if !table.is_empty() && !column.is_empty() && !column.contains('.') => {
            let span = on_delete.as_ref().map_or_else(|| target.span(), LitStr::span);
            Some((table.to_owned(), column.to_owned(), Ident::new(variant, span)))
        }
        _ => {
            errors.push(syn::Error::new_spanned(
                &target,
                format!(
                    "`references` names a table and its column, as in `references = \"authors.id\"`; not `{value}`"
                ),
            ));
            None
        }
    }
}

/// The fields of a struct with named fields; an error at the declaration otherwise.
fn named_fields(data: Data, ident: &Ident) -> syn::Result<Punctuated<Field, Token![,]>> {
    match data {
        Data::Struct(data) => match data.fields {
            Fields::Named(fields) => Ok(fields.named),
            Fields::Unnamed(fields) => Err(syn::Error::new_spanned(
                fields,
                "#[derive(Model)] needs named fields, one per column: `struct User { id: i64, ... }`",
            )),
            Fields::Unit => Err(syn::Error::new_spanned(
                ident,
                "#[derive(Model)] needs a struct with named fields, one per column: `struct User { id: i64, ... }`",
            )),
        },
        Data::Enum(data) => {
            let keyword = data.enum_token;
            Err(syn::Error::new_spanned(
                quote!(#keyword #ident),
                "#[derive(Model)] works on structs with named fields, not enums",
            ))
        }
        Data::Union(data) => {
            let keyword = data.union_token;
            Err(syn::Error::new_spanned(
                quote!(#keyword #ident),
                "#[derive(Model)] works on structs with named fields, not unions",
            ))
        }
    }
}

/// `i16`, `i32` or `i64`: a key the database generates (identity or serial) unless told
/// otherwise. Judged by spelling, so a type alias of `i64` needs `generated = true`.
fn is_integer_key(ty: &Type) -> bool {
    match ty {
        Type::Path(path) if path.qself.is_none() => path
            .path
            .segments
            .last()
            .is_some_and(|last| last.arguments.is_empty() && ["i16", "i32", "i64"].iter().any(|t| last.ident == t)),
        Type::Group(group) => is_integer_key(&group.elem),
        _ => false,
    }
}

/// `UserProfile` → `user_profile`, `HTTPRequest` → `http_request`.
fn snake_case(name: &str) -> String {
    let chars: Vec<char> = name.chars().collect();
    let mut out = String::with_capacity(name.len() + 4);
    for (i, &c) in chars.iter().enumerate() {
        if c.is_uppercase() {
            let after_lower = i > 0 && (chars[i - 1].is_lowercase() || chars[i - 1].is_ascii_digit());
            let ends_acronym =
                i > 0 && chars[i - 1].is_uppercase() && chars.get(i + 1).is_some_and(|n| n.is_lowercase());
            if after_lower || ends_acronym {
                out.push('_');
            }
            out.extend(c.to_lowercase());
        } else {
            out.push(c);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_table_is_the_struct_name_in_snake_case() {
        assert_eq!(snake_case("User"), "user");
        assert_eq!(snake_case("UserProfile"), "user_profile");
        assert_eq!(snake_case("HTTPRequest"), "http_request");
        assert_eq!(snake_case("Order2Item"), "order2_item");
        assert_eq!(snake_case("already_snake"), "already_snake");
    }

    #[test]
    fn only_plain_integer_keys_default_to_generated() {
        let generated = |ty: &str| is_integer_key(&syn::parse_str(ty).unwrap());
        assert!(generated("i64"));
        assert!(generated("std::primitive::i32"));
        assert!(!generated("uuid::Uuid"));
        assert!(!generated("Option<i64>"));
        assert!(!generated("String"));
    }
}
