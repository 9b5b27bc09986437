//! The code `#[derive(Model)]` writes: the `Model` impl and one column accessor per field.

use proc_macro2::TokenStream;
use quote::{quote, quote_spanned};
use syn::spanned::Spanned;
use syn::LitStr;

use crate::input::ModelInput;

pub(crate) fn expand(model: &ModelInput) -> TokenStream {
    let model_impl = model_impl(model);
    let accessors = accessors(model);
    quote! {
        #model_impl
        #accessors
    }
}

fn model_impl(model: &ModelInput) -> TokenStream {
    let ModelInput { ident, krate, table, fields, primary_key } = model;
    let models = quote!(#krate::models);

    // Every use of a field's type is spanned at the type, so an unsupported one is reported
    // there ("the trait `SqlType` is not implemented for ...") rather than at the derive.
    let field_infos = fields.iter().enumerate().map(|(index, field)| {
        let (name, column, ty) = (&field.name, &field.column, &field.ty);
        let info = quote_spanned! {ty.span()=>
            #models::FieldInfo::new(
                #name,
                #column,
                <#ty as #models::SqlType>::SQL_TYPE,
                <#ty as #models::SqlType>::NULLABLE,
            )
        };
        if index == *primary_key {
            let generated = field.generated;
            quote!(#info.primary_key(#generated))
        } else {
            info
        }
    });

    let decoded = fields.iter().enumerate().map(|(index, field)| {
        let (ident, name, ty) = (&field.ident, &field.name, &field.ty);
        let decode = quote_spanned! {ty.span()=>
            #models::decode::<#ty>(row, #index, <Self as #krate::Model>::TABLE, #name)?
        };
        quote!(#ident: #decode)
    });

    let value_of = |field: &crate::input::FieldInput| {
        let (ident, ty) = (&field.ident, &field.ty);
        quote_spanned! {ty.span()=>
            <#krate::Value as ::core::convert::From<#ty>>::from(::core::clone::Clone::clone(&self.#ident))
        }
    };
    let values = fields.iter().map(value_of);
    let key_value = value_of(&fields[*primary_key]);

    quote! {
        #[automatically_derived]
        impl #krate::Model for #ident {
            const TABLE: &'static str = #table;
            const FIELDS: &'static [#models::FieldInfo] = &[#(#field_infos),*];
            const PRIMARY_KEY: usize = #primary_key;

            fn from_row(row: &#krate::Row) -> #krate::Result<Self> {
                ::core::result::Result::Ok(Self { #(#decoded),* })
            }

            fn to_values(&self) -> ::std::vec::Vec<#krate::Value> {
                ::std::vec![#(#values),*]
            }

            fn primary_key(&self) -> #krate::Value {
                #key_value
            }

            fn statements() -> &'static #models::ModelSql {
                static SQL: ::std::sync::OnceLock<#models::ModelSql> = ::std::sync::OnceLock::new();
                SQL.get_or_init(|| #models::ModelSql::new::<Self>(&#models::Postgres))
            }
        }
    }
}

fn accessors(model: &ModelInput) -> TokenStream {
    let ModelInput { ident: model_ident, krate, table, fields, .. } = model;
    let accessors = fields.iter().map(|field| {
        let (vis, ident, ty, column) = (&field.vis, &field.ident, &field.ty, &field.column);
        let doc = if field.name == field.column {
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
    });
    quote! {
        // Accessors of private fields may go unused, like the fields themselves.
        #[allow(dead_code)]
        impl #model_ident {
            #(#accessors)*
        }
    }
}
