//! An OpenID Connect issuer: discovery, its keys, the authorization
//! request, the code exchange and userinfo.
//!
//! Discovery (with the keys) is fetched at start-up or on first use and
//! kept, refreshed daily while the old one is still served; while the
//! issuer has never been reached every call answers
//! [`ProviderError::Unavailable`] (503): one request at a time tries again
//! (the others wait for it), and after a failure none does for
//! [`RETRY_AFTER_FAILURE`], answering at once. An ID token signed by a `kid` the cached keys
//! lack fetches the keys again, at most once per
//! [`KEY_REFETCH_INTERVAL`](crate::KEY_REFETCH_INTERVAL): a rotation is seen
//! at once, a flood of forged `kid`s costs the issuer one fetch per
//! interval.

use std::borrow::Cow;
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use latchkey_auth::oidc::{
    ExpectedNonce, IdTokenError, IdTokenRules, SigningAlgorithm, VerifiedIdToken, verify_id_token,
};
use oauth2::basic::{
    BasicErrorResponse, BasicRevocationErrorResponse, BasicTokenIntrospectionResponse,
    BasicTokenType,
};
use oauth2::{
    AuthType, AuthUrl, AuthorizationCode, ClientId, CsrfToken, EndpointNotSet, EndpointSet,
    ExtraTokenFields, PkceCodeChallenge, PkceCodeVerifier, RedirectUrl, RequestTokenError, Scope,
    StandardRevocableToken, StandardTokenResponse, TokenResponse, TokenUrl,
};
use openidconnect::core::{
    CoreAuthDisplay, CoreClaimName, CoreClaimType, CoreClientAuthMethod, CoreGrantType,
    CoreJsonWebKey, CoreJsonWebKeySet, CoreJweContentEncryptionAlgorithm,
    CoreJweKeyManagementAlgorithm, CoreResponseMode, CoreResponseType, CoreSubjectIdentifierType,
};
use openidconnect::{
    AdditionalProviderMetadata, DiscoveryError, IssuerUrl, JsonWebKeySetUrl, ProviderMetadata,
};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::http::describe;
use crate::{
    Authorization, CodeExchange, KEY_REFETCH_INTERVAL, NativeUser, Probe, ProviderConfig,
    ProviderError, ProviderUser, random_value, unix_now,
};

/// After a failed discovery, calls answer 503 at once for this long before
/// one of them tries again.
pub const RETRY_AFTER_FAILURE: Duration = Duration::from_secs(1);

/// Discovery is fetched again (keys included) when older than this, so a
/// provider's moved endpoints are followed without a restart; a failed
/// refresh keeps what was known.
const DISCOVERY_MAX_AGE: Duration = Duration::from_secs(24 * 3600);

/// What discovery says beyond the core fields: whether PKCE's S256 is
/// taken.
#[derive(Clone, Debug, Deserialize, Serialize)]
pub struct PkceMetadata {
    #[serde(default)]
    code_challenge_methods_supported: Option<Vec<String>>,
}

impl AdditionalProviderMetadata for PkceMetadata {}

type Metadata = ProviderMetadata<
    PkceMetadata,
    CoreAuthDisplay,
    CoreClientAuthMethod,
    CoreClaimName,
    CoreClaimType,
    CoreGrantType,
    CoreJweContentEncryptionAlgorithm,
    CoreJweKeyManagementAlgorithm,
    CoreJsonWebKey,
    CoreResponseMode,
    CoreResponseType,
    CoreSubjectIdentifierType,
>;

/// The token endpoint's answer: OAuth 2's fields and the ID token, kept as
/// the string that `latchkey_auth::oidc` verifies.
#[derive(Clone, Deserialize, Serialize)]
pub(crate) struct IdTokenField {
    #[serde(default)]
    id_token: Option<String>,
}

impl std::fmt::Debug for IdTokenField {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("IdTokenField(***)")
    }
}

impl ExtraTokenFields for IdTokenField {}

pub(crate) type CodeTokenResponse = StandardTokenResponse<IdTokenField, BasicTokenType>;

pub(crate) type OAuthClient = oauth2::Client<
    BasicErrorResponse,
    CodeTokenResponse,
    BasicTokenIntrospectionResponse,
    StandardRevocableToken,
    BasicRevocationErrorResponse,
    EndpointSet,
    EndpointNotSet,
    EndpointNotSet,
    EndpointNotSet,
    EndpointSet,
>;

