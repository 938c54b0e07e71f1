//! The `totp_devices` table: a user's TOTP device, one row per user. The
//! secret arrives sealed (the auth crate seals; this crate never sees it in
//! clear). The row outlives a disabled TOTP, without its secret, so that
//! `last_step_at` keeps refusing steps already used.

use std::fmt;

use chrono::NaiveDateTime;
use diesel::prelude::*;

use crate::schema::totp_devices;
use crate::{DbConnection, StoreError};

#[derive(Clone, Queryable, Selectable, PartialEq, Eq)]
#[diesel(table_name = totp_devices)]
pub struct TotpDevice {
    pub user_id: i64,
    pub secret_sealed: Option<String>,
    pub secret_key_id: Option<String>,
    pub digits: i32,
    pub step: i32,
    pub t0: i64,
    /// Set once the device was confirmed with a code; a secret without it is
    /// pending.
    pub enabled_at: Option<NaiveDateTime>,
    /// The start (Unix seconds) of the last step accepted.
    pub last_step_at: Option<i64>,
    pub created_at: NaiveDateTime,
    pub updated_at: NaiveDateTime,
}

impl fmt::Debug for TotpDevice {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TotpDevice")
            .field("user_id", &self.user_id)
            .field(
                "secret_sealed",
                &self.secret_sealed.as_ref().map(|_| "[hidden]"),
            )
            .field("secret_key_id", &self.secret_key_id)
            .field("digits", &self.digits)
            .field("step", &self.step)
            .field("t0", &self.t0)
            .field("enabled_at", &self.enabled_at)
            .field("last_step_at", &self.last_step_at)
            .finish()
    }
}

/// A sealed secret and the id of the key it was sealed under.
#[derive(Clone, Copy)]
pub struct SealedSecret<'a> {
    pub blob: &'a str,
    pub key_id: &'a str,
}

/// How a device makes codes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DeviceShape {
    pub digits: i32,
    pub step: i32,
    pub t0: i64,
}

impl Default for DeviceShape {
    fn default() -> Self {
        DeviceShape {
            digits: 6,
            step: 30,
            t0: 0,
        }
    }
}

#[derive(Insertable)]
#[diesel(table_name = totp_devices)]
struct DeviceRow<'a> {
    user_id: i64,
    secret_sealed: Option<&'a str>,
    secret_key_id: Option<&'a str>,
    digits: i32,
    step: i32,
    t0: i64,
    enabled_at: Option<NaiveDateTime>,
    last_step_at: Option<i64>,
    created_at: NaiveDateTime,
    updated_at: NaiveDateTime,
}

/// A device an import carries over, its secret already sealed.
pub struct ImportedDevice<'a> {
    pub user_id: i64,
    pub secret: SealedSecret<'a>,
    pub shape: DeviceShape,
    /// The start (Unix seconds) of the last step the foreign system accepted.
    pub last_step_at: Option<i64>,
}

impl TotpDevice {
    /// The users among `user_ids` that have a device row (enabled, pending
    /// or disabled).
    pub fn users_with_device(
        conn: &mut DbConnection,
        user_ids: &[i64],
    ) -> Result<std::collections::HashSet<i64>, StoreError> {
        Ok(totp_devices::table
            .filter(totp_devices::user_id.eq_any(user_ids))
            .select(totp_devices::user_id)
            .load::<i64>(conn)?
            .into_iter()
            .collect())
    }

