//! GitHub: OAuth 2 without OpenID Connect. The person is `GET /user` (its
//! numeric id, in decimal, is the subject) and the address is the primary
//! one of `GET /user/emails` when GitHub says it is verified, else none. A
//! native app's access token logs someone in only when GitHub's token check
//! (`POST /applications/{client_id}/token`, HTTP Basic with our client id
//! and secret) answers 200 for it: a token another app obtained from the
//! user is refused there.

use std::borrow::Cow;

use oauth2::{
    AuthUrl, AuthorizationCode, ClientId, CsrfToken, PkceCodeChallenge, PkceCodeVerifier,
    RedirectUrl, Scope, TokenResponse, TokenUrl,
};
use serde::Deserialize;
use serde_json::json;

use crate::http::describe;
use crate::oidc::{OAuthClient, token_error};
use crate::{
    Authorization, CodeExchange, NativeUser, ProviderConfig, ProviderError, ProviderUser,
    random_value,
};

pub(crate) struct GitHub {
    http: reqwest::Client,
    authorize_url: AuthUrl,
    token_url: TokenUrl,
    api_url: String,
}

#[derive(Deserialize)]
struct GitHubUser {
    id: u64,
}

#[derive(Deserialize)]
struct GitHubEmail {
    email: String,
    #[serde(default)]
    primary: bool,
    #[serde(default)]
    verified: bool,
}

impl GitHub {
    pub(crate) fn new(http: reqwest::Client, url: &str, api_url: &str) -> Result<GitHub, String> {
        let url = url.trim_end_matches('/');
        Ok(GitHub {
            http,
            authorize_url: AuthUrl::new(format!("{url}/login/oauth/authorize"))
                .map_err(|_| format!("{url:?} is not a URL"))?,
            token_url: TokenUrl::new(format!("{url}/login/oauth/access_token"))
                .map_err(|_| format!("{url:?} is not a URL"))?,
            api_url: api_url.trim_end_matches('/').to_owned(),
        })
    }

    fn oauth_client(&self, config: &ProviderConfig) -> OAuthClient {
        let client = oauth2::Client::new(ClientId::new(config.client_id.clone()))
            .set_auth_uri(self.authorize_url.clone())
            .set_token_uri(self.token_url.clone());
        match &config.client_secret {
            Some(secret) => client.set_client_secret(oauth2::ClientSecret::new(secret.0.clone())),
            None => client,
        }
    }

    /// GitHub has taken PKCE (S256) since 2025-07-14: always sent.
    pub(crate) fn authorization(
        &self,
        config: &ProviderConfig,
        redirect_uri: &str,
    ) -> Result<Authorization, ProviderError> {
        let state = random_value();
        let redirect = RedirectUrl::new(redirect_uri.to_owned())
            .map_err(|_| ProviderError::Refused("the redirect URI is not a URL".to_owned()))?;
        let (challenge, verifier) = PkceCodeChallenge::new_random_sha256();
        let (url, _) = self
            .oauth_client(config)
            .authorize_url(|| CsrfToken::new(state.clone()))
            .set_redirect_uri(Cow::Owned(redirect))
            .add_scopes(config.scopes.iter().cloned().map(Scope::new))
            .set_pkce_challenge(challenge)
            .url();
        Ok(Authorization {
            url: url.into(),
            state,
            nonce: None,
            pkce_verifier: Some(verifier.secret().clone()),
        })
    }

    pub(crate) async fn exchange(
        &self,
        config: &ProviderConfig,
        exchange: CodeExchange<'_>,
    ) -> Result<ProviderUser, ProviderError> {
        let redirect = RedirectUrl::new(exchange.redirect_uri.to_owned())
            .map_err(|_| ProviderError::Refused("the redirect URI is not a URL".to_owned()))?;
        let client = self.oauth_client(config);
        let mut request = client
            .exchange_code(AuthorizationCode::new(exchange.code.to_owned()))
            .set_redirect_uri(Cow::Owned(redirect));
        if let Some(verifier) = exchange.pkce_verifier {
            request = request.set_pkce_verifier(PkceCodeVerifier::new(verifier.to_owned()));
        }
        let response = request
            .request_async(&self.http)
            .await
            .map_err(|error| ProviderError::Refused(token_error(&error)))?;
        self.user(response.access_token().secret()).await
    }

    pub(crate) async fn native(
        &self,
        config: &ProviderConfig,
        access_token: &str,
    ) -> Result<NativeUser, ProviderError> {
        let url = format!(
            "{}/applications/{}/token",
            self.api_url,
            utf8_percent_encode(&config.client_id)
        );
        let secret = config
            .client_secret
            .as_ref()
            .map(|secret| secret.0.as_str());
        let checked = self
            .http
            .post(&url)
            .basic_auth(&config.client_id, secret)
            .header(reqwest::header::ACCEPT, "application/vnd.github+json")
            .json(&json!({ "access_token": access_token }))
            .send()
            .await
            .map_err(|error| unavailable("the token check", &error))?;
        let status = checked.status();
        if status.is_server_error() {
            return Err(ProviderError::Unavailable(format!(
                "the token check answered {status}"
            )));
        }
        if !status.is_success() {
            return Err(ProviderError::Refused(format!(
                "the token check answered {status}: not a token of this app"
            )));
        }
        Ok(NativeUser {
            user: self.user(access_token).await?,
            id_token_exp: None,
        })
    }

    /// The person behind an access token: `/user` and `/user/emails`.
    async fn user(&self, access_token: &str) -> Result<ProviderUser, ProviderError> {
        let user: GitHubUser = self.api(access_token, "/user").await?;
        let emails: Vec<GitHubEmail> = self.api(access_token, "/user/emails").await?;
        let email = emails
            .into_iter()
            .find(|email| email.primary && email.verified)
            .map(|email| email.email);
        Ok(ProviderUser {
            subject: user.id.to_string(),
            email_verified: email.is_some(),
            email,
        })
    }

    async fn api<T: serde::de::DeserializeOwned>(
        &self,
        access_token: &str,
        path: &str,
    ) -> Result<T, ProviderError> {
        self.http
            .get(format!("{}{path}", self.api_url))
            .bearer_auth(access_token)
            .header(reqwest::header::ACCEPT, "application/vnd.github+json")
            .send()
            .await
            .and_then(reqwest::Response::error_for_status)
            .map_err(|error| ProviderError::Refused(format!("GET {path} {}", describe(&error))))?
            .json()
            .await
            .map_err(|error| ProviderError::Refused(format!("GET {path} {}", describe(&error))))
    }
}

fn unavailable(what: &str, error: &reqwest::Error) -> ProviderError {
    ProviderError::Unavailable(format!("{what} {}", describe(error)))
}

/// A client id in a path segment.
fn utf8_percent_encode(segment: &str) -> String {
    url::form_urlencoded::byte_serialize(segment.as_bytes()).collect()
}