/// What discovery found, and the keys as last fetched.
struct Discovered {
    issuer: String,
    authorization_endpoint: AuthUrl,
    token_endpoint: Option<TokenUrl>,
    userinfo_endpoint: Option<String>,
    jwks_uri: JsonWebKeySetUrl,
    algorithms: Vec<SigningAlgorithm>,
    pkce_s256: bool,
    /// The token endpoint takes `client_secret_post` only (Kakao lists
    /// just that): else `client_secret_basic`, the default.
    secret_in_body: bool,
    fetched_at: Instant,
    keys: RwLock<Keys>,
}

struct Keys {
    set: Arc<CoreJsonWebKeySet>,
    /// When an unknown `kid` last made us fetch them.
    refetched_at: Option<Instant>,
}

pub(crate) struct Oidc {
    http: reqwest::Client,
    issuer: IssuerUrl,
    leeway: i64,
    discovered: RwLock<Option<Arc<Discovered>>>,
    /// One fetch at a time (discovery or keys), and when the last failed.
    fetching: tokio::sync::Mutex<Option<Instant>>,
}

impl Oidc {
    pub(crate) fn new(http: reqwest::Client, issuer: &str, leeway: i64) -> Result<Oidc, String> {
        let issuer =
            IssuerUrl::new(issuer.to_owned()).map_err(|_| format!("{issuer:?} is not a URL"))?;
        Ok(Oidc {
            http,
            issuer,
            leeway,
            discovered: RwLock::new(None),
            fetching: tokio::sync::Mutex::new(None),
        })
    }

    /// Discovery fetched with `http` (start-up's own client, whose
    /// connections die with start-up's runtime) and kept.
    pub(crate) async fn probe(&self, http: &reqwest::Client) -> Probe {
        match self.fetch_discovery(http).await {
            Ok(discovered) => {
                self.keep(discovered);
                Probe::Ready
            }
            Err(Fetch::Unreachable(why)) => Probe::Unreachable(why),
            Err(Fetch::NotDiscovery(why)) => Probe::NoDiscovery(why),
        }
    }

    fn current(&self) -> Option<Arc<Discovered>> {
        self.discovered
            .read()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .clone()
    }

    fn keep(&self, discovered: Discovered) -> Arc<Discovered> {
        let discovered = Arc::new(discovered);
        *self
            .discovered
            .write()
            .unwrap_or_else(|poisoned| poisoned.into_inner()) = Some(discovered.clone());
        discovered
    }

    /// Discovery as known, fetched when it is not (or is old).
    async fn discovered(&self) -> Result<Arc<Discovered>, ProviderError> {
        let fresh = |d: &Arc<Discovered>| d.fetched_at.elapsed() < DISCOVERY_MAX_AGE;
        let known = self.current();
        if let Some(discovered) = known.as_ref().filter(|d| fresh(d)) {
            return Ok(discovered.clone());
        }
        // An old discovery is served while one request refreshes it: only
        // a provider never reached makes requests wait on the fetch.
        let mut last_failure = match (&known, self.fetching.try_lock()) {
            (_, Ok(guard)) => guard,
            (Some(stale), Err(_)) => return Ok(stale.clone()),
            (None, Err(_)) => self.fetching.lock().await,
        };
        let known = self.current();
        if let Some(discovered) = known.as_ref().filter(|d| fresh(d)) {
            return Ok(discovered.clone());
        }
        if last_failure.is_some_and(|at| at.elapsed() < RETRY_AFTER_FAILURE) {
            return known.ok_or_else(unreachable);
        }
        match self.fetch_discovery(&self.http).await {
            Ok(discovered) => {
                *last_failure = None;
                Ok(self.keep(discovered))
            }
            Err(failed) => {
                *last_failure = Some(Instant::now());
                let why = failed.reason();
                match known {
                    Some(stale) => {
                        log::warn!(
                            "provider {}: refreshing discovery failed ({why}); keeping what was known",
                            self.issuer.as_str()
                        );
                        Ok(stale)
                    }
                    None => {
                        log::warn!(
                            "provider {}: discovery failed ({why})",
                            self.issuer.as_str()
                        );
                        Err(unreachable())
                    }
                }
            }
        }
    }

