//! `POST /auth/mfa/verify/` fed one bad input per test (issue 22; the
//! decided details, as `docs/api.md` now words them: fields read as DRF's
//! `CharField`, "Incorrect code." for anything but ASCII digits of the
//! right length, a NUL in a code included, whitespace ignored), and
//! the `mfa_token` where another token belongs. Each test asserts the whole
//! answer, then what the input cost:
//!
//! - a field error (missing, null, blank, not a string, a NUL in the
//!   `mfa_token`, both codes) spends no try:
//!   four wrong codes after it, the right code on the same `mfa_token`
//!   still logs in;
//! - a wrong code (letters, full-width digits, 5, 9 or 1000 digits, a NUL,
//!   a recovery code outside its alphabet) spends one:
//!   four wrong codes after it end the token (401), and a new login takes
//!   the right code, whose step nothing used;
//! - a token that is not a live `mfa_token` (401) costs the real one
//!   nothing: the right code on it logs in.
//!
//! Codes come from pyotp 2.12.0 (`latchkey_tests::mfa`): `django:` tests.

use jsonwebtoken::Algorithm;
use latchkey_tests::app::Req;
use latchkey_tests::mfa_enrol::{Enrolled, paths};
use latchkey_tests::{Ctx, TEST_SECRET, TestApp, forge, now, payload, tests};
use serde_json::{Value, json};

use crate::mfa_login::{
    enrolled, incorrect, password_step, token_not_valid, verify_code, verify_recovery_code,
};

tests![
    django:
    an_empty_body_names_both_missing_fields,
    a_missing_mfa_token_is_required,
    a_null_mfa_token_may_not_be_null,
    a_blank_mfa_token_may_not_be_blank,
    a_nul_in_the_mfa_token_is_not_allowed,
    a_missing_code_is_required,
    a_null_code_may_not_be_null,
    a_blank_code_may_not_be_blank,
    a_nul_in_the_code_is_an_incorrect_code,
    a_null_recovery_code_may_not_be_null,
    a_blank_recovery_code_may_not_be_blank,
    a_nul_in_the_recovery_code_is_an_incorrect_code,
    a_code_and_a_recovery_code_together_are_refused,
    letters_are_an_incorrect_code,
    full_width_digits_of_the_right_code_are_an_incorrect_code,
    five_digits_are_an_incorrect_code,
    nine_digits_are_an_incorrect_code,
    whitespace_anywhere_in_the_code_is_ignored,
    a_whitespace_only_code_may_not_be_blank,
    a_code_that_is_not_a_string_is_not_a_valid_string,
    a_code_sent_as_a_json_number_is_read_as_its_digits,
    a_thousand_digits_are_an_incorrect_code,
    a_recovery_code_outside_its_alphabet_is_incorrect,
    an_access_token_is_not_an_mfa_token,
    a_refresh_token_is_not_an_mfa_token,
    a_sliding_token_is_not_an_mfa_token,
    a_forged_mfa_token_is_refused,
    an_mfa_token_signed_with_another_key_is_refused,
    a_tampered_mfa_token_is_refused,
    a_re_signed_mfa_token_past_its_exp_is_refused,
    garbage_as_mfa_token_is_refused,
    an_mfa_token_is_not_a_bearer_access_token,
    an_mfa_token_is_not_a_refresh_token,
    an_mfa_token_is_not_a_sliding_token,
    an_mfa_token_does_not_pass_token_verify,
];

/// An enrolled user halfway through a login, and the code that completes
/// it (not used yet).
struct HalfWay {
    app: TestApp,
    jae: Enrolled,
    mfa_token: String,
    code: String,
}

impl HalfWay {
    async fn new(ctx: &mut Ctx) -> HalfWay {
        let app = ctx.spawn().await;
        let mut jae = enrolled(&app, "jae@example.com").await;
        let mfa_token = password_step(&app, "jae@example.com").await;
        let code = jae.totp.next_code().await;
        HalfWay {
            app,
            jae,
            mfa_token,
            code,
        }
    }

    /// `POST /auth/mfa/verify/` with exactly `body`.
    async fn verify(&self, body: Value) -> latchkey_tests::Response {
        self.app.post_json(paths::VERIFY, body).await
    }

