//! Models, the query AST and its dialect compilers. Not built yet: the Rust models land
//! with their own issue, on top of `chakra-layers`' `Pool`.