    async fn fetch_discovery(&self, http: &reqwest::Client) -> Result<Discovered, Fetch> {
        let metadata = Metadata::discover_async(self.issuer.clone(), http)
            .await
            .map_err(Fetch::from_discovery)?;
        let pkce_s256 = metadata
            .additional_metadata()
            .code_challenge_methods_supported
            .iter()
            .flatten()
            .any(|method| method == "S256");
        let secret_in_body = metadata
            .token_endpoint_auth_methods_supported()
            .is_some_and(|methods| {
                !methods.contains(&CoreClientAuthMethod::ClientSecretBasic)
                    && methods.contains(&CoreClientAuthMethod::ClientSecretPost)
            });
        Ok(Discovered {
            issuer: metadata.issuer().as_str().to_owned(),
            secret_in_body,
            authorization_endpoint: metadata.authorization_endpoint().clone(),
            token_endpoint: metadata.token_endpoint().cloned(),
            userinfo_endpoint: metadata
                .userinfo_endpoint()
                .map(|url| url.as_str().to_owned()),
            jwks_uri: metadata.jwks_uri().clone(),
            algorithms: metadata.id_token_signing_alg_values_supported().clone(),
            pkce_s256,
            fetched_at: Instant::now(),
            keys: RwLock::new(Keys {
                set: Arc::new(metadata.jwks().clone()),
                refetched_at: None,
            }),
        })
    }

    pub(crate) async fn authorization(
        &self,
        config: &ProviderConfig,
        redirect_uri: &str,
    ) -> Result<Authorization, ProviderError> {
        let discovered = self.discovered().await?;
        let client = oauth_client(config, &discovered)?;
        let state = random_value();
        let nonce = random_value();
        let redirect = RedirectUrl::new(redirect_uri.to_owned())
            .map_err(|_| ProviderError::Refused("the redirect URI is not a URL".to_owned()))?;
        let mut request = client
            .authorize_url(|| CsrfToken::new(state.clone()))
            .set_redirect_uri(Cow::Owned(redirect))
            .add_scopes(config.scopes.iter().cloned().map(Scope::new))
            .add_extra_param("nonce", nonce.clone());
        if config.form_post {
            request = request.add_extra_param("response_mode", "form_post");
        }
        let mut pkce_verifier = None;
        if discovered.pkce_s256 || config.always_pkce {
            let (challenge, verifier) = PkceCodeChallenge::new_random_sha256();
            request = request.set_pkce_challenge(challenge);
            pkce_verifier = Some(verifier.secret().clone());
        }
        let (url, _) = request.url();
        Ok(Authorization {
            url: url.into(),
            state,
            nonce: Some(nonce),
            pkce_verifier,
        })
    }

    pub(crate) async fn exchange(
        &self,
        config: &ProviderConfig,
        exchange: CodeExchange<'_>,
    ) -> Result<ProviderUser, ProviderError> {
        let discovered = self.discovered().await?;
        if exchange
            .issuer
            .is_some_and(|issuer| issuer != discovered.issuer)
        {
            return Err(ProviderError::Refused(
                "the callback names another issuer".to_owned(),
            ));
        }
        let client = oauth_client(config, &discovered)?;
        let redirect = RedirectUrl::new(exchange.redirect_uri.to_owned())
            .map_err(|_| ProviderError::Refused("the redirect URI is not a URL".to_owned()))?;
        let mut request = client
            .exchange_code(AuthorizationCode::new(exchange.code.to_owned()))
            .set_redirect_uri(Cow::Owned(redirect));
        if let Some(verifier) = exchange.pkce_verifier {
            request = request.set_pkce_verifier(PkceCodeVerifier::new(verifier.to_owned()));
        }
        let apple_secret;
        if let Some(apple) = &config.apple {
            apple_secret = apple
                .client_secret(&config.client_id, unix_now())
                .map_err(ProviderError::Refused)?;
            request = request.add_extra_param("client_secret", apple_secret.clone());
        }
        let response = request
            .request_async(&self.http)
            .await
            .map_err(|error| ProviderError::Refused(token_error(&error)))?;
        let id_token = response.extra_fields().id_token.as_deref().ok_or_else(|| {
            ProviderError::Refused("the token response has no id_token".to_owned())
        })?;
        let nonce = exchange.nonce.unwrap_or_default();
        let verified = self
            .verify(config, &discovered, id_token, ExpectedNonce::Flow(nonce))
            .await?;
        let user = user_of(verified);
        // userinfo fills in what the ID token lacks (Kakao's states no
        // `email_verified`).
        if user.email.is_some() && latchkey_auth::oidc::states_email_verified(id_token) {
            return Ok(user);
        }
        let filled = self
            .userinfo(config, &discovered, response.access_token().secret(), &user)
            .await?;
        // The ID token's address stands; userinfo vouches for it only when
        // it names the same one.
        Ok(match &user.email {
            None => filled,
            Some(email) if filled.email.as_ref() == Some(email) => filled,
            Some(_) => user,
        })
    }

