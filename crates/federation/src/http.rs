//! The one HTTP client every provider call goes through.

use std::time::Duration;

/// How long a provider may take. A silent provider costs a request at
/// most `total` (the browser gets `provider_error`, a native app 503).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Timeouts {
    /// To open the TCP (and TLS) connection.
    pub connect: Duration,
    /// For the whole call: connecting, sending, and reading the answer.
    pub total: Duration,
}

impl Timeouts {
    /// `SOCIAL_TIMEOUT`: the total; connecting gets at most 5 s of it.
    pub fn from_total(total: Duration) -> Timeouts {
        Timeouts {
            connect: total.min(Duration::from_secs(5)),
            total,
        }
    }
}

pub(crate) fn client(timeouts: Timeouts) -> Result<reqwest::Client, String> {
    reqwest::Client::builder()
        // openidconnect's advice: a redirect followed on a back-channel call
        // is a server-side request forgery waiting to happen.
        .redirect(reqwest::redirect::Policy::none())
        .connect_timeout(timeouts.connect)
        .timeout(timeouts.total)
        // GitHub refuses API calls without one.
        .user_agent(concat!("latchkey/", env!("CARGO_PKG_VERSION")))
        .build()
        .map_err(|error| format!("the providers' HTTP client: {error}"))
}

/// A failed call, described without its body (which may hold a token).
pub(crate) fn describe(error: &reqwest::Error) -> String {
    if error.is_timeout() {
        "timed out".to_owned()
    } else if error.is_connect() {
        "could not connect".to_owned()
    } else if let Some(status) = error.status() {
        format!("answered {status}")
    } else if error.is_decode() {
        "answered something that is not the expected JSON".to_owned()
    } else {
        "the call failed".to_owned()
    }
}
