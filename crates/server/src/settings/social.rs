//! Sign-in with a provider: `SOCIAL_PROVIDERS` and, for each name `N`,
//! `SOCIAL_<N>_CLIENT_ID`, `_CLIENT_SECRET`, `_CLIENT_IDS`, `_SCOPES`,
//! `_ISSUER`; the presets `google`, `apple`, `kakao` and `github` fill in
//! what their name implies, and every preset's URLs can be overridden the
//! same way. `SOCIAL_REDIRECT_URLS` (default: `PUBLIC_URL`'s origin and
//! `CORS_ALLOWED_ORIGINS`) and `SOCIAL_SIGNUP` (default true). A provider
//! that is misconfigured stops start-up naming the variable; whether its
//! issuer answers is found out later (503 until it does), not here.

use std::time::Duration;

use super::env::{Reader, Secret, SettingsError};

/// How latchkey talks to a provider.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Protocol {
    /// OpenID Connect: discovery at `<issuer>/.well-known/openid-configuration`.
    OpenIdConnect { issuer: String },
    /// GitHub's OAuth 2 without OpenID Connect: `/user`, `/user/emails`.
    GitHub { url: String, api_url: String },
}

/// What Apple's client secret (an ES256 JWT) is made from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AppleKey {
    pub team_id: String,
    pub key_id: String,
    /// The `.p8` key's PEM.
    pub private_key: Secret,
}

/// One enabled provider.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProviderSettings {
    /// As configured, lower case: the provider's name in routes and in the
    /// linked identities (allauth's names).
    pub name: String,
    pub protocol: Protocol,
    pub client_id: String,
    pub client_secret: Option<Secret>,
    /// More audiences accepted for ID tokens that native apps send.
    pub client_ids: Vec<String>,
    pub scopes: Vec<String>,
    /// `response_mode=form_post` (Apple): the callback is a cross-site POST.
    pub form_post: bool,
    pub apple: Option<AppleKey>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SocialSettings {
    pub providers: Vec<ProviderSettings>,
    /// Where a browser may be sent back to: exact origins or URL prefixes.
    pub redirect_urls: Vec<String>,
    /// By default with `PUBLIC_URL` unset: the origin a request reached
    /// latchkey at stands in for `PUBLIC_URL`'s.
    pub redirect_to_request_origin: bool,
    /// Whether a provider login may create an account.
    pub signup: bool,
    /// `SOCIAL_TIMEOUT`: the most any one call to a provider may take
    /// (connecting gets at most 5 s of it).
    pub timeout: Duration,
}

/// Names that are routes of their own under `/auth/social/`.
const RESERVED_NAMES: [&str; 2] = ["providers", "exchange"];

const GITHUB_URL: &str = "https://github.com";
const GITHUB_API_URL: &str = "https://api.github.com";

/// The issuer a preset implies.
fn preset_issuer(name: &str) -> Option<&'static str> {
    match name {
        "google" => Some("https://accounts.google.com"),
        "apple" => Some("https://appleid.apple.com"),
        "kakao" => Some("https://kauth.kakao.com"),
        _ => None,
    }
}

pub(super) fn read(
    env: &Reader<'_>,
    public_url: Option<&str>,
    cors_allowed_origins: &[String],
) -> Result<SocialSettings, SettingsError> {
    let mut providers: Vec<ProviderSettings> = Vec::new();
    for raw in env.list("SOCIAL_PROVIDERS") {
        let name = raw.to_ascii_lowercase();
        if name.is_empty()
            || !name
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_')
        {
            return Err(SettingsError(format!(
                "SOCIAL_PROVIDERS names {raw:?}: a provider's name is letters, digits and _"
            )));
        }
        if RESERVED_NAMES.contains(&name.as_str()) {
            return Err(SettingsError(format!(
                "SOCIAL_PROVIDERS names {name:?}, which is a route of its own (/auth/social/{name}/)"
            )));
        }
        if providers.iter().any(|p| p.name == name) {
            return Err(SettingsError(format!(
                "SOCIAL_PROVIDERS names {name:?} twice"
            )));
        }
        providers.push(provider(env, name)?);
    }
    let redirect_to_request_origin =
        env.raw("SOCIAL_REDIRECT_URLS").is_none() && public_url.is_none();
    let redirect_urls = match env.raw("SOCIAL_REDIRECT_URLS") {
        Some(_) => env.list("SOCIAL_REDIRECT_URLS"),
        None => public_url
            .map(origin_of)
            .into_iter()
            .chain(cors_allowed_origins.iter().cloned())
            .collect(),
    };
    for url in &redirect_urls {
        if !(url.starts_with("https://") || url.starts_with("http://")) {
            return Err(SettingsError(format!(
                "SOCIAL_REDIRECT_URLS names {url:?}: expected http(s) origins or URL prefixes"
            )));
        }
    }
    Ok(SocialSettings {
        providers,
        redirect_urls,
        redirect_to_request_origin,
        signup: env.boolean("SOCIAL_SIGNUP", true)?,
        timeout: env.bounded_duration(
            "SOCIAL_TIMEOUT",
            Duration::from_secs(10),
            Duration::from_millis(100),
            Duration::from_secs(300),
        )?,
    })
}