    /// Four wrong codes, each an ordinary 400.
    async fn four_wrong_codes(&mut self) {
        let wrong = self.jae.totp.wrong_code();
        for _ in 0..4 {
            verify_code(&self.app, &self.mfa_token, &wrong)
                .await
                .assert(400, incorrect("code"));
        }
    }

    /// The input spent no try and used nothing: after four wrong codes the
    /// right code still completes the login on the same token.
    async fn spent_no_try(mut self) {
        self.four_wrong_codes().await;
        let verified = verify_code(&self.app, &self.mfa_token, &self.code).await;
        verified.assert_status(200);
        assert_eq!(payload(&verified.access())["amr"], json!(["pwd", "otp"]));
    }

    /// The input spent one try, and no step: four wrong codes after it end
    /// the token, and a new login takes the right code.
    async fn spent_one_try(mut self) {
        self.four_wrong_codes().await;
        verify_code(&self.app, &self.mfa_token, &self.code)
            .await
            .assert_unauthorized(token_not_valid());
        let fresh = password_step(&self.app, "jae@example.com").await;
        verify_code(&self.app, &fresh, &self.code)
            .await
            .assert_status(200);
    }

    /// The real token is untouched: the right code logs in with it.
    async fn logs_in(self) {
        verify_code(&self.app, &self.mfa_token, &self.code)
            .await
            .assert_status(200);
    }
}

fn field_error(field: &str, message: &str) -> Value {
    json!({ field: [message] })
}

const REQUIRED: &str = "This field is required.";
const NOT_NULL: &str = "This field may not be null.";
const NOT_BLANK: &str = "This field may not be blank.";
const NO_NUL: &str = "Null characters are not allowed.";

/// `text` with a NUL in its middle.
fn with_nul(text: &str) -> String {
    let middle = text.len() / 2;
    format!("{}\u{0}{}", &text[..middle], &text[middle..])
}

async fn an_empty_body_names_both_missing_fields(mut ctx: Ctx) {
    let half = HalfWay::new(&mut ctx).await;
    half.verify(json!({}))
        .await
        .assert(400, json!({"mfa_token": [REQUIRED], "code": [REQUIRED]}));
    half.spent_no_try().await;
}

async fn a_missing_mfa_token_is_required(mut ctx: Ctx) {
    let half = HalfWay::new(&mut ctx).await;
    half.verify(json!({"code": half.code}))
        .await
        .assert(400, field_error("mfa_token", REQUIRED));
    half.spent_no_try().await;
}

async fn a_null_mfa_token_may_not_be_null(mut ctx: Ctx) {
    let half = HalfWay::new(&mut ctx).await;
    half.verify(json!({"mfa_token": null, "code": half.code}))
        .await
        .assert(400, field_error("mfa_token", NOT_NULL));
    half.spent_no_try().await;
}

async fn a_blank_mfa_token_may_not_be_blank(mut ctx: Ctx) {
    let half = HalfWay::new(&mut ctx).await;
    half.verify(json!({"mfa_token": "", "code": half.code}))
        .await
        .assert(400, field_error("mfa_token", NOT_BLANK));
    half.spent_no_try().await;
}

async fn a_nul_in_the_mfa_token_is_not_allowed(mut ctx: Ctx) {
    let half = HalfWay::new(&mut ctx).await;
    half.verify(json!({"mfa_token": with_nul(&half.mfa_token), "code": half.code}))
        .await
        .assert(400, field_error("mfa_token", NO_NUL));
    half.spent_no_try().await;
}

async fn a_missing_code_is_required(mut ctx: Ctx) {
    let half = HalfWay::new(&mut ctx).await;
    half.verify(json!({"mfa_token": half.mfa_token}))
        .await
        .assert(400, field_error("code", REQUIRED));
    half.spent_no_try().await;
}

async fn a_null_code_may_not_be_null(mut ctx: Ctx) {
    let half = HalfWay::new(&mut ctx).await;
    half.verify(json!({"mfa_token": half.mfa_token, "code": null}))
        .await
        .assert(400, field_error("code", NOT_NULL));
    half.spent_no_try().await;
}

async fn a_blank_code_may_not_be_blank(mut ctx: Ctx) {
    let half = HalfWay::new(&mut ctx).await;
    half.verify(json!({"mfa_token": half.mfa_token, "code": ""}))
        .await
        .assert(400, field_error("code", NOT_BLANK));
    half.spent_no_try().await;
}

