//! What latchkey tells its operators: the log (env_logger, one line per
//! request) and the Prometheus metrics at `/metrics`.

pub mod logging;
pub mod metrics;

pub use logging::init_logging;
pub use metrics::{Metrics, Readings};