    pub(crate) async fn native(
        &self,
        config: &ProviderConfig,
        id_token: &str,
        nonce: Option<&str>,
    ) -> Result<NativeUser, ProviderError> {
        let discovered = self.discovered().await?;
        let verified = self
            .verify(config, &discovered, id_token, ExpectedNonce::Native(nonce))
            .await?;
        let exp = verified.exp;
        Ok(NativeUser {
            user: user_of(verified),
            id_token_exp: Some(exp),
        })
    }

    /// The token checked against the keys held, and once more against keys
    /// fetched again when it names a `kid` they lack.
    async fn verify(
        &self,
        config: &ProviderConfig,
        discovered: &Discovered,
        id_token: &str,
        nonce: ExpectedNonce<'_>,
    ) -> Result<VerifiedIdToken, ProviderError> {
        let keys = discovered.key_set();
        match self.check(config, discovered, &keys, id_token, nonce) {
            Err(IdTokenError::UnknownKey) => {}
            checked => return checked.map_err(refused),
        }
        match self.refetch_keys(discovered, &keys).await? {
            Some(keys) => self
                .check(config, discovered, &keys, id_token, nonce)
                .map_err(refused),
            None => Err(refused(IdTokenError::UnknownKey)),
        }
    }

    fn check(
        &self,
        config: &ProviderConfig,
        discovered: &Discovered,
        keys: &CoreJsonWebKeySet,
        id_token: &str,
        nonce: ExpectedNonce<'_>,
    ) -> Result<VerifiedIdToken, IdTokenError> {
        let rules = IdTokenRules {
            issuer: &discovered.issuer,
            client_id: &config.client_id,
            other_client_ids: &config.client_ids,
            algorithms: &discovered.algorithms,
            keys,
            string_email_verified: config.string_email_verified,
            leeway: self.leeway,
        };
        verify_id_token(id_token, &rules, nonce, unix_now())
    }

    /// Keys newer than `held`: fetched now unless they were fetched for an
    /// unknown `kid` within the interval (`None`: nothing newer to try).
    async fn refetch_keys(
        &self,
        discovered: &Discovered,
        held: &Arc<CoreJsonWebKeySet>,
    ) -> Result<Option<Arc<CoreJsonWebKeySet>>, ProviderError> {
        let _one_fetch_at_a_time = self.fetching.lock().await;
        {
            let keys = discovered.keys.read().unwrap_or_else(|p| p.into_inner());
            if !Arc::ptr_eq(&keys.set, held) {
                return Ok(Some(keys.set.clone()));
            }
            if keys
                .refetched_at
                .is_some_and(|at| at.elapsed() < KEY_REFETCH_INTERVAL)
            {
                return Ok(None);
            }
        }
        discovered
            .keys
            .write()
            .unwrap_or_else(|p| p.into_inner())
            .refetched_at = Some(Instant::now());
        let fetched = CoreJsonWebKeySet::fetch_async(&discovered.jwks_uri, &self.http)
            .await
            .map_err(|error| {
                let failed = Fetch::from_discovery(error);
                let why = failed.reason();
                log::warn!(
                    "provider {}: fetching its keys failed ({why})",
                    self.issuer.as_str()
                );
                unreachable()
            })?;
        let set = Arc::new(fetched);
        discovered
            .keys
            .write()
            .unwrap_or_else(|p| p.into_inner())
            .set = set.clone();
        Ok(Some(set))
    }

    /// userinfo, for an ID token without an email: the same `sub` or
    /// nothing from it.
    async fn userinfo(
        &self,
        config: &ProviderConfig,
        discovered: &Discovered,
        access_token: &str,
        user: &ProviderUser,
    ) -> Result<ProviderUser, ProviderError> {
        let Some(endpoint) = &discovered.userinfo_endpoint else {
            return Ok(user.clone());
        };
        let claims: Value = self
            .http
            .get(endpoint)
            .bearer_auth(access_token)
            .header(reqwest::header::ACCEPT, "application/json")
            .send()
            .await
            .and_then(reqwest::Response::error_for_status)
            .map_err(|error| ProviderError::Refused(format!("userinfo {}", describe(&error))))?
            .json()
            .await
            .map_err(|error| ProviderError::Refused(format!("userinfo {}", describe(&error))))?;
        if claims.get("sub").and_then(Value::as_str) != Some(user.subject.as_str()) {
            return Err(ProviderError::Refused(
                "userinfo names another subject".to_owned(),
            ));
        }
        let email = claims
            .get("email")
            .and_then(Value::as_str)
            .filter(|email| !email.is_empty())
            .map(str::to_owned);
        let email_verified = match claims.get("email_verified") {
            Some(Value::Bool(verified)) => *verified,
            Some(Value::String(verified)) => config.string_email_verified && verified == "true",
            _ => false,
        };
        Ok(ProviderUser {
            subject: user.subject.clone(),
            email_verified: email.is_some() && email_verified,
            email,
        })
    }
}

