//! Logging: env_logger, `RUST_LOG` (default `info`), and one JSON object per
//! line when `LOG_FORMAT=json`.

use std::io::Write;

/// `LOG_FORMAT`: `text` (default) or `json`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogFormat {
    Text,
    Json,
}

impl LogFormat {
    pub fn parse(raw: &str) -> Option<Self> {
        match raw.trim().to_ascii_lowercase().as_str() {
            "text" => Some(LogFormat::Text),
            "json" => Some(LogFormat::Json),
            _ => None,
        }
    }
}

/// Starts logging before the settings are read, so their errors are
/// logged too: `LOG_FORMAT` is read here.
pub fn init_logging() {
    let json = std::env::var("LOG_FORMAT")
        .ok()
        .and_then(|raw| LogFormat::parse(&raw))
        == Some(LogFormat::Json);
    let mut builder =
        env_logger::Builder::from_env(env_logger::Env::default().default_filter_or("info"));
    if json {
        builder.format(|buf, record| {
            let line = serde_json::json!({
                "ts": chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
                "level": record.level().as_str(),
                "target": record.target(),
                "message": record.args().to_string(),
            });
            writeln!(buf, "{line}")
        });
    }
    let _ = builder.try_init();
}
