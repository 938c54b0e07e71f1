//! Who may read `/metrics`: `METRICS`, `METRICS_TOKEN`, `METRICS_BIND`.
//!
//! Its email counters tell whether a password reset found an account, so in
//! production it is never public: it is served behind a bearer token, or on
//! a listen address of its own (the operator's network), or not at all.

use super::env::{Reader, Secret, SettingsError, bad};

/// Where `/metrics` is served.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MetricsListen {
    /// Nowhere: every address answers 404 (`METRICS=false`, or production
    /// with neither `METRICS_TOKEN` nor `METRICS_BIND`).
    Nowhere,
    /// On the API's address.
    ApiAddress,
    /// Only on `METRICS_BIND`; the API's address answers 404.
    Own(String),
}

#[derive(Debug, Clone)]
pub struct MetricsSettings {
    pub listen: MetricsListen,
    /// `METRICS_TOKEN`: when set, `/metrics` answers only to
    /// `Authorization: Bearer <METRICS_TOKEN>` (401 otherwise), wherever it
    /// is served.
    pub token: Option<Secret>,
}

impl MetricsSettings {
    pub(super) fn read(
        env: &Reader<'_>,
        production: bool,
        notices: &mut Vec<String>,
    ) -> Result<Self, SettingsError> {
        let enabled = env.boolean("METRICS", true)?;
        let token = env.raw("METRICS_TOKEN").map(|t| Secret(t.into_bytes()));
        let bind = env.raw("METRICS_BIND");
        if let Some(bind) = &bind
            && bind
                .rsplit_once(':')
                .is_none_or(|(_, port)| port.parse::<u16>().is_err())
        {
            return Err(bad("METRICS_BIND", bind, "host:port, e.g. 127.0.0.1:9100"));
        }
        let listen = match (enabled, bind) {
            (false, bind) => {
                if bind.is_some() || token.is_some() {
                    notices.push(
                        "METRICS=false: /metrics is not served anywhere, METRICS_BIND and METRICS_TOKEN are ignored".into(),
                    );
                }
                MetricsListen::Nowhere
            }
            (true, Some(bind)) => MetricsListen::Own(bind),
            (true, None) if production && token.is_none() => MetricsListen::Nowhere,
            (true, None) => MetricsListen::ApiAddress,
        };
        Ok(MetricsSettings { listen, token })
    }

    /// Whether the API's own address serves `/metrics`.
    pub fn on_api_address(&self) -> bool {
        self.listen == MetricsListen::ApiAddress
    }
}
