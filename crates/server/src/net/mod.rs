//! The network as the server sees it: who a request comes from.

pub mod client_ip;
