//! TOTP as RFC 6238 and Google Authenticator read it: HMAC-SHA-1 over the
//! step counter (RFC 4226's dynamic truncation), the code of the current
//! step or of the step before or after accepted. Each device keeps its own
//! digits, step and `t0` (django-otp's devices may differ from 6/30/0).
//!
//! The RFC core is written here over the `hmac` and `sha1` crates the
//! workspace already links, rather than `totp-rs`: `totp-rs` has no `t0`,
//! and refuses keys under 128 bits, which django-otp devices may have.
//! Replay is not decided here: [`check`] returns the matched step's start,
//! and storage accepts it only if it is later than the user's last accepted
//! step, in one statement.

use hmac::{Hmac, Mac};
use percent_encoding::{AsciiSet, NON_ALPHANUMERIC, utf8_percent_encode};
use rand::RngCore;
use sha1::Sha1;
use subtle::ConstantTimeEq;

/// How a device makes its codes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TotpParams {
    /// Digits per code, 1 to [`MAX_DIGITS`] (Google Authenticator reads 6;
    /// django-otp devices have 6 or 8).
    pub digits: u32,
    /// Seconds per step (30 by default).
    pub step: i64,
    /// Unix second at which counting starts (0 by default).
    pub t0: i64,
}

impl Default for TotpParams {
    fn default() -> Self {
        TotpParams {
            digits: 6,
            step: 30,
            t0: 0,
        }
    }
}

/// The most digits a 31-bit truncated value fills.
pub const MAX_DIGITS: u32 = 9;

/// Steps accepted on either side of the current one.
pub const WINDOW: i64 = 1;

/// Why a presented code is refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CodeError {
    /// Not a code of this device's shape (letters, other digits, wrong
    /// length): an incorrect code all the same, never a panic.
    Malformed,
    /// The right shape, but the code of no step in the window (after the
    /// last accepted one).
    Incorrect,
}

impl TotpParams {
    /// Whether these parameters can make codes at all.
    pub fn is_valid(&self) -> bool {
        (1..=MAX_DIGITS).contains(&self.digits) && self.step > 0
    }

    /// The step counter at `now` (Unix seconds), or `None` before `t0`.
    pub fn counter_at(&self, now: i64) -> Option<u64> {
        let since = u64::try_from(now.checked_sub(self.t0)?).ok()?;
        since.checked_div(u64::try_from(self.step).ok()?)
    }

    /// The Unix second at which step `counter` begins: what storage keeps
    /// as the last accepted step, comparable across re-enrolments with
    /// another step or `t0`.
    pub fn step_start(&self, counter: u64) -> Option<i64> {
        i64::try_from(counter)
            .ok()?
            .checked_mul(self.step)?
            .checked_add(self.t0)
    }
}

/// Bytes in a new secret: 160 bits, RFC 4226's recommendation.
pub const SECRET_BYTES: usize = 20;

/// A new secret from the OS's CSPRNG.
pub fn new_secret() -> [u8; SECRET_BYTES] {
    let mut secret = [0u8; SECRET_BYTES];
    rand::rng().fill_bytes(&mut secret);
    secret
}

/// RFC 4648's base32 alphabet, as authenticator apps read secrets.
const BASE32: &[u8; 32] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZ234567";

/// A secret as authenticator apps take it: base32, without padding.
pub fn base32(bytes: &[u8]) -> String {
    let mut out = String::with_capacity(bytes.len().div_ceil(5) * 8);
    for chunk in bytes.chunks(5) {
        let mut block = [0u8; 5];
        block[..chunk.len()].copy_from_slice(chunk);
        let bits = block.iter().fold(0u64, |acc, b| (acc << 8) | u64::from(*b));
        let chars = (chunk.len() * 8).div_ceil(5);
        for i in 0..chars {
            let index = (bits >> (35 - 5 * i)) & 0x1f;
            out.push(char::from(BASE32[index as usize]));
        }
    }
    out
}

/// A base32 secret as typed or stored by another system (any case,
/// padding and spaces ignored), or `None` when it is not base32.
pub fn from_base32(text: &str) -> Option<Vec<u8>> {
    let mut bits = 0u64;
    let mut held = 0u32;
    let mut out = Vec::with_capacity(text.len() * 5 / 8);
    for c in text.chars().filter(|c| !c.is_whitespace() && *c != '=') {
        let upper = c.to_ascii_uppercase();
        let value = BASE32.iter().position(|b| char::from(*b) == upper)?;
        bits = (bits << 5) | value as u64;
        held += 5;
        if held >= 8 {
            held -= 8;
            out.push((bits >> held) as u8);
            bits &= (1 << held) - 1;
        }
    }
    Some(out)
}

/// What the `otpauth://` label and parameters escape: everything but
/// letters and digits, as Google Authenticator's key URI format asks.
const URI_ESCAPED: &AsciiSet = NON_ALPHANUMERIC;