/// `scheme://host[:port]` of a URL.
fn origin_of(url: &str) -> String {
    let (scheme, rest) = url.split_once("://").unwrap_or(("https", url));
    let host = rest.split(['/', '?', '#']).next().unwrap_or(rest);
    format!("{scheme}://{host}")
}

fn provider(env: &Reader<'_>, name: String) -> Result<ProviderSettings, SettingsError> {
    let var = |field: &str| format!("SOCIAL_{}_{field}", name.to_ascii_uppercase());
    let client_id = env.raw(&var("CLIENT_ID")).ok_or_else(|| {
        SettingsError(format!(
            "{} is required for provider {name}",
            var("CLIENT_ID")
        ))
    })?;
    let github = name == "github";
    let protocol = if github {
        Protocol::GitHub {
            url: trimmed(env.string(&var("URL"), GITHUB_URL)),
            api_url: trimmed(env.string(&var("API_URL"), GITHUB_API_URL)),
        }
    } else {
        let issuer = env
            .raw(&var("ISSUER"))
            .or_else(|| preset_issuer(&name).map(str::to_owned))
            .ok_or_else(|| {
                SettingsError(format!(
                    "{} is required for provider {name} (OpenID Connect discovery)",
                    var("ISSUER")
                ))
            })?;
        // Exactly as given: discovery must name the same issuer, trailing
        // slash and all (some issuers end with one).
        Protocol::OpenIdConnect {
            issuer: issuer.trim().to_owned(),
        }
    };
    let default_scopes = if github {
        "read:user user:email"
    } else {
        "openid email profile"
    };
    let scopes = env
        .string(&var("SCOPES"), default_scopes)
        .split([' ', ','])
        .filter(|scope| !scope.is_empty())
        .map(str::to_owned)
        .collect();
    let apple = if name == "apple" {
        let required = |field: &str| {
            env.raw(&var(field)).ok_or_else(|| {
                SettingsError(format!("{} is required for provider apple", var(field)))
            })
        };
        Some(AppleKey {
            team_id: required("TEAM_ID")?,
            key_id: required("KEY_ID")?,
            private_key: Secret(required("PRIVATE_KEY")?.replace("\\n", "\n").into_bytes()),
        })
    } else {
        None
    };
    Ok(ProviderSettings {
        protocol,
        client_id,
        client_secret: env
            .raw(&var("CLIENT_SECRET"))
            .map(|secret| Secret(secret.into_bytes())),
        client_ids: env.list(&var("CLIENT_IDS")),
        scopes,
        form_post: name == "apple",
        apple,
        name,
    })
}