impl Discovered {
    fn key_set(&self) -> Arc<CoreJsonWebKeySet> {
        self.keys
            .read()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .set
            .clone()
    }
}

fn oauth_client(
    config: &ProviderConfig,
    discovered: &Discovered,
) -> Result<OAuthClient, ProviderError> {
    let token_endpoint = discovered
        .token_endpoint
        .clone()
        .ok_or_else(|| ProviderError::Refused("discovery names no token endpoint".to_owned()))?;
    let mut client = oauth2::Client::new(ClientId::new(config.client_id.clone()))
        .set_auth_uri(discovered.authorization_endpoint.clone())
        .set_token_uri(token_endpoint);
    if config.apple.is_some() {
        // client_secret_post, the secret made per exchange (see apple.rs).
        client = client.set_auth_type(AuthType::RequestBody);
    } else if let Some(secret) = &config.client_secret {
        client = client.set_client_secret(oauth2::ClientSecret::new(secret.0.clone()));
        if discovered.secret_in_body {
            client = client.set_auth_type(AuthType::RequestBody);
        }
    }
    Ok(client)
}

fn user_of(verified: VerifiedIdToken) -> ProviderUser {
    ProviderUser {
        email_verified: verified.email.is_some() && verified.email_verified,
        subject: verified.subject,
        email: verified.email.filter(|email| !email.is_empty()),
    }
}

fn refused(error: IdTokenError) -> ProviderError {
    ProviderError::Refused(format!("the ID token: {error}"))
}

fn unreachable() -> ProviderError {
    ProviderError::Unavailable("its discovery or keys cannot be fetched".to_owned())
}

/// A refused exchange, described by the provider's error code at most
/// (never the body, which may hold a token).
pub(crate) fn token_error<RE: std::error::Error>(
    error: &RequestTokenError<RE, BasicErrorResponse>,
) -> String {
    match error {
        RequestTokenError::ServerResponse(response) => {
            format!("the token endpoint refused: {}", response.error())
        }
        RequestTokenError::Request(_) => "the token endpoint could not be reached".to_owned(),
        RequestTokenError::Parse(..) => {
            "the token endpoint answered something that is not a token response".to_owned()
        }
        RequestTokenError::Other(_) => "the token endpoint answered unexpectedly".to_owned(),
    }
}

/// Why discovery or the keys could not be had.
enum Fetch {
    /// Connection refused, timed out, a 5xx: try again later.
    Unreachable(String),
    /// It answers, but not with valid discovery (a 404, not JSON, another
    /// issuer): a misconfiguration.
    NotDiscovery(String),
}

impl Fetch {
    fn from_discovery<RE: std::error::Error + 'static>(error: DiscoveryError<RE>) -> Fetch {
        match error {
            DiscoveryError::Request(_) => {
                Fetch::Unreachable("could not connect or timed out".to_owned())
            }
            DiscoveryError::Response(status, ..) if status.is_server_error() => {
                Fetch::Unreachable(format!("answered {status}"))
            }
            DiscoveryError::Response(status, ..) => {
                Fetch::NotDiscovery(format!("answered {status}"))
            }
            DiscoveryError::Parse(_) => {
                Fetch::NotDiscovery("answered something that is not discovery".to_owned())
            }
            DiscoveryError::Validation(why) => Fetch::NotDiscovery(why),
            DiscoveryError::UrlParse(_) => Fetch::NotDiscovery("not a URL".to_owned()),
            DiscoveryError::Other(why) => Fetch::Unreachable(why),
            _ => Fetch::NotDiscovery("discovery failed".to_owned()),
        }
    }

    fn reason(&self) -> &str {
        match self {
            Fetch::Unreachable(why) | Fetch::NotDiscovery(why) => why,
        }
    }
}
