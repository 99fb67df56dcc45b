//! Caching whole responses: which may be stored ([`policy`]) and under
//! which key ([`key`]).

pub mod key;
pub mod policy;
