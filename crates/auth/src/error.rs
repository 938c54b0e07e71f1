/// Why a token was refused, with simplejwt's message for each.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum TokenError {
    #[error("Token is expired")]
    Expired,
    #[error("Token is invalid")]
    Invalid,
    #[error("Token has wrong type")]
    WrongType,
    #[error("Token has no type")]
    NoType,
}

impl TokenError {
    pub fn message(&self) -> &'static str {
        match self {
            TokenError::Expired => "Token is expired",
            TokenError::Invalid => "Token is invalid",
            TokenError::WrongType => "Token has wrong type",
            TokenError::NoType => "Token has no type",
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum HashError {
    #[error("password longer than 72 bytes")]
    TooLong,
    #[error("bcrypt failed: {0}")]
    Bcrypt(String),
}

#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    #[error("{0}")]
    Invalid(String),
}
