//! `#[derive(SqlEnum)]`: a Rust enum of unit variants stored as a text column, each variant
//! as its own text (its name in snake_case, or `#[chakra(value = "...")]`).

use proc_macro2::TokenStream;
use quote::quote;
use syn::{Data, DeriveInput, Fields, LitStr, Path};

use crate::attr::{each_option, string, Errors};

/// The enum being derived, with each variant's text.
pub(crate) struct EnumInput {
    ident: syn::Ident,
    krate: Path,
    variants: Vec<(syn::Ident, String)>,
}

impl EnumInput {
    pub(crate) fn from_derive(input: DeriveInput) -> syn::Result<Self> {
        let mut errors = Errors::default();
        let mut krate: Option<Path> = None;
        each_option(&input.attrs, &["crate"], &mut errors, |_, meta, errors| {
            if let Some(lit) = string(meta, "crate = \"my_app::chakra\"", errors)? {
                match lit.parse::<Path>() {
                    Ok(path) => krate = Some(path),
                    Err(_) => errors.push(syn::Error::new_spanned(&lit, "`crate` must be a path to the chakra crate")),
                }
            }
            Ok(())
        });
        if !input.generics.params.is_empty() {
            errors.push(syn::Error::new_spanned(&input.generics, "#[derive(SqlEnum)] takes an enum without generics"));
        }
        let Data::Enum(data) = input.data else {
            return Err(errors.fail(syn::Error::new_spanned(
                &input.ident,
                "#[derive(SqlEnum)] takes an enum of unit variants, stored as text",
            )));
        };
        let mut variants: Vec<(syn::Ident, String)> = Vec::with_capacity(data.variants.len());
        for variant in data.variants {
            if !matches!(variant.fields, Fields::Unit) {
                errors.push(syn::Error::new_spanned(
                    &variant.fields,
                    format!("`{}` holds data; a variant stored as text is a unit variant", variant.ident),
                ));
            }
            let mut value: Option<LitStr> = None;
            each_option(&variant.attrs, &["value"], &mut errors, |_, meta, errors| {
                value = string(meta, "value = \"in_progress\"", errors)?;
                Ok(())
            });
            let text = value.as_ref().map_or_else(|| snake_case(&variant.ident.to_string()), LitStr::value);
            if let Some((other, _)) = variants.iter().find(|(_, t)| *t == text) {
                let at = value.as_ref().map_or_else(|| variant.ident.span(), LitStr::span);
                errors.push(syn::Error::new(at, format!("`{text}` is already the text of `{other}`")));
            }
            variants.push((variant.ident, text));
        }
        if variants.is_empty() {
            errors.push(syn::Error::new_spanned(&input.ident, "#[derive(SqlEnum)] needs at least one variant"));
        }
        errors.finish()?;
        let krate = krate.unwrap_or_else(|| syn::parse_quote!(::chakra));
        Ok(EnumInput { ident: input.ident, krate, variants })
    }
}

/// `InProgress` → `in_progress`.
fn snake_case(name: &str) -> String {
    let mut out = String::with_capacity(name.len() + 4);
    for (i, c) in name.chars().enumerate() {
        if c.is_uppercase() && i > 0 {
            out.push('_');
        }
        out.extend(c.to_lowercase());
    }
    out
}

pub(crate) fn expand(input: &EnumInput) -> TokenStream {
    let EnumInput { ident, krate, variants } = input;
    let name = ident.to_string();
    let models = quote!(#krate::models);
    let texts: Vec<&String> = variants.iter().map(|(_, text)| text).collect();
    let idents: Vec<&syn::Ident> = variants.iter().map(|(variant, _)| variant).collect();
    quote! {
        const _: () = {
            use #models::text_enum as support;

            #[automatically_derived]
            impl #ident {
                /// Every variant's text, in declaration order.
                pub const VALUES: &'static [&'static str] = &[#(#texts),*];

                /// The text this variant is stored as.
                pub fn as_str(&self) -> &'static str {
                    match self { #(Self::#idents => #texts),* }
                }
            }

            #[automatically_derived]
            impl ::core::str::FromStr for #ident {
                type Err = #krate::Error;

                fn from_str(text: &str) -> ::core::result::Result<Self, #krate::Error> {
                    match text {
                        #(#texts => ::core::result::Result::Ok(Self::#idents),)*
                        other => ::core::result::Result::Err(support::unknown(#name, other, Self::VALUES)),
                    }
                }
            }

            #[automatically_derived]
            impl ::core::convert::From<#ident> for #krate::Value {
                fn from(value: #ident) -> Self {
                    #krate::Value::Text(::std::string::ToString::to_string(value.as_str()))
                }
            }

            #[automatically_derived]
            impl support::ToSql for #ident {
                fn to_sql(&self, ty: &support::Type, out: &mut support::BytesMut) -> support::Written {
                    support::ToSql::to_sql(&self.as_str(), ty, out)
                }

                fn accepts(ty: &support::Type) -> bool {
                    <&str as support::ToSql>::accepts(ty)
                }

                fn to_sql_checked(&self, ty: &support::Type, out: &mut support::BytesMut) -> support::Written {
                    support::ToSql::to_sql_checked(&self.as_str(), ty, out)
                }
            }

            #[automatically_derived]
            impl<'a> support::FromSql<'a> for #ident {
                fn from_sql(ty: &support::Type, raw: &'a [u8]) -> support::Read<Self> {
                    let text = <&str as support::FromSql>::from_sql(ty, raw)?;
                    ::core::result::Result::Ok(text.parse::<Self>()?)
                }

                fn accepts(ty: &support::Type) -> bool {
                    <&str as support::FromSql>::accepts(ty)
                }
            }

            #[automatically_derived]
            impl #models::SqlType for #ident {
                const SQL_TYPE: &'static str = "text";
                const ARRAY_TYPE: support::Type = support::Type::TEXT_ARRAY;
                type Wire = Self;

                fn from_wire(wire: Self) -> Self {
                    wire
                }
            }
        };
    }
}
