//! Passwords as Django validates them: its four default validators with its
//! messages, plus bcrypt's 72-byte limit, which is refused rather than
//! silently truncated.

use std::collections::HashSet;
use std::fmt;
use std::sync::LazyLock;

use crate::Email;

pub const MIN_LENGTH: usize = 8;
/// bcrypt only reads the first 72 bytes; longer input would be truncated.
pub const MAX_BYTES: usize = 72;
/// The limit under every other password hasher (argon2id, PBKDF2): long
/// enough for any passphrase, short enough that hashing it costs nothing
/// extra.
pub const MAX_BYTES_NON_BCRYPT: usize = 4096;
/// Django's `UserAttributeSimilarityValidator` default.
const MAX_SIMILARITY: f64 = 0.7;

/// Django's own list (`django/contrib/auth/common-passwords.txt.gz`, Royce
/// Williams' 20,000 most common passwords, lowercased and deduplicated).
static COMMON_PASSWORDS: LazyLock<HashSet<&'static str>> = LazyLock::new(|| {
    include_str!("../data/common-passwords.txt")
        .lines()
        .map(str::trim)
        .filter(|line| !line.is_empty())
        .collect()
});

/// A password that passed every validator. Its `Debug` never shows the text.
#[derive(Clone, PartialEq, Eq)]
pub struct Password(String);

/// Why a password was refused; `Display` is Django's message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PasswordError {
    Blank,
    /// bcrypt ends its key at a NUL, so `P` and `P\0P` would be one password.
    NullCharacter,
    /// Over bcrypt's 72 bytes (the limit of [`Password::parse`]).
    TooLong,
    /// Over the limit given to [`Password::parse_with_limit`] when it is not
    /// 72 bytes (a limit of 72 reports [`PasswordError::TooLong`]).
    TooLongFor(usize),
    TooShort,
    TooCommon,
    EntirelyNumeric,
    TooSimilarToEmail,
}

impl PasswordError {
    pub fn message(&self) -> String {
        match self {
            PasswordError::Blank => "This field may not be blank.".into(),
            PasswordError::NullCharacter => "Null characters are not allowed.".into(),
            PasswordError::TooLong => {
                format!("This password is too long. It must contain at most {MAX_BYTES} bytes.")
            }
            PasswordError::TooLongFor(max_bytes) => {
                format!("This password is too long. It must contain at most {max_bytes} bytes.")
            }
            PasswordError::TooShort => format!(
                "This password is too short. It must contain at least {MIN_LENGTH} characters."
            ),
            PasswordError::TooCommon => "This password is too common.".into(),
            PasswordError::EntirelyNumeric => "This password is entirely numeric.".into(),
            PasswordError::TooSimilarToEmail => "The password is too similar to the email.".into(),
        }
    }
}

impl fmt::Display for PasswordError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message())
    }
}

impl Password {
    /// Runs every validator and returns all failures, in Django's order, as
    /// Django reports them all at once.
    pub fn parse(raw: &str, email: Option<&Email>) -> Result<Self, Vec<PasswordError>> {
        Self::parse_with_limit(raw, email, MAX_BYTES)
    }

    /// [`Password::parse`] with another length limit in bytes (72 under
    /// bcrypt, [`MAX_BYTES_NON_BCRYPT`] under the other hashers).
    pub fn parse_with_limit(
        raw: &str,
        email: Option<&Email>,
        max_bytes: usize,
    ) -> Result<Self, Vec<PasswordError>> {
        if raw.is_empty() {
            return Err(vec![PasswordError::Blank]);
        }
        if raw.contains('\0') {
            return Err(vec![PasswordError::NullCharacter]);
        }
        let mut errors = Vec::new();
        if let Some(email) = email
            && is_too_similar(raw, email.as_str())
        {
            errors.push(PasswordError::TooSimilarToEmail);
        }
        if raw.chars().count() < MIN_LENGTH {
            errors.push(PasswordError::TooShort);
        }
        if is_common(raw) {
            errors.push(PasswordError::TooCommon);
        }
        if raw.chars().all(|c| c.is_numeric()) {
            errors.push(PasswordError::EntirelyNumeric);
        }
        errors.extend(Self::check_length(raw, max_bytes).err());
        if errors.is_empty() {
            Ok(Password(raw.to_owned()))
        } else {
            Err(errors)
        }
    }