/// A NUL, like any character that does not belong in a code, makes it an
/// incorrect code (docs/api.md, "Codes as typed"), not a field error.
async fn a_nul_in_the_code_is_an_incorrect_code(mut ctx: Ctx) {
    let half = HalfWay::new(&mut ctx).await;
    half.verify(json!({"mfa_token": half.mfa_token, "code": with_nul(&half.code)}))
        .await
        .assert(400, incorrect("code"));
    half.spent_one_try().await;
}

async fn a_null_recovery_code_may_not_be_null(mut ctx: Ctx) {
    let half = HalfWay::new(&mut ctx).await;
    half.verify(json!({"mfa_token": half.mfa_token, "recovery_code": null}))
        .await
        .assert(400, field_error("recovery_code", NOT_NULL));
    half.spent_no_try().await;
}

async fn a_blank_recovery_code_may_not_be_blank(mut ctx: Ctx) {
    let half = HalfWay::new(&mut ctx).await;
    half.verify(json!({"mfa_token": half.mfa_token, "recovery_code": ""}))
        .await
        .assert(400, field_error("recovery_code", NOT_BLANK));
    half.spent_no_try().await;
}

async fn a_nul_in_the_recovery_code_is_an_incorrect_code(mut ctx: Ctx) {
    let half = HalfWay::new(&mut ctx).await;
    let code = with_nul(&half.jae.recovery_codes[0]);
    half.verify(json!({"mfa_token": half.mfa_token, "recovery_code": code}))
        .await
        .assert(400, incorrect("recovery_code"));
    // The code itself was not used.
    let fresh = password_step(&half.app, "jae@example.com").await;
    verify_recovery_code(&half.app, &fresh, &half.jae.recovery_codes[0])
        .await
        .assert_status(200);
    half.spent_one_try().await;
}

async fn a_code_and_a_recovery_code_together_are_refused(mut ctx: Ctx) {
    let half = HalfWay::new(&mut ctx).await;
    let recovery = half.jae.recovery_codes[0].clone();
    half.verify(json!({"mfa_token": half.mfa_token, "code": half.code, "recovery_code": recovery}))
        .await
        .assert(
            400,
            json!({"non_field_errors": ["Send either code or recovery_code, not both."]}),
        );
    // Neither was used.
    let fresh = password_step(&half.app, "jae@example.com").await;
    verify_recovery_code(&half.app, &fresh, &recovery)
        .await
        .assert_status(200);
    half.spent_no_try().await;
}

async fn letters_are_an_incorrect_code(mut ctx: Ctx) {
    let half = HalfWay::new(&mut ctx).await;
    half.verify(json!({"mfa_token": half.mfa_token, "code": "abcdef"}))
        .await
        .assert(400, incorrect("code"));
    half.spent_one_try().await;
}

/// U+FF10..U+FF19: digits to a human, not to RFC 6238.
fn full_width(code: &str) -> String {
    code.chars()
        .map(|c| char::from_u32(0xFF10 + c.to_digit(10).unwrap()).unwrap())
        .collect()
}

async fn full_width_digits_of_the_right_code_are_an_incorrect_code(mut ctx: Ctx) {
    let half = HalfWay::new(&mut ctx).await;
    let typed = full_width(&half.code);
    half.verify(json!({"mfa_token": half.mfa_token, "code": typed}))
        .await
        .assert(400, incorrect("code"));
    half.spent_one_try().await;
}

async fn five_digits_are_an_incorrect_code(mut ctx: Ctx) {
    let half = HalfWay::new(&mut ctx).await;
    let short = &half.code[..5];
    half.verify(json!({"mfa_token": half.mfa_token, "code": short}))
        .await
        .assert(400, incorrect("code"));
    half.spent_one_try().await;
}

async fn nine_digits_are_an_incorrect_code(mut ctx: Ctx) {
    let half = HalfWay::new(&mut ctx).await;
    let long = format!("{}000", half.code);
    half.verify(json!({"mfa_token": half.mfa_token, "code": long}))
        .await
        .assert(400, incorrect("code"));
    half.spent_one_try().await;
}

