//! Outbound calls to sign-in providers (contract: "Sign in with a provider").
//!
//! Everything latchkey asks of an OpenID Connect issuer or of GitHub goes
//! through here: discovery and the provider's keys ([`oidc`]), the
//! authorization URL, the code exchange, userinfo, GitHub's `/user`,
//! `/user/emails` and its token check ([`github`]), and Apple's client
//! secret ([`apple`]). The ID token checks themselves are plain functions in
//! `latchkey_auth::oidc`; this crate hands them the keys it fetched.
//!
//! One HTTP client ([`http`]) serves every provider: redirects off (a
//! provider that redirects a back-channel call is refused, never followed
//! to wherever it points), a connect timeout and a total timeout per call.
//! Nothing here touches the database: the server calls a provider before
//! or after its transaction, never inside one.
//!
//! Secrets (client secrets, Apple's key, PKCE verifiers, the provider's
//! tokens) never reach a log or a `Debug`: [`ClientSecret`] prints
//! `Secret(***)`, and failures are logged by kind, never with a response
//! body.

pub mod apple;
pub mod github;
mod http;
pub mod oidc;

use std::sync::Arc;
use std::time::Duration;

pub use apple::AppleKey;
pub use http::Timeouts;

/// A provider's client secret: printed as `Secret(***)`.
#[derive(Clone, PartialEq, Eq)]
pub struct ClientSecret(pub String);

impl std::fmt::Debug for ClientSecret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Secret(***)")
    }
}

/// How latchkey talks to a provider.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Protocol {
    /// OpenID Connect, discovered at `<issuer>/.well-known/openid-configuration`.
    OpenIdConnect { issuer: String },
    /// GitHub's OAuth 2 web flow and REST API.
    GitHub { url: String, api_url: String },
}

/// One configured provider, as the server's settings describe it.
#[derive(Debug, Clone)]
pub struct ProviderConfig {
    pub name: String,
    pub protocol: Protocol,
    pub client_id: String,
    pub client_secret: Option<ClientSecret>,
    /// More audiences accepted for ID tokens from native apps.
    pub client_ids: Vec<String>,
    pub scopes: Vec<String>,
    /// `response_mode=form_post` (Apple).
    pub form_post: bool,
    /// Apple: the client secret is an ES256 JWT made from this key.
    pub apple: Option<AppleKey>,
    /// `"email_verified": "true"` counts (Apple sends a string).
    pub string_email_verified: bool,
    /// Send PKCE (S256) even when discovery does not list it: presets whose
    /// provider takes it (Google, Kakao).
    pub always_pkce: bool,
}

/// What a provider asserted about the person signing in.
#[derive(Clone, PartialEq, Eq)]
pub struct ProviderUser {
    /// Always a string (GitHub's numeric id in decimal).
    pub subject: String,
    pub email: Option<String>,
    pub email_verified: bool,
}

// An email address is personal data: logs name the subject only.
impl std::fmt::Debug for ProviderUser {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ProviderUser")
            .field("subject", &self.subject)
            .field("email", &self.email.as_ref().map(|_| "…"))
            .field("email_verified", &self.email_verified)
            .finish()
    }
}

/// A user from a native app's ID token, with the token's `exp` (Unix
/// seconds): the accepted token is recorded until then.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NativeUser {
    pub user: ProviderUser,
    /// `None` for a GitHub access token (nothing to record: GitHub's token
    /// check decides each time).
    pub id_token_exp: Option<i64>,
}

/// What the browser is sent to, and what the callback will need.
pub struct Authorization {
    /// The provider's authorization endpoint with every parameter.
    pub url: String,
    pub state: String,
    /// OpenID Connect only.
    pub nonce: Option<String>,
    /// When the provider takes PKCE (S256).
    pub pkce_verifier: Option<String>,
}

/// What the callback hands back for the code exchange.
pub struct CodeExchange<'a> {
    pub code: &'a str,
    /// Exactly the `redirect_uri` the authorization request sent.
    pub redirect_uri: &'a str,
    pub pkce_verifier: Option<&'a str>,
    pub nonce: Option<&'a str>,
    /// The callback's `iss` (RFC 9207), when the provider sent one: it must
    /// be the issuer the flow went to (a mix-up of providers is refused).
    pub issuer: Option<&'a str>,
}

/// Why a provider call failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ProviderError {
    /// Its discovery or keys cannot be fetched (503).
    #[error("the provider cannot be reached: {0}")]
    Unavailable(String),
    /// It answered, and refused or answered nonsense (a refused code
    /// exchange, an ID token that does not verify): `provider_error` in the
    /// browser, 401 `provider_token_invalid` for a native token.
    #[error("the provider's answer was refused: {0}")]
    Refused(String),
}

/// The configured providers, and the one client that calls them.
pub struct Federation {
    providers: Vec<Arc<Provider>>,
    timeouts: Timeouts,
}

/// One provider: its settings and what was fetched from it.
pub struct Provider {
    config: ProviderConfig,
    kind: Kind,
}

enum Kind {
    Oidc(oidc::Oidc),
    GitHub(github::GitHub),
}

/// How a provider's issuer answered at start-up.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Probe {
    Ready,
    /// Unreachable now: 503 until it answers.
    Unreachable(String),
    /// It answers, but not with discovery: a misconfiguration that stops
    /// start-up.
    NoDiscovery(String),
}

