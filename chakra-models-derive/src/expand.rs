//! The code `#[derive(Model)]` writes: the `Model` impl and one column accessor per field.
//!
//! An unsupported field type must be reported once, at the type. So every use of a field's
//! type is spanned at it, and goes through one private trait, `ChakraField`, implemented
//! for every `SqlType`: whichever body rustc checks, the error is the same — "the trait
//! `SqlType` is not implemented for `X`" at `X`, required for `X` to implement
//! `ChakraField` — and rustc prints identical errors once. Using `SqlType`'s constants or
//! `Value::from` directly would add a second error about `Into<Value>` (its supertrait).

use proc_macro2::TokenStream;
use quote::{quote, quote_spanned};
use syn::spanned::Spanned;
use syn::LitStr;

use crate::input::{FieldInput, ModelInput};

pub(crate) fn expand(model: &ModelInput) -> TokenStream {
    let ModelInput { ident, krate, table, fields, primary_key } = model;
    let models = quote!(#krate::models);

    let field_infos = fields.iter().enumerate().map(|(index, field)| {
        let (name, column, ty) = (&field.name, &field.column, &field.ty);
        let info = quote_spanned! {ty.span()=>
            #models::FieldInfo::new(#name, #column, <#ty as ChakraField>::SQL_TYPE, <#ty as ChakraField>::NULLABLE)
        };
        let mut info = if index == *primary_key {
            let generated = field.generated;
            quote!(#info.primary_key(#generated))
        } else {
            info
        };
        let ddl = &field.ddl;
        if ddl.unique {
            info = quote!(#info.unique());
        }
        if ddl.index {
            info = quote!(#info.indexed());
        }
        if let Some(column_type) = &ddl.column_type {
            info = quote!(#info.column_type(#column_type));
        }
        if let Some((table, column, on_delete)) = &ddl.references {
            info = quote!(#info.references(#table, #column, #models::OnDelete::#on_delete));
        }
        if let Some(default) = &ddl.db_default {
            info = quote!(#info.db_default(#default));
        }
        if let Some(check) = &ddl.check {
            info = quote!(#info.check(#check));
        }
        info
    });

    let decoded = fields.iter().enumerate().map(|(index, field)| {
        let (ident, name, ty) = (&field.ident, &field.name, &field.ty);
        let decode = quote_spanned!(ty.span()=> <#ty as ChakraField>::decode);
        quote!(#ident: #decode(row, at + #index, <Self as #krate::Model>::TABLE, #name)?)
    });

    let value_of = |field: &FieldInput| {
        let (ident, ty) = (&field.ident, &field.ty);
        let value = quote_spanned!(ty.span()=> <#ty as ChakraField>::value);
        quote!(#value(&self.#ident))
    };
    let values = fields.iter().map(value_of);
    let key_value = value_of(&fields[*primary_key]);
    let field_values = fields.iter().enumerate().map(|(index, field)| {
        let value = value_of(field);
        quote!(#index => #value)
    });
    let arrays = fields.iter().enumerate().map(|(index, field)| {
        let (ident, name, ty) = (&field.ident, &field.name, &field.ty);
        let array = quote_spanned!(ty.span()=> <#ty as ChakraField>::array);
        let table = quote!(<Self as #krate::Model>::TABLE);
        quote!(#index => #array(rows.iter().map(|row| &row.#ident).collect(), #table, #name))
    });

    let accessors = fields.iter().map(|field| accessor(model, field));

    quote! {
        const _: () = {
            /// What the model needs of a field's type; see `SqlType`.
            #[diagnostic::on_unimplemented(
                message = "`{Self}` cannot be the type of a model field",
                label = "not a column type",
                note = "the supported types are listed at `chakra::models::SqlType`; an `Option` of one is a nullable column"
            )]
            trait ChakraField {
                const SQL_TYPE: &'static str;
                const NULLABLE: bool;
                fn value(&self) -> #krate::Value;
                fn decode(row: &#krate::Row, index: usize, model: &str, field: &str) -> #krate::Result<Self>
                where
                    Self: Sized;
                fn array(values: ::std::vec::Vec<&Self>, model: &str, field: &str) -> #krate::Result<#krate::Value>;
            }

            impl<T: #models::SqlType> ChakraField for T {
                const SQL_TYPE: &'static str = <T as #models::SqlType>::SQL_TYPE;
                const NULLABLE: bool = <T as #models::SqlType>::NULLABLE;
                fn value(&self) -> #krate::Value {
                    ::core::convert::Into::into(::core::clone::Clone::clone(self))
                }
                fn decode(row: &#krate::Row, index: usize, model: &str, field: &str) -> #krate::Result<Self> {
                    #models::decode::<T>(row, index, model, field)
                }
                fn array(values: ::std::vec::Vec<&Self>, model: &str, field: &str) -> #krate::Result<#krate::Value> {
                    #models::encode_array::<T>(values, model, field)
                }
            }

            #[automatically_derived]
            impl #krate::Model for #ident {
                const TABLE: &'static str = #table;
                const FIELDS: &'static [#models::FieldInfo] = &[#(#field_infos),*];
                const PRIMARY_KEY: usize = #primary_key;

                fn from_row_at(row: &#krate::Row, at: usize) -> #krate::Result<Self> {
                    ::core::result::Result::Ok(Self { #(#decoded),* })
                }

                fn to_values(&self) -> ::std::vec::Vec<#krate::Value> {
                    ::std::vec![#(#values),*]
                }

                fn primary_key(&self) -> #krate::Value {
                    #key_value
                }

                fn field_value(&self, field: usize) -> #krate::Value {
                    match field {
                        #(#field_values,)*
                        _ => ::core::panic!("`{}` has no field number {field}", <Self as #krate::Model>::TABLE),
                    }
                }

                fn column_array(rows: &[Self], field: usize) -> #krate::Result<#krate::Value> {
                    match field {
                        #(#arrays,)*
                        _ => ::core::result::Result::Err(#krate::Error::new(
                            #krate::ErrorKind::Field,
                            ::std::format!("`{}` has no field number {field}", <Self as #krate::Model>::TABLE),
                        )),
                    }
                }

                fn statements() -> &'static #models::ModelSql {
                    static SQL: ::std::sync::OnceLock<#models::ModelSql> = ::std::sync::OnceLock::new();
                    SQL.get_or_init(|| #models::ModelSql::new::<Self>(&#models::Postgres))
                }
            }
        };

        // Accessors of private fields may go unused, like the fields themselves.
        #[allow(dead_code)]
        impl #ident {
            #(#accessors)*
        }
    }
}

/// `User::name()`: the typed handle of the field's column.
fn accessor(model: &ModelInput, field: &FieldInput) -> TokenStream {
    let ModelInput { ident: model_ident, krate, table, .. } = model;
    let (vis, ident, ty, column) = (&field.vis, &field.ident, &field.ty, &field.column);
    let doc = if field.name == *column {
        format!(" The `{column}` column of `{table}`, to filter, order and update by.")
    } else {
        format!(" The `{column}` column of `{table}` (field `{}`), to filter, order and update by.", field.name)
    };
    let column = LitStr::new(column, ident.span());
    quote! {
        #[doc = #doc]
        #vis fn #ident() -> #krate::models::Column<#model_ident, #ty> {
            #krate::models::Column::new(#column)
        }
    }
}