async fn whitespace_anywhere_in_the_code_is_ignored(mut ctx: Ctx) {
    let half = HalfWay::new(&mut ctx).await;
    let (a, b) = half.code.split_at(3);
    let spaced = format!(" \t{a} {b}\n ");
    let verified = half
        .verify(json!({"mfa_token": half.mfa_token, "code": spaced}))
        .await;
    verified.assert_status(200);
    assert_eq!(verified.body["message"], "login success");
}

async fn a_whitespace_only_code_may_not_be_blank(mut ctx: Ctx) {
    let half = HalfWay::new(&mut ctx).await;
    half.verify(json!({"mfa_token": half.mfa_token, "code": " \t "}))
        .await
        .assert(400, field_error("code", NOT_BLANK));
    half.spent_no_try().await;
}

async fn a_code_that_is_not_a_string_is_not_a_valid_string(mut ctx: Ctx) {
    let half = HalfWay::new(&mut ctx).await;
    for value in [json!(true), json!([half.code]), json!({"code": half.code})] {
        half.verify(json!({"mfa_token": half.mfa_token, "code": value}))
            .await
            .assert(400, field_error("code", "Not a valid string."));
    }
    half.spent_no_try().await;
}

/// DRF's `CharField` takes a number as its decimal digits: the right code
/// logs in, unless it starts with 0 (then it is one digit short: an
/// incorrect code, which spends a try).
async fn a_code_sent_as_a_json_number_is_read_as_its_digits(mut ctx: Ctx) {
    let half = HalfWay::new(&mut ctx).await;
    let number: u64 = half.code.parse().unwrap();
    let response = half
        .verify(json!({"mfa_token": half.mfa_token, "code": number}))
        .await;
    if half.code.starts_with('0') {
        response.assert(400, incorrect("code"));
        half.spent_one_try().await;
    } else {
        response.assert_status(200);
        assert_eq!(response.body["message"], "login success");
    }
}

async fn a_thousand_digits_are_an_incorrect_code(mut ctx: Ctx) {
    let half = HalfWay::new(&mut ctx).await;
    let long = half.code.repeat(167);
    half.verify(json!({"mfa_token": half.mfa_token, "code": long}))
        .await
        .assert(400, incorrect("code"));
    half.spent_one_try().await;
}

async fn a_recovery_code_outside_its_alphabet_is_incorrect(mut ctx: Ctx) {
    let half = HalfWay::new(&mut ctx).await;
    // The right code with one character swapped for one base32 lacks.
    let right = half.jae.recovery_codes[0].clone();
    let typed = format!("{}!", &right[..right.len() - 1]);
    half.verify(json!({"mfa_token": half.mfa_token, "recovery_code": typed}))
        .await
        .assert(400, incorrect("recovery_code"));
    let fresh = password_step(&half.app, "jae@example.com").await;
    verify_recovery_code(&half.app, &fresh, &right)
        .await
        .assert_status(200);
    half.spent_one_try().await;
}

/// `token` presented as the `mfa_token`, with the right code: 401.
async fn refused_as_mfa_token(half: &HalfWay, token: &str) {
    half.verify(json!({"mfa_token": token, "code": half.code}))
        .await
        .assert_unauthorized(token_not_valid());
}

async fn an_access_token_is_not_an_mfa_token(mut ctx: Ctx) {
    let half = HalfWay::new(&mut ctx).await;
    refused_as_mfa_token(&half, &half.jae.user.access).await;
    half.logs_in().await;
}

async fn a_refresh_token_is_not_an_mfa_token(mut ctx: Ctx) {
    let half = HalfWay::new(&mut ctx).await;
    refused_as_mfa_token(&half, &half.jae.user.refresh).await;
    half.logs_in().await;
}

async fn a_sliding_token_is_not_an_mfa_token(mut ctx: Ctx) {
    let half = HalfWay::new(&mut ctx).await;
    // A user without a second factor has a sliding token to give.
    half.app.user("plain@example.com").await;
    let sliding = half.app.sliding_token("plain@example.com").await;
    refused_as_mfa_token(&half, &sliding).await;
    half.logs_in().await;
}