impl Federation {
    /// `leeway`: latchkey's `LEEWAY`, seconds, for the ID tokens' `exp`
    /// and `iat`.
    pub fn new(
        configs: Vec<ProviderConfig>,
        timeouts: Timeouts,
        leeway: i64,
    ) -> Result<Federation, String> {
        let client = http::client(timeouts)?;
        let providers = configs
            .into_iter()
            .map(|config| {
                let kind = match &config.protocol {
                    Protocol::OpenIdConnect { issuer } => {
                        Kind::Oidc(oidc::Oidc::new(client.clone(), issuer, leeway)?)
                    }
                    Protocol::GitHub { url, api_url } => {
                        Kind::GitHub(github::GitHub::new(client.clone(), url, api_url)?)
                    }
                };
                Ok(Arc::new(Provider { config, kind }))
            })
            .collect::<Result<_, String>>()?;
        Ok(Federation {
            providers,
            timeouts,
        })
    }

    /// Start-up: every OpenID Connect issuer asked for discovery and keys
    /// at once, from a thread of its own (the caller may be inside a
    /// runtime), each within the timeouts. What answers is kept.
    pub fn probe_all(&self) -> Vec<(String, Probe)> {
        let providers = self.providers.clone();
        let timeouts = self.timeouts;
        let probing = std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .map_err(|error| format!("cannot start the providers' probe: {error}"))?;
            // Start-up's own client: pooled connections belong to the
            // runtime that made them, which ends with this thread.
            let http = http::client(timeouts)?;
            Ok::<_, String>(runtime.block_on(async {
                let probes = providers.iter().map(|provider| provider.probe(&http));
                let results = futures_util::future::join_all(probes).await;
                providers
                    .iter()
                    .map(|provider| provider.name().to_owned())
                    .zip(results)
                    .collect::<Vec<_>>()
            }))
        });
        match probing.join() {
            Ok(Ok(results)) => results,
            Ok(Err(why)) => self
                .providers
                .iter()
                .map(|p| (p.name().to_owned(), Probe::Unreachable(why.clone())))
                .collect(),
            Err(_) => self
                .providers
                .iter()
                .map(|p| {
                    (
                        p.name().to_owned(),
                        Probe::Unreachable("the probe panicked".into()),
                    )
                })
                .collect(),
        }
    }

    pub fn provider(&self, name: &str) -> Option<Arc<Provider>> {
        self.providers
            .iter()
            .find(|provider| provider.config.name == name)
            .cloned()
    }

    pub fn providers(&self) -> impl Iterator<Item = &Provider> {
        self.providers.iter().map(|provider| provider.as_ref())
    }
}

impl Provider {
    pub fn name(&self) -> &str {
        &self.config.name
    }

    pub fn config(&self) -> &ProviderConfig {
        &self.config
    }

    /// Whether the callback is a cross-site `form_post`.
    pub fn form_post(&self) -> bool {
        self.config.form_post
    }

    /// Asks the issuer for discovery and keys once, at start-up (GitHub has
    /// nothing to discover).
    async fn probe(&self, http: &reqwest::Client) -> Probe {
        match &self.kind {
            Kind::Oidc(oidc) => oidc.probe(http).await,
            Kind::GitHub(_) => Probe::Ready,
        }
    }

    /// The authorization request for a browser sent back to `redirect_uri`.
    pub async fn authorization(&self, redirect_uri: &str) -> Result<Authorization, ProviderError> {
        match &self.kind {
            Kind::Oidc(oidc) => oidc.authorization(&self.config, redirect_uri).await,
            Kind::GitHub(github) => github.authorization(&self.config, redirect_uri),
        }
    }

    /// The callback's code exchanged, and the person it names.
    pub async fn exchange(
        &self,
        exchange: CodeExchange<'_>,
    ) -> Result<ProviderUser, ProviderError> {
        match &self.kind {
            Kind::Oidc(oidc) => oidc.exchange(&self.config, exchange).await,
            Kind::GitHub(github) => github.exchange(&self.config, exchange).await,
        }
    }

    /// A native app's credential: an ID token and its nonce (OpenID
    /// Connect), or an access token (GitHub).
    pub async fn native(
        &self,
        credential: NativeCredential<'_>,
    ) -> Result<NativeUser, ProviderError> {
        match (&self.kind, credential) {
            (Kind::Oidc(oidc), NativeCredential::IdToken { id_token, nonce }) => {
                oidc.native(&self.config, id_token, nonce).await
            }
            (Kind::GitHub(github), NativeCredential::AccessToken(token)) => {
                github.native(&self.config, token).await
            }
            _ => Err(ProviderError::Refused(
                "a credential this provider does not take".to_owned(),
            )),
        }
    }

    /// Whether the provider takes ID tokens (else GitHub's access tokens).
    pub fn takes_id_tokens(&self) -> bool {
        matches!(self.kind, Kind::Oidc(_))
    }
}

/// A native app's credential.
#[derive(Clone, Copy)]
pub enum NativeCredential<'a> {
    IdToken {
        id_token: &'a str,
        nonce: Option<&'a str>,
    },
    AccessToken(&'a str),
}

/// A random URL-safe value of 32 bytes (state, nonce).
pub(crate) fn random_value() -> String {
    use base64::Engine as _;
    let bytes: [u8; 32] = rand::random();
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
}

/// Unix seconds now.
pub(crate) fn unix_now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|since| since.as_secs() as i64)
        .unwrap_or_default()
}

/// How long unknown `kid`s wait before the keys are fetched again: a
/// rotation is seen at once, forged `kid`s cost the provider at most one
/// fetch per interval.
pub const KEY_REFETCH_INTERVAL: Duration = Duration::from_secs(10);
