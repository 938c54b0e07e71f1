//! Recovery codes: 10 per set, each 12 characters of the base32 alphabet
//! (60 bits from the OS's CSPRNG), shown as `xxxx-xxxx-xxxx` in lowercase,
//! typed in any case with or without dashes and spaces. Storage keeps only
//! an HMAC-SHA-256 of each under a key of its own (so a copy of the
//! database, without the key, cannot test guesses offline).

use hmac::{Hmac, Mac};
use rand::Rng;
use sha2::Sha256;

/// Codes in a set.
pub const SET_SIZE: usize = 10;

/// Characters in a code.
pub const LENGTH: usize = 12;

/// RFC 4648's base32 alphabet.
const ALPHABET: &[u8; 32] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZ234567";

/// A new set, as shown to the user once.
pub fn new_set() -> Vec<String> {
    let mut rng = rand::rng();
    (0..SET_SIZE)
        .map(|_| {
            let code: String = (0..LENGTH)
                .map(|_| char::from(ALPHABET[rng.random_range(0..ALPHABET.len())]))
                .collect();
            shown(&code)
        })
        .collect()
}

/// `ABCDEFGHIJKL` as the user sees it: `abcd-efgh-ijkl`.
fn shown(code: &str) -> String {
    let lower = code.to_ascii_lowercase();
    format!("{}-{}-{}", &lower[..4], &lower[4..8], &lower[8..])
}

/// A typed code in its stored form (12 upper-case base32 characters), or
/// `None` when it cannot be a code: whitespace and dashes anywhere are
/// ignored, any other character outside the alphabet refuses it.
pub fn normalise(typed: &str) -> Option<String> {
    let kept: String = typed
        .chars()
        .filter(|c| !c.is_whitespace() && *c != '-')
        .map(|c| c.to_ascii_uppercase())
        .collect();
    (kept.len() == LENGTH && kept.bytes().all(|b| ALPHABET.contains(&b))).then_some(kept)
}

/// An imported code (a django-otp static token, an allauth code) in the
/// form its hash is taken of (`CodeFormat::AsStored`): whitespace anywhere
/// removed, every other character kept as typed; `None` when nothing is
/// left.
pub fn normalise_as_stored(typed: &str) -> Option<String> {
    let kept: String = typed.chars().filter(|c| !c.is_whitespace()).collect();
    (!kept.is_empty()).then_some(kept)
}

/// The stored form of a normalised code: HMAC-SHA-256 under `key`, in hex.
pub fn keyed_hash(key: &[u8], normalised: &str) -> String {
    // HMAC accepts a key of any length.
    #[allow(clippy::expect_used)]
    let mut mac = Hmac::<Sha256>::new_from_slice(key).expect("HMAC takes any key length");
    mac.update(normalised.as_bytes());
    crate::secrets::hex(&mac.finalize().into_bytes())
}

/// The hashes a typed code may be stored under: in latchkey's form and as
/// stored (imported codes), each under every key given (the current one and
/// those before a rotation). Empty when the code cannot be one at all.
pub fn lookup_hashes<'k>(keys: impl IntoIterator<Item = &'k [u8]>, typed: &str) -> Vec<String> {
    let forms: Vec<String> = [normalise(typed), normalise_as_stored(typed)]
        .into_iter()
        .flatten()
        .collect();
    keys.into_iter()
        .flat_map(|key| forms.iter().map(move |form| keyed_hash(key, form)))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_set_is_ten_distinct_codes_in_their_shown_form() {
        let set = new_set();
        assert_eq!(set.len(), SET_SIZE);
        let distinct: std::collections::HashSet<_> = set.iter().collect();
        assert_eq!(distinct.len(), SET_SIZE);
        for code in &set {
            assert_eq!(code.len(), 14, "{code}");
            assert_eq!(code.matches('-').count(), 2);
            assert_eq!(code, &code.to_ascii_lowercase());
            assert!(normalise(code).is_some(), "{code}");
        }
    }

    #[test]
    fn typed_in_any_case_with_or_without_dashes_and_spaces() {
        let stored = Some("ABCDEFGHIJ23".to_owned());
        for typed in [
            "abcd-efgh-ij23",
            "ABCDEFGHIJ23",
            " abcd efgh ij23 ",
            "aBcD-eFgH-iJ-23",
        ] {
            assert_eq!(normalise(typed), stored, "{typed:?}");
        }
        for bad in [
            "abcd-efgh-ij2",
            "abcd-efgh-ij231",
            "abcd-efgh-ij01",
            "ａbcd-efgh-ij23",
            "abcd\0efgh-ij23",
            "",
        ] {
            assert_eq!(normalise(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn imported_codes_ignore_whitespace_only() {
        assert_eq!(normalise_as_stored(" gu3k zh2y\n"), Some("gu3kzh2y".into()));
        assert_eq!(normalise_as_stored("GU3K-ZH2Y"), Some("GU3K-ZH2Y".into()));
        assert_eq!(normalise_as_stored(" \t"), None);
    }

    #[test]
    fn a_typed_code_is_looked_up_in_both_forms_under_every_key() {
        let (current, old) = (b"current".as_slice(), b"old".as_slice());
        let hashes = lookup_hashes([current, old], " ab2d-EFGH-ijkl ");
        assert_eq!(hashes.len(), 4);
        assert!(hashes.contains(&keyed_hash(old, "AB2DEFGHIJKL")));
        assert!(hashes.contains(&keyed_hash(current, "ab2d-EFGH-ijkl")));
        // an imported 8-digit allauth code has only its stored form
        assert_eq!(
            lookup_hashes([current], "1234 5678"),
            vec![keyed_hash(current, "12345678")]
        );
        assert!(lookup_hashes([current], "  ").is_empty());
    }

    #[test]
    fn the_stored_form_depends_on_the_key() {
        let a = keyed_hash(b"key-one", "ABCDEFGHIJ23");
        assert_eq!(a.len(), 64);
        assert_eq!(a, keyed_hash(b"key-one", "ABCDEFGHIJ23"));
        assert_ne!(a, keyed_hash(b"key-two", "ABCDEFGHIJ23"));
        assert_ne!(a, keyed_hash(b"key-one", "ABCDEFGHIJ24"));
    }
}
