//! The HTTP edge, above the flows: the middleware and what reads a request
//! into the plain data a flow takes (the handlers and the route table are
//! `crate::routes`, their description `crate::openapi`).

pub mod authn;
pub mod extract;
pub mod middleware;
pub mod origin;