/// The key URI an authenticator app scans (Google Authenticator's
/// `otpauth://totp/ISSUER:ACCOUNT?secret=…&issuer=ISSUER&algorithm=SHA1&digits=6&period=30`).
pub fn otpauth_url(issuer: &str, account: &str, secret: &[u8], params: &TotpParams) -> String {
    let issuer = utf8_percent_encode(issuer, URI_ESCAPED).to_string();
    let account = utf8_percent_encode(account, URI_ESCAPED);
    format!(
        "otpauth://totp/{issuer}:{account}?secret={}&issuer={issuer}&algorithm=SHA1&digits={}&period={}",
        base32(secret),
        params.digits,
        params.step
    )
}

/// RFC 4226's HOTP value for `counter`, as `digits` decimal digits.
pub fn code_at(secret: &[u8], params: &TotpParams, counter: u64) -> String {
    // HMAC accepts a key of any length.
    #[allow(clippy::expect_used)]
    let mut mac = Hmac::<Sha1>::new_from_slice(secret).expect("HMAC takes any key length");
    mac.update(&counter.to_be_bytes());
    let digest = mac.finalize().into_bytes();
    let offset = usize::from(digest[19] & 0x0f);
    let binary = u32::from_be_bytes([
        digest[offset] & 0x7f,
        digest[offset + 1],
        digest[offset + 2],
        digest[offset + 3],
    ]);
    let digits = params.digits.clamp(1, MAX_DIGITS);
    let value = binary % 10u32.pow(digits);
    format!("{value:0width$}", width = digits as usize)
}

/// The code as typed, reduced to its digits: whitespace anywhere is
/// ignored; anything but ASCII digits (letters, full-width or other
/// scripts' digits, NUL) makes it malformed, as does the wrong length.
pub fn normalise(code: &str, digits: u32) -> Result<String, CodeError> {
    let kept: String = code.chars().filter(|c| !c.is_whitespace()).collect();
    if kept.len() == digits as usize && kept.bytes().all(|b| b.is_ascii_digit()) {
        Ok(kept)
    } else {
        Err(CodeError::Malformed)
    }
}

