//! The claims of a simplejwt token.

use latchkey_domain::{Aal, Assurance, Method};
use serde_json::{Map, Value};

use crate::TokenError;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum TokenType {
    Access,
    Refresh,
    Sliding,
    /// The `mfa_token` of a login waiting for its second factor (v3): no
    /// endpoint that takes an access, refresh or sliding token accepts it.
    Mfa,
}

impl TokenType {
    pub fn as_str(&self) -> &'static str {
        match self {
            TokenType::Access => "access",
            TokenType::Refresh => "refresh",
            TokenType::Sliding => "sliding",
            TokenType::Mfa => "mfa",
        }
    }

    fn parse(raw: &str) -> Option<Self> {
        match raw {
            "access" => Some(TokenType::Access),
            "refresh" => Some(TokenType::Refresh),
            "sliding" => Some(TokenType::Sliding),
            "mfa" => Some(TokenType::Mfa),
            _ => None,
        }
    }
}

/// What a token says. `exp`, `iat` and `refresh_exp` are Unix seconds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Claims {
    pub token_type: TokenType,
    pub exp: i64,
    pub iat: i64,
    pub jti: String,
    pub user_id: i64,
    /// The session the token belongs to (v2); absent in tokens issued by
    /// Django or by latchkey before sessions, which `tokens_valid_after`
    /// alone governs.
    pub sid: Option<String>,
    /// Sliding tokens only: the instant after which it can no longer be
    /// refreshed.
    pub refresh_exp: Option<i64>,
    /// `amr` and `aal` (v3): how the session was authenticated. A token
    /// without them (Django's, latchkey's before v3) reads as no methods at
    /// `aal` 1.
    pub assurance: Assurance,
}

/// Claim names and values that depend on configuration.
#[derive(Debug, Clone)]
pub struct ClaimNames {
    pub user_id_claim: String,
    pub audience: Option<String>,
    pub issuer: Option<String>,
}

impl Claims {
    /// The JSON payload. `user_id` is a JSON integer, except under `sub`,
    /// which RFC 7519 requires to be a string.
    pub fn to_payload(&self, names: &ClaimNames) -> Map<String, Value> {
        let mut payload = Map::new();
        payload.insert("token_type".into(), self.token_type.as_str().into());
        payload.insert("exp".into(), self.exp.into());
        payload.insert("iat".into(), self.iat.into());
        payload.insert("jti".into(), self.jti.clone().into());
        let user_id = if names.user_id_claim == "sub" {
            Value::String(self.user_id.to_string())
        } else {
            Value::from(self.user_id)
        };
        payload.insert(names.user_id_claim.clone(), user_id);
        if let Some(sid) = &self.sid {
            payload.insert("sid".into(), sid.clone().into());
        }
        if let Some(aud) = &names.audience {
            payload.insert("aud".into(), aud.clone().into());
        }
        if let Some(iss) = &names.issuer {
            payload.insert("iss".into(), iss.clone().into());
        }
        if let Some(refresh_exp) = self.refresh_exp {
            payload.insert("refresh_exp".into(), refresh_exp.into());
        }
        let amr = self.assurance.amr.iter().map(|m| Value::from(m.amr()));
        payload.insert("amr".into(), Value::Array(amr.collect()));
        payload.insert("aal".into(), self.assurance.aal.level().into());
        payload
    }

    /// Reads a verified payload. Audience, issuer and expiry are checked by
    /// the caller; this only insists on well-formed claims.
    pub fn from_payload(
        payload: &Map<String, Value>,
        names: &ClaimNames,
    ) -> Result<Self, TokenError> {
        let token_type = match payload.get("token_type") {
            None | Some(Value::Null) => return Err(TokenError::NoType),
            Some(Value::String(raw)) => TokenType::parse(raw).ok_or(TokenError::WrongType)?,
            Some(_) => return Err(TokenError::WrongType),
        };
        let exp = integer_claim(payload, "exp")?;
        let iat = integer_claim(payload, "iat")?;
        let jti = match payload.get("jti") {
            Some(Value::String(jti)) if !jti.is_empty() => jti.clone(),
            _ => return Err(TokenError::Invalid),
        };
        let user_id = match payload.get(&names.user_id_claim) {
            Some(Value::Number(n)) => n.as_i64().ok_or(TokenError::Invalid)?,
            Some(Value::String(s)) if !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit()) => {
                s.parse().map_err(|_| TokenError::Invalid)?
            }
            _ => return Err(TokenError::Invalid),
        };
        let sid = match payload.get("sid") {
            None => None,
            Some(Value::String(sid)) if !sid.is_empty() && sid.len() <= 64 => Some(sid.clone()),
            Some(_) => return Err(TokenError::Invalid),
        };
        let refresh_exp = match payload.get("refresh_exp") {
            None => None,
            Some(_) => Some(integer_claim(payload, "refresh_exp")?),
        };
        Ok(Claims {
            token_type,
            exp,
            iat,
            jti,
            user_id,
            sid,
            refresh_exp,
            assurance: assurance(payload)?,
        })
    }
}

/// `amr` and `aal` as latchkey signs them: a list of the methods it knows,
/// and 1 or 2. Absent, they are no methods at `aal` 1.
fn assurance(payload: &Map<String, Value>) -> Result<Assurance, TokenError> {
    let amr = match payload.get("amr") {
        None => Vec::new(),
        Some(Value::Array(names)) if names.len() <= 8 => names
            .iter()
            .map(|name| name.as_str().and_then(Method::from_amr))
            .collect::<Option<_>>()
            .ok_or(TokenError::Invalid)?,
        Some(_) => return Err(TokenError::Invalid),
    };
    let aal = match payload.get("aal") {
        None => Aal::One,
        Some(level) => level
            .as_i64()
            .and_then(Aal::from_level)
            .ok_or(TokenError::Invalid)?,
    };
    Ok(Assurance { amr, aal })
}

/// A NumericDate claim: a JSON integer (PyJWT refuses strings and floats).
fn integer_claim(payload: &Map<String, Value>, name: &str) -> Result<i64, TokenError> {
    payload
        .get(name)
        .and_then(Value::as_i64)
        .ok_or(TokenError::Invalid)
}