    /// Only the hard limits (not blank, at most 72 bytes): for callers that
    /// chose to bypass the validators, as Django's `createsuperuser` offers.
    pub fn parse_unvalidated(raw: &str) -> Result<Self, PasswordError> {
        Self::parse_unvalidated_with_limit(raw, MAX_BYTES)
    }

    /// [`Password::parse_unvalidated`] with another length limit in bytes.
    pub fn parse_unvalidated_with_limit(
        raw: &str,
        max_bytes: usize,
    ) -> Result<Self, PasswordError> {
        if raw.is_empty() {
            return Err(PasswordError::Blank);
        }
        if raw.contains('\0') {
            return Err(PasswordError::NullCharacter);
        }
        Self::check_length(raw, max_bytes)?;
        Ok(Password(raw.to_owned()))
    }

    fn check_length(raw: &str, max_bytes: usize) -> Result<(), PasswordError> {
        if raw.len() <= max_bytes {
            Ok(())
        } else if max_bytes == MAX_BYTES {
            Err(PasswordError::TooLong)
        } else {
            Err(PasswordError::TooLongFor(max_bytes))
        }
    }

    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Password {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Password(***)")
    }
}

fn is_common(raw: &str) -> bool {
    COMMON_PASSWORDS.contains(raw.trim().to_lowercase().as_str())
}

/// Django's `UserAttributeSimilarityValidator` over the email: the whole
/// address and each of its `\W+`-separated parts are compared with
/// `SequenceMatcher.quick_ratio`, skipping parts far shorter than the password.
fn is_too_similar(raw: &str, email: &str) -> bool {
    let password = raw.to_lowercase();
    let value = email.to_lowercase();
    let parts = value
        .split(|c: char| !(c.is_alphanumeric() || c == '_'))
        .filter(|part| !part.is_empty())
        .chain(std::iter::once(value.as_str()));
    let pwd_len = password.chars().count();
    parts
        .filter(|part| !exceeds_maximum_length_ratio(pwd_len, part.chars().count()))
        .any(|part| quick_ratio(&password, part) >= MAX_SIMILARITY)
}

fn exceeds_maximum_length_ratio(pwd_len: usize, value_len: usize) -> bool {
    let length_bound_similarity = MAX_SIMILARITY / 2.0 * pwd_len as f64;
    pwd_len >= 10 * value_len && (value_len as f64) < length_bound_similarity
}

/// `difflib.SequenceMatcher(a, b).quick_ratio()`: twice the size of the
/// multiset intersection of characters over the total length.
fn quick_ratio(a: &str, b: &str) -> f64 {
    let total = a.chars().count() + b.chars().count();
    if total == 0 {
        return 1.0;
    }
    let mut available: std::collections::HashMap<char, usize> = std::collections::HashMap::new();
    for c in b.chars() {
        *available.entry(c).or_default() += 1;
    }
    let mut matches = 0usize;
    for c in a.chars() {
        if let Some(n) = available.get_mut(&c)
            && *n > 0
        {
            *n -= 1;
            matches += 1;
        }
    }
    2.0 * matches as f64 / total as f64
}

#[cfg(test)]
mod tests {
    use super::*;

    fn email() -> Email {
        Email::parse("jae.kim@example.com").unwrap()
    }

    fn messages(raw: &str) -> Vec<String> {
        Password::parse(raw, Some(&email()))
            .unwrap_err()
            .iter()
            .map(PasswordError::message)
            .collect()
    }

    #[test]
    fn a_strong_password_passes() {
        let password = Password::parse("correct-Horse-battery", Some(&email())).unwrap();
        assert_eq!(password.expose(), "correct-Horse-battery");
        assert_eq!(format!("{password:?}"), "Password(***)");
    }

    #[test]
    fn too_short_has_djangos_message() {
        assert_eq!(
            messages("x7#Kq"),
            vec!["This password is too short. It must contain at least 8 characters."]
        );
    }