fn trimmed(url: String) -> String {
    url.trim_end_matches('/').to_owned()
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use super::*;

    fn social(vars: &[(&str, &str)]) -> Result<SocialSettings, SettingsError> {
        let map: HashMap<String, String> = vars
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect();
        let lookup = move |name: &str| map.get(name).cloned();
        read(
            &Reader { lookup: &lookup },
            Some("https://auth.example.com/base"),
            &["https://app.example.com".to_owned()],
        )
    }

    #[test]
    fn nothing_is_enabled_by_default() {
        let settings = social(&[]).unwrap();
        assert!(settings.providers.is_empty());
        assert!(settings.signup);
        assert_eq!(
            settings.redirect_urls,
            ["https://auth.example.com", "https://app.example.com"]
        );
    }

    #[test]
    fn presets_fill_in_what_their_name_implies() {
        let settings = social(&[
            ("SOCIAL_PROVIDERS", "Google, github"),
            ("SOCIAL_GOOGLE_CLIENT_ID", "g-id"),
            ("SOCIAL_GOOGLE_CLIENT_SECRET", "g-secret"),
            ("SOCIAL_GOOGLE_CLIENT_IDS", "ios-id, android-id"),
            ("SOCIAL_GITHUB_CLIENT_ID", "gh-id"),
            ("SOCIAL_GITHUB_API_URL", "http://127.0.0.1:9/api/"),
            ("SOCIAL_SIGNUP", "false"),
        ])
        .unwrap();
        let [google, github] = &settings.providers[..] else {
            panic!("two providers: {:?}", settings.providers)
        };
        assert_eq!(google.name, "google");
        assert_eq!(
            google.protocol,
            Protocol::OpenIdConnect {
                issuer: "https://accounts.google.com".into()
            }
        );
        assert_eq!(google.scopes, ["openid", "email", "profile"]);
        assert_eq!(google.client_ids, ["ios-id", "android-id"]);
        assert_eq!(
            google.client_secret.as_ref().map(Secret::expose),
            Some(&b"g-secret"[..])
        );
        assert_eq!(
            github.protocol,
            Protocol::GitHub {
                url: "https://github.com".into(),
                api_url: "http://127.0.0.1:9/api".into()
            }
        );
        assert_eq!(github.scopes, ["read:user", "user:email"]);
        assert!(!settings.signup);
    }

    #[test]
    fn a_misconfigured_provider_stops_start_up_naming_the_variable() {
        let error = |vars: &[(&str, &str)]| social(vars).unwrap_err().0;
        assert!(error(&[("SOCIAL_PROVIDERS", "google")]).contains("SOCIAL_GOOGLE_CLIENT_ID"));
        assert!(
            error(&[("SOCIAL_PROVIDERS", "acme"), ("SOCIAL_ACME_CLIENT_ID", "a")])
                .contains("SOCIAL_ACME_ISSUER")
        );
        assert!(
            error(&[
                ("SOCIAL_PROVIDERS", "apple"),
                ("SOCIAL_APPLE_CLIENT_ID", "a"),
                ("SOCIAL_APPLE_TEAM_ID", "T"),
                ("SOCIAL_APPLE_KEY_ID", "K"),
            ])
            .contains("SOCIAL_APPLE_PRIVATE_KEY")
        );
        assert!(error(&[("SOCIAL_PROVIDERS", "my-idp")]).contains("my-idp"));
        assert!(error(&[("SOCIAL_PROVIDERS", "exchange")]).contains("route of its own"));
        assert!(error(&[("SOCIAL_TIMEOUT", "forever")]).contains("SOCIAL_TIMEOUT"));
        assert!(
            error(&[
                ("SOCIAL_PROVIDERS", "google,GOOGLE"),
                ("SOCIAL_GOOGLE_CLIENT_ID", "g")
            ])
            .contains("twice")
        );
        assert!(
            error(&[("SOCIAL_REDIRECT_URLS", "javascript:alert(1)")])
                .contains("SOCIAL_REDIRECT_URLS")
        );
    }

    #[test]
    fn apple_posts_its_callback_and_its_key_is_never_printed() {
        let settings = social(&[
            ("SOCIAL_PROVIDERS", "apple,acme"),
            ("SOCIAL_APPLE_CLIENT_ID", "com.example.web"),
            ("SOCIAL_APPLE_TEAM_ID", "TEAM123"),
            ("SOCIAL_APPLE_KEY_ID", "KEY456"),
            (
                "SOCIAL_APPLE_PRIVATE_KEY",
                "-----BEGIN PRIVATE KEY-----\\nsecret-key-body\\n-----END PRIVATE KEY-----",
            ),
            ("SOCIAL_ACME_CLIENT_ID", "acme"),
            ("SOCIAL_ACME_CLIENT_SECRET", "acme-secret-value"),
            ("SOCIAL_ACME_ISSUER", "https://idp.example.com/"),
            ("SOCIAL_ACME_SCOPES", "openid,email"),
        ])
        .unwrap();
        let apple = &settings.providers[0];
        assert!(apple.form_post);
        let key = apple.apple.as_ref().unwrap();
        assert_eq!(
            (key.team_id.as_str(), key.key_id.as_str()),
            ("TEAM123", "KEY456")
        );
        assert!(String::from_utf8_lossy(key.private_key.expose()).contains("\nsecret-key-body\n"));
        let acme = &settings.providers[1];
        assert!(!acme.form_post);
        assert_eq!(
            acme.protocol,
            Protocol::OpenIdConnect {
                issuer: "https://idp.example.com/".into()
            }
        );
        assert_eq!(acme.scopes, ["openid", "email"]);
        let printed = format!("{settings:?}");
        assert!(!printed.contains("secret-key-body") && !printed.contains("acme-secret-value"));
    }
}