    /// An import's devices: each inserted enabled at `now` when the user has
    /// no device row yet (a row latchkey has is never replaced); for a user
    /// who has one, only its `last_step_at` is raised to the imported one
    /// when that is later (never lowered). Returns how many were inserted.
    pub fn import_batch(
        conn: &mut DbConnection,
        devices: &[ImportedDevice<'_>],
        now: NaiveDateTime,
    ) -> Result<usize, StoreError> {
        if devices.is_empty() {
            return Ok(0);
        }
        let ids: Vec<i64> = devices.iter().map(|d| d.user_id).collect();
        let existing = TotpDevice::users_with_device(conn, &ids)?;
        let mut rows = Vec::with_capacity(devices.len());
        for device in devices {
            if existing.contains(&device.user_id) {
                if let Some(step_at) = device.last_step_at {
                    TotpDevice::accept_step(conn, device.user_id, step_at)?;
                }
                continue;
            }
            rows.push(DeviceRow {
                user_id: device.user_id,
                secret_sealed: Some(device.secret.blob),
                secret_key_id: Some(device.secret.key_id),
                digits: device.shape.digits,
                step: device.shape.step,
                t0: device.shape.t0,
                enabled_at: Some(now),
                last_step_at: device.last_step_at,
                created_at: now,
                updated_at: now,
            });
        }
        if rows.is_empty() {
            return Ok(0);
        }
        Ok(
            crate::per_backend!(conn, c => diesel::insert_into(totp_devices::table)
            .values(&rows)
            .execute(c))?,
        )
    }

    pub fn find(conn: &mut DbConnection, user_id: i64) -> Result<Option<TotpDevice>, StoreError> {
        Ok(totp_devices::table
            .find(user_id)
            .select(TotpDevice::as_select())
            .first(conn)
            .optional()?)
    }

    /// The user's device, locked for the rest of the transaction (on
    /// PostgreSQL `FOR UPDATE`; SQLite's write transaction holds the whole
    /// file): every transaction that checks or changes a second factor
    /// takes this lock first, so they run one at a time per user and in
    /// one lock order (device, then codes, ceremony, sessions).
    pub fn lock(conn: &mut DbConnection, user_id: i64) -> Result<Option<TotpDevice>, StoreError> {
        Ok(match conn {
            DbConnection::Postgresql(pg) => totp_devices::table
                .find(user_id)
                .select(TotpDevice::as_select())
                .for_update()
                .first(pg)
                .optional()?,
            DbConnection::Sqlite(sqlite) => totp_devices::table
                .find(user_id)
                .select(TotpDevice::as_select())
                .first(sqlite)
                .optional()?,
        })
    }

    /// Stores a pending secret (replacing a pending one), keeping the
    /// row's `last_step_at`. Refused (false) while TOTP is enabled: the
    /// condition is part of the statement.
    pub fn set_pending(
        conn: &mut DbConnection,
        user_id: i64,
        secret: SealedSecret<'_>,
        shape: DeviceShape,
        now: NaiveDateTime,
    ) -> Result<bool, StoreError> {
        let replace = |conn: &mut DbConnection| -> Result<bool, StoreError> {
            let updated = diesel::update(
                totp_devices::table
                    .find(user_id)
                    .filter(totp_devices::enabled_at.is_null()),
            )
            .set((
                totp_devices::secret_sealed.eq(secret.blob),
                totp_devices::secret_key_id.eq(secret.key_id),
                totp_devices::digits.eq(shape.digits),
                totp_devices::step.eq(shape.step),
                totp_devices::t0.eq(shape.t0),
                totp_devices::updated_at.eq(now),
            ))
            .execute(conn)?;
            Ok(updated == 1)
        };
        if replace(conn)? {
            return Ok(true);
        }
        let row = DeviceRow {
            user_id,
            secret_sealed: Some(secret.blob),
            secret_key_id: Some(secret.key_id),
            digits: shape.digits,
            step: shape.step,
            t0: shape.t0,
            enabled_at: None,
            last_step_at: None,
            created_at: now,
            updated_at: now,
        };
        let inserted = crate::per_backend!(conn, c => diesel::insert_into(totp_devices::table)
            .values(&row)
            .on_conflict_do_nothing()
            .execute(c))?;
        // A racing enrolment inserted the row first: replace its pending
        // secret, unless it is enabled by now.
        Ok(inserted == 1 || replace(conn)?)
    }

    /// Enables the pending secret: true for the one caller that did.
    pub fn enable(
        conn: &mut DbConnection,
        user_id: i64,
        now: NaiveDateTime,
    ) -> Result<bool, StoreError> {
        let updated = diesel::update(
            totp_devices::table
                .find(user_id)
                .filter(totp_devices::enabled_at.is_null())
                .filter(totp_devices::secret_sealed.is_not_null()),
        )
        .set((
            totp_devices::enabled_at.eq(now),
            totp_devices::updated_at.eq(now),
        ))
        .execute(conn)?;
        Ok(updated == 1)
    }

    /// Accepts the step starting at `step_at` when it is later than every
    /// step accepted before, in one statement: of two requests with one
    /// code, on any instance, exactly one is accepted.
    pub fn accept_step(
        conn: &mut DbConnection,
        user_id: i64,
        step_at: i64,
    ) -> Result<bool, StoreError> {
        let updated = diesel::update(
            totp_devices::table.find(user_id).filter(
                totp_devices::last_step_at
                    .is_null()
                    .or(totp_devices::last_step_at.lt(step_at)),
            ),
        )
        .set(totp_devices::last_step_at.eq(step_at))
        .execute(conn)?;
        Ok(updated == 1)
    }

    /// Replaces the secret sealed as `old_blob` with the same secret sealed
    /// under the current key (a key rotation, at the secret's next use);
    /// a secret replaced meanwhile is left as it is.
    pub fn reseal(
        conn: &mut DbConnection,
        user_id: i64,
        old_blob: &str,
        secret: SealedSecret<'_>,
    ) -> Result<bool, StoreError> {
        let updated = diesel::update(
            totp_devices::table
                .find(user_id)
                .filter(totp_devices::secret_sealed.eq(old_blob)),
        )
        .set((
            totp_devices::secret_sealed.eq(secret.blob),
            totp_devices::secret_key_id.eq(secret.key_id),
        ))
        .execute(conn)?;
        Ok(updated == 1)
    }

    /// How many stored secrets are sealed under none of `key_ids` (no
    /// configured key opens them).
    pub fn count_sealed_outside(
        conn: &mut DbConnection,
        key_ids: &[&str],
    ) -> Result<i64, StoreError> {
        Ok(totp_devices::table
            .filter(totp_devices::secret_sealed.is_not_null())
            .filter(totp_devices::secret_key_id.is_null().or(diesel::dsl::not(
                totp_devices::secret_key_id.eq_any(key_ids),
            )))
            .count()
            .get_result(conn)?)
    }

    /// Disables TOTP: the secret goes, the row and its last step stay.
    /// True when TOTP was enabled or pending.
    pub fn disable(
        conn: &mut DbConnection,
        user_id: i64,
        now: NaiveDateTime,
    ) -> Result<bool, StoreError> {
        let updated = diesel::update(
            totp_devices::table
                .find(user_id)
                .filter(totp_devices::secret_sealed.is_not_null()),
        )
        .set((
            totp_devices::secret_sealed.eq(None::<String>),
            totp_devices::secret_key_id.eq(None::<String>),
            totp_devices::enabled_at.eq(None::<NaiveDateTime>),
            totp_devices::updated_at.eq(now),
        ))
        .execute(conn)?;
        Ok(updated == 1)
    }
}