    #[test]
    fn common_password_is_refused_case_insensitively() {
        assert_eq!(
            messages("PassWord123"),
            vec!["This password is too common."]
        );
        assert_eq!(COMMON_PASSWORDS.len(), 19_640);
    }

    #[test]
    fn entirely_numeric_is_refused_and_all_failures_are_reported() {
        assert_eq!(
            messages("12345"),
            vec![
                "This password is too short. It must contain at least 8 characters.",
                "This password is too common.",
                "This password is entirely numeric.",
            ]
        );
        assert_eq!(
            messages("80519372619"),
            vec!["This password is entirely numeric."]
        );
    }

    #[test]
    fn similar_to_the_email_is_refused() {
        assert_eq!(
            messages("jae.kim@example"),
            vec!["The password is too similar to the email."]
        );
        assert_eq!(
            messages("examplejae"),
            vec!["The password is too similar to the email."]
        );
        assert!(Password::parse("kimjae99", Some(&email())).is_ok());
    }

    #[test]
    fn similarity_is_not_checked_without_an_email() {
        assert!(Password::parse("jae.kim@example", None).is_ok());
    }

    #[test]
    fn over_72_bytes_is_refused_even_when_short_in_characters() {
        // 25 characters, 75 bytes: bcrypt would silently truncate it.
        let raw = "한".repeat(25);
        assert_eq!(raw.len(), 75);
        assert_eq!(
            messages(&raw),
            vec!["This password is too long. It must contain at most 72 bytes."]
        );
        let at_limit = "한".repeat(24);
        assert!(Password::parse(&at_limit, Some(&email())).is_ok());
    }

    #[test]
    fn a_nul_character_is_refused() {
        assert_eq!(
            messages("abc\0abc\0abc"),
            vec!["Null characters are not allowed."]
        );
        assert_eq!(
            Password::parse_unvalidated("\0\0\0\0"),
            Err(PasswordError::NullCharacter)
        );
    }

    #[test]
    fn blank_is_its_own_error() {
        assert_eq!(messages(""), vec!["This field may not be blank."]);
    }

    #[test]
    fn unvalidated_parse_keeps_the_hard_limits_only() {
        assert!(Password::parse_unvalidated("1234").is_ok());
        assert_eq!(Password::parse_unvalidated(""), Err(PasswordError::Blank));
        assert_eq!(
            Password::parse_unvalidated(&"a".repeat(73)),
            Err(PasswordError::TooLong)
        );
    }

    #[test]
    fn another_limit_is_named_in_the_message() {
        let long = "correct-Horse-battery ".repeat(20);
        assert!(long.len() > 72 && long.len() < 4096);
        assert!(Password::parse_with_limit(&long, Some(&email()), 4096).is_ok());
        assert!(Password::parse_unvalidated_with_limit(&long, 4096).is_ok());
        let too_long = "x7#Kq".repeat(820);
        assert_eq!(too_long.len(), 4100);
        let errors = Password::parse_with_limit(&too_long, Some(&email()), 4096).unwrap_err();
        assert_eq!(
            errors
                .iter()
                .map(PasswordError::message)
                .collect::<Vec<_>>(),
            vec!["This password is too long. It must contain at most 4096 bytes."]
        );
        assert_eq!(
            Password::parse_unvalidated_with_limit(&too_long, 4096),
            Err(PasswordError::TooLongFor(4096))
        );
        // 72 is bcrypt's limit, reported as before.
        assert_eq!(
            Password::parse_unvalidated_with_limit(&"a".repeat(73), 72),
            Err(PasswordError::TooLong)
        );
        // The hard limits hold under any limit.
        assert_eq!(
            Password::parse_unvalidated_with_limit("a\0b", 4096),
            Err(PasswordError::NullCharacter)
        );
        assert_eq!(
            Password::parse_with_limit("", None, 4096),
            Err(vec![PasswordError::Blank])
        );
    }

    #[test]
    fn quick_ratio_matches_difflib() {
        // difflib.SequenceMatcher(a="abcd", b="bcde").quick_ratio() == 0.75
        assert!((quick_ratio("abcd", "bcde") - 0.75).abs() < 1e-9);
        assert!((quick_ratio("aaaa", "a") - 0.4).abs() < 1e-9);
    }
}
