//! One schema for both backends: ids as `BigInt`, instants as naive UTC
//! `Timestamp`. Kept by hand to match `migrations/{postgres,sqlite}`.

diesel::table! {
    users (id) {
        id -> BigInt,
        email -> Text,
        password_hash -> Text,
        is_superuser -> Bool,
        is_active -> Bool,
        is_staff -> Bool,
        last_login -> Nullable<Timestamp>,
        created_at -> Timestamp,
        updated_at -> Timestamp,
        tokens_valid_after -> Timestamp,
        email_verified -> Bool,
        imported_from_django -> Bool,
        password_changed_at -> Nullable<Timestamp>,
        changed_in_latchkey_at -> Nullable<Timestamp>,
        django_hash_digest -> Nullable<Text>,
    }
}

diesel::table! {
    django_imports (id) {
        id -> BigInt,
        imported_at -> Timestamp,
        source -> Text,
        users -> BigInt,
        skipped -> BigInt,
        tokens -> BigInt,
        blacklisted -> BigInt,
    }
}

diesel::table! {
    outstanding_tokens (id) {
        id -> BigInt,
        jti -> Text,
        user_id -> BigInt,
        session_id -> Text,
        issued_at -> Timestamp,
        expires_at -> Timestamp,
        replaced_by_jti -> Nullable<Text>,
        replaced_at -> Nullable<Timestamp>,
    }
}

diesel::table! {
    blacklisted_tokens (id) {
        id -> BigInt,
        token_id -> BigInt,
        blacklisted_at -> Timestamp,
    }
}

diesel::table! {
    sessions (id) {
        id -> Text,
        user_id -> BigInt,
        created_at -> Timestamp,
        last_used_at -> Timestamp,
        expires_at -> Timestamp,
        user_agent -> Nullable<Text>,
        ip -> Nullable<Text>,
        ended_at -> Nullable<Timestamp>,
        amr -> Text,
        aal -> Integer,
    }
}

diesel::table! {
    ceremonies (id) {
        id -> BigInt,
        kind -> Text,
        handle_hash -> Text,
        user_id -> Nullable<BigInt>,
        payload -> Text,
        tries -> Integer,
        created_at -> Timestamp,
        expires_at -> Timestamp,
        consumed_at -> Nullable<Timestamp>,
    }
}

diesel::table! {
    email_outbox (id) {
        id -> BigInt,
        recipient -> Text,
        subject -> Text,
        text_body -> Text,
        html_body -> Text,
        status -> Text,
        attempts -> Integer,
        next_attempt_at -> Timestamp,
        claim_id -> Nullable<Text>,
        claimed_until -> Nullable<Timestamp>,
        last_error -> Nullable<Text>,
        created_at -> Timestamp,
        finished_at -> Nullable<Timestamp>,
        kind -> Text,
    }
}

diesel::table! {
    password_reset_tokens (id) {
        id -> BigInt,
        user_id -> BigInt,
        email -> Text,
        token_hash -> Text,
        created_at -> Timestamp,
        expires_at -> Timestamp,
        used_at -> Nullable<Timestamp>,
    }
}

diesel::table! {
    email_verification_keys (id) {
        id -> BigInt,
        user_id -> BigInt,
        email -> Text,
        key_hash -> Text,
        created_at -> Timestamp,
        expires_at -> Timestamp,
    }
}

diesel::table! {
    totp_devices (user_id) {
        user_id -> BigInt,
        secret_sealed -> Nullable<Text>,
        secret_key_id -> Nullable<Text>,
        digits -> Integer,
        step -> Integer,
        t0 -> BigInt,
        enabled_at -> Nullable<Timestamp>,
        last_step_at -> Nullable<BigInt>,
        created_at -> Timestamp,
        updated_at -> Timestamp,
    }
}

diesel::table! {
    recovery_codes (id) {
        id -> BigInt,
        user_id -> BigInt,
        code_hash -> Text,
        format -> Text,
        created_at -> Timestamp,
        used_at -> Nullable<Timestamp>,
    }
}

diesel::table! {
    provider_identities (id) {
        id -> BigInt,
        provider -> Text,
        subject -> Text,
        user_id -> BigInt,
        email -> Nullable<Text>,
        linked_at -> Timestamp,
        last_login -> Nullable<Timestamp>,
    }
}

diesel::table! {
    accepted_id_tokens (token_hash) {
        token_hash -> Text,
        expires_at -> Timestamp,
    }
}

diesel::joinable!(outstanding_tokens -> users (user_id));
diesel::joinable!(blacklisted_tokens -> outstanding_tokens (token_id));
diesel::joinable!(sessions -> users (user_id));
diesel::allow_tables_to_appear_in_same_query!(
    users,
    outstanding_tokens,
    blacklisted_tokens,
    sessions
);