/// The real `mfa_token`'s claims with `changes`, signed with `secret`.
fn resigned(mfa_token: &str, secret: &str, changes: &[(&str, Value)]) -> String {
    let mut claims = payload(mfa_token);
    for (name, value) in changes {
        claims[*name] = value.clone();
    }
    forge(Algorithm::HS256, secret, &claims)
}

async fn a_forged_mfa_token_is_refused(mut ctx: Ctx) {
    let half = HalfWay::new(&mut ctx).await;
    // Well signed (the test servers' key), of type mfa, for this user, but
    // naming no ceremony latchkey began.
    let forged = resigned(
        &half.mfa_token,
        TEST_SECRET,
        &[("jti", json!("f".repeat(32)))],
    );
    refused_as_mfa_token(&half, &forged).await;
    half.logs_in().await;
}

async fn an_mfa_token_signed_with_another_key_is_refused(mut ctx: Ctx) {
    let half = HalfWay::new(&mut ctx).await;
    let forged = resigned(&half.mfa_token, "some-other-secret-some-other-secret", &[]);
    refused_as_mfa_token(&half, &forged).await;
    half.logs_in().await;
}

async fn a_tampered_mfa_token_is_refused(mut ctx: Ctx) {
    let half = HalfWay::new(&mut ctx).await;
    // The payload changed under the original signature.
    let parts: Vec<&str> = half.mfa_token.split('.').collect();
    let mut claims = payload(&half.mfa_token);
    claims["exp"] = json!(claims["exp"].as_i64().unwrap() + 3600);
    let encoded = {
        use base64::Engine;
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(claims.to_string())
    };
    let tampered = format!("{}.{encoded}.{}", parts[0], parts[2]);
    refused_as_mfa_token(&half, &tampered).await;
    half.logs_in().await;
}

async fn a_re_signed_mfa_token_past_its_exp_is_refused(mut ctx: Ctx) {
    let half = HalfWay::new(&mut ctx).await;
    // The live ceremony's own jti, well signed, but expired.
    let expired = resigned(
        &half.mfa_token,
        TEST_SECRET,
        &[("exp", json!(now() - 5)), ("iat", json!(now() - 305))],
    );
    refused_as_mfa_token(&half, &expired).await;
    half.logs_in().await;
}

async fn garbage_as_mfa_token_is_refused(mut ctx: Ctx) {
    let half = HalfWay::new(&mut ctx).await;
    for garbage in ["garbage", "a.b.c", "x"] {
        refused_as_mfa_token(&half, garbage).await;
    }
    half.logs_in().await;
}

/// simplejwt's refusal of a token of the wrong type where an access token
/// belongs (as `forged.rs` expects of a refresh token there).
fn wrong_type_for_access() -> Value {
    json!({
        "detail": "Given token not valid for any token type",
        "code": "token_not_valid",
        "messages": [{"token_class": "AccessToken", "token_type": "access", "message": "Token has wrong type"}],
    })
}

async fn an_mfa_token_is_not_a_bearer_access_token(mut ctx: Ctx) {
    let half = HalfWay::new(&mut ctx).await;
    for path in ["/auth/", "/auth/sessions/", paths::MFA] {
        half.app
            .get(path, Req::bearer(&half.mfa_token))
            .await
            .assert_unauthorized(wrong_type_for_access());
    }
    half.app
        .get(
            "/auth/",
            Req::default().with_cookie("access", &half.mfa_token),
        )
        .await
        .assert(401, wrong_type_for_access());
    half.logs_in().await;
}

async fn an_mfa_token_is_not_a_refresh_token(mut ctx: Ctx) {
    let half = HalfWay::new(&mut ctx).await;
    half.app
        .refresh_token(&half.mfa_token)
        .await
        .assert_unauthorized(token_not_valid());
    half.logs_in().await;
}

async fn an_mfa_token_is_not_a_sliding_token(mut ctx: Ctx) {
    let half = HalfWay::new(&mut ctx).await;
    half.app
        .sliding_refresh(&half.mfa_token)
        .await
        .assert_unauthorized(token_not_valid());
    half.logs_in().await;
}

async fn an_mfa_token_does_not_pass_token_verify(mut ctx: Ctx) {
    let half = HalfWay::new(&mut ctx).await;
    half.app
        .verify(&half.mfa_token)
        .await
        .assert_unauthorized(token_not_valid());
    half.logs_in().await;
}
