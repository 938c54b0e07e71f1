//! django-allauth's social accounts mapped to latchkey's linked provider
//! identities, and the name each social app goes by.
//!
//! An account's `provider` is kept as allauth wrote it: for an app with a
//! `provider_id` (an OpenID Connect or SAML app) that id, else the app's
//! `provider` (allauth 65.21.1, `SocialAccount.provider` and
//! `Provider.sub_id`). That is the name the operator gives latchkey in
//! `SOCIAL_PROVIDERS`. `uid` becomes the subject as it is (allauth already
//! writes GitHub's numeric id in decimal, and the others' `sub`),
//! `date_joined` the link's instant. The identity's email stays empty:
//! allauth keeps no address per account, only `extra_data`, each provider's
//! profile in its own shape, which is not read.

use chrono::NaiveDateTime;

use crate::rows::parse_instant;
use crate::source::{DjangoSocialAccount, DjangoSocialApp, SOCIAL_ACCOUNT};

/// latchkey's `provider_identities.provider` is `VARCHAR(64)`.
const PROVIDER_MAX_CHARS: usize = 64;
/// latchkey's `provider_identities.subject` is `VARCHAR(255)`.
const SUBJECT_MAX_CHARS: usize = 255;

/// A social account as the identity latchkey links.
#[derive(Debug, PartialEq, Eq)]
pub(crate) struct LinkedIdentity {
    pub(crate) user_id: i64,
    pub(crate) provider: String,
    pub(crate) subject: String,
    pub(crate) linked_at: NaiveDateTime,
}

/// A social account that cannot be an identity in latchkey, and where it is.
#[derive(Debug, PartialEq, Eq)]
pub(crate) struct Unimportable {
    pub(crate) user_id: i64,
    pub(crate) what: String,
}

fn identity(row: &DjangoSocialAccount) -> Result<LinkedIdentity, String> {
    if row.provider.is_empty() {
        return Err("the provider is empty".into());
    }
    if row.provider.chars().count() > PROVIDER_MAX_CHARS {
        return Err(format!(
            "the provider name is longer than {PROVIDER_MAX_CHARS} characters"
        ));
    }
    if row.uid.is_empty() {
        return Err("the uid is empty".into());
    }
    if row.uid.chars().count() > SUBJECT_MAX_CHARS {
        return Err(format!(
            "the uid is longer than {SUBJECT_MAX_CHARS} characters"
        ));
    }
    let linked_at = row
        .date_joined
        .as_deref()
        .and_then(parse_instant)
        .ok_or("date_joined is not an instant")?;
    Ok(LinkedIdentity {
        user_id: row.user_id,
        provider: row.provider.clone(),
        subject: row.uid.clone(),
        linked_at,
    })
}

/// The identities of the social accounts `rows`, and those that cannot be
/// one (listed, never linked; their users are imported all the same).
pub(crate) fn identities(rows: &[DjangoSocialAccount]) -> (Vec<LinkedIdentity>, Vec<Unimportable>) {
    let mut linked = Vec::with_capacity(rows.len());
    let mut unimportable = Vec::new();
    for row in rows {
        match identity(row) {
            Ok(found) => linked.push(found),
            Err(why) => unimportable.push(Unimportable {
                user_id: row.user_id,
                what: format!("{SOCIAL_ACCOUNT} id {}: {why}", row.id),
            }),
        }
    }
    (linked, unimportable)
}

/// The name a social app's accounts carry, as allauth's `sub_id` makes it:
/// its `provider_id` when it has one, else its `provider`.
pub(crate) fn app_provider(app: &DjangoSocialApp) -> &str {
    if app.provider_id.is_empty() {
        &app.provider
    } else {
        &app.provider_id
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn account(
        id: i64,
        provider: &str,
        uid: &str,
        date_joined: Option<&str>,
    ) -> DjangoSocialAccount {
        DjangoSocialAccount {
            id,
            user_id: 7,
            provider: provider.into(),
            uid: uid.into(),
            date_joined: date_joined.map(str::to_owned),
        }
    }

    #[test]
    fn accounts_become_identities_under_allauths_names() {
        let rows = [
            account(
                1,
                "corp",
                "248289761001",
                Some("2021-03-04 05:06:07.123456"),
            ),
            account(2, "github", "583231", Some("2022-01-02T03:04:05+00:00")),
        ];
        let (linked, unimportable) = identities(&rows);
        assert!(unimportable.is_empty());
        assert_eq!(linked[0].provider, "corp");
        assert_eq!(linked[0].subject, "248289761001");
        assert_eq!(
            linked[0].linked_at.to_string(),
            "2021-03-04 05:06:07.123456"
        );
        assert_eq!(linked[1].linked_at.to_string(), "2022-01-02 03:04:05");
    }

    #[test]
    fn accounts_latchkey_cannot_hold_are_listed() {
        let long = "p".repeat(65);
        let rows = [
            account(3, &long, "1", Some("2021-03-04 05:06:07")),
            account(4, "google", "", Some("2021-03-04 05:06:07")),
            account(5, "google", "2", Some("yesterday")),
        ];
        let (linked, unimportable) = identities(&rows);
        assert!(linked.is_empty());
        let what: Vec<&str> = unimportable.iter().map(|u| u.what.as_str()).collect();
        assert_eq!(
            what,
            [
                "socialaccount_socialaccount id 3: the provider name is longer than 64 characters",
                "socialaccount_socialaccount id 4: the uid is empty",
                "socialaccount_socialaccount id 5: date_joined is not an instant",
            ]
        );
    }

    #[test]
    fn an_app_goes_by_its_provider_id_when_it_has_one() {
        let app = |provider: &str, provider_id: &str| DjangoSocialApp {
            provider: provider.into(),
            provider_id: provider_id.into(),
            client_id: "client".into(),
        };
        assert_eq!(app_provider(&app("openid_connect", "corp")), "corp");
        assert_eq!(app_provider(&app("google", "")), "google");
    }
}