/// Checks `code` at `now` against the current step and the [`WINDOW`]
/// around it, only among steps that begin after `last_step_at` (the start
/// of the user's last accepted step): the start of the step it matched.
/// Every candidate is compared, in constant time, so the answer's timing
/// does not tell which step matched.
pub fn check(
    secret: &[u8],
    params: &TotpParams,
    code: &str,
    now: i64,
    last_step_at: Option<i64>,
) -> Result<i64, CodeError> {
    if !params.is_valid() {
        return Err(CodeError::Incorrect);
    }
    let code = normalise(code, params.digits)?;
    let current = params.counter_at(now).ok_or(CodeError::Incorrect)?;
    let mut matched = None;
    // The current step first: of two matching steps (a 1-in-10^6 chance),
    // the one the user most likely read.
    for offset in [0, -WINDOW, WINDOW] {
        let Some(counter) = current.checked_add_signed(offset) else {
            continue;
        };
        let Some(start) = params.step_start(counter) else {
            continue;
        };
        let fresh = last_step_at.is_none_or(|last| start > last);
        let equal: bool = code_at(secret, params, counter)
            .as_bytes()
            .ct_eq(code.as_bytes())
            .into();
        if equal && fresh && matched.is_none() {
            matched = Some(start);
        }
    }
    matched.ok_or(CodeError::Incorrect)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// RFC 6238 Appendix B: the SHA-1 seed and the 8-digit codes.
    const RFC_SEED: &[u8] = b"12345678901234567890";

    fn rfc() -> TotpParams {
        TotpParams {
            digits: 8,
            step: 30,
            t0: 0,
        }
    }

    #[test]
    fn rfc_6238_appendix_b_vectors() {
        for (time, expected) in [
            (59, "94287082"),
            (1_111_111_109, "07081804"),
            (1_111_111_111, "14050471"),
            (1_234_567_890, "89005924"),
            (2_000_000_000, "69279037"),
            (20_000_000_000, "65353130"),
        ] {
            let counter = rfc().counter_at(time).unwrap();
            assert_eq!(code_at(RFC_SEED, &rfc(), counter), expected, "T = {time}");
            assert_eq!(
                check(RFC_SEED, &rfc(), expected, time, None),
                Ok(rfc().step_start(counter).unwrap())
            );
        }
    }

    #[test]
    fn rfc_4226_appendix_d_hotp_values() {
        let six = TotpParams::default();
        for (counter, expected) in ["755224", "287082", "359152", "969429", "338314"]
            .iter()
            .enumerate()
        {
            assert_eq!(code_at(RFC_SEED, &six, counter as u64), *expected);
        }
    }

    #[test]
    fn the_step_before_and_after_are_accepted_and_no_further() {
        let p = TotpParams::default();
        let now = 1_800_000_015;
        let current = p.counter_at(now).unwrap();
        for (counter, ok) in [
            (current - 2, false),
            (current - 1, true),
            (current, true),
            (current + 1, true),
            (current + 2, false),
        ] {
            let code = code_at(RFC_SEED, &p, counter);
            let expected = if ok {
                Ok(p.step_start(counter).unwrap())
            } else {
                Err(CodeError::Incorrect)
            };
            assert_eq!(check(RFC_SEED, &p, &code, now, None), expected);
        }
    }

    #[test]
    fn a_step_at_or_before_the_last_accepted_one_is_refused() {
        let p = TotpParams::default();
        let now = 1_800_000_015;
        let current = p.counter_at(now).unwrap();
        let code = code_at(RFC_SEED, &p, current);
        let start = p.step_start(current).unwrap();
        assert_eq!(check(RFC_SEED, &p, &code, now, Some(start - 30)), Ok(start));
        assert_eq!(
            check(RFC_SEED, &p, &code, now, Some(start)),
            Err(CodeError::Incorrect)
        );
        // The next step's code still works after this one was used.
        let next = code_at(RFC_SEED, &p, current + 1);
        assert_eq!(check(RFC_SEED, &p, &next, now, Some(start)), Ok(start + 30));
    }

    #[test]
    fn a_device_keeps_its_own_digits_step_and_t0() {
        let p = TotpParams {
            digits: 8,
            step: 60,
            t0: 1_000,
        };
        let now = 1_800_000_000;
        let counter = (now - 1_000) as u64 / 60;
        let code = code_at(RFC_SEED, &p, counter);
        assert_eq!(code.len(), 8);
        assert_eq!(
            check(RFC_SEED, &p, &code, now, None),
            Ok(1_000 + counter as i64 * 60)
        );
        // Before t0 there is no step.
        assert_eq!(p.counter_at(999), None);
    }

    #[test]
    fn whitespace_is_ignored_and_anything_else_is_malformed() {
        assert_eq!(normalise(" 123 456\t", 6), Ok("123456".into()));
        assert_eq!(normalise("123\u{a0}456", 6), Ok("123456".into()));
        for bad in [
            "12345",
            "1234567",
            "12345a",
            "１２３４５６",
            "١٢٣٤٥٦",
            "123\u{0}56",
            "",
            "123-456",
        ] {
            assert_eq!(normalise(bad, 6), Err(CodeError::Malformed), "{bad:?}");
            assert_eq!(
                check(RFC_SEED, &TotpParams::default(), bad, 1_800_000_000, None),
                Err(CodeError::Malformed)
            );
        }
    }

    #[test]
    fn short_keys_work_as_django_otp_allows_them() {
        let key = [7u8; 10];
        let p = TotpParams::default();
        let now = 1_800_000_000;
        let code = code_at(&key, &p, p.counter_at(now).unwrap());
        assert!(check(&key, &p, &code, now, None).is_ok());
    }

    #[test]
    fn nonsense_parameters_check_nothing() {
        let zero_step = TotpParams {
            step: 0,
            ..TotpParams::default()
        };
        assert_eq!(
            check(RFC_SEED, &zero_step, "123456", 100, None),
            Err(CodeError::Incorrect)
        );
    }

    #[test]
    fn base32_is_rfc_4648s_and_reads_back() {
        // RFC 4648 section 10's vectors, without padding.
        for (raw, encoded) in [
            ("", ""),
            ("f", "MY"),
            ("fo", "MZXQ"),
            ("foo", "MZXW6"),
            ("foob", "MZXW6YQ"),
            ("fooba", "MZXW6YTB"),
            ("foobar", "MZXW6YTBOI"),
        ] {
            assert_eq!(base32(raw.as_bytes()), encoded);
            assert_eq!(from_base32(encoded).unwrap(), raw.as_bytes());
        }
        assert_eq!(from_base32("mzxw 6ytb oi======").unwrap(), b"foobar");
        assert_eq!(from_base32("MZXW1"), None);
        let secret = new_secret();
        assert_eq!(base32(&secret).len(), 32);
        assert_eq!(from_base32(&base32(&secret)).unwrap(), secret);
        assert_ne!(new_secret(), secret);
    }

    #[test]
    fn the_key_uri_escapes_issuer_and_account() {
        let url = otpauth_url(
            "Acme Co",
            "jae+1@example.com",
            b"12345678901234567890",
            &TotpParams::default(),
        );
        assert_eq!(
            url,
            "otpauth://totp/Acme%20Co:jae%2B1%40example%2Ecom?secret=GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ&issuer=Acme%20Co&algorithm=SHA1&digits=6&period=30"
        );
    }
}
