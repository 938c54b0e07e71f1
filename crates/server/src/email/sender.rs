//! The background sender: one task per instance, started by
//! [`crate::startup`], stopped when the server stops.
//!
//! Each cycle runs on the blocking pool and does, with one connection:
//! claim up to [`BATCH`] due emails under a lease (renewed before each
//! email), resolve a password reset request into its email, deliver each
//! (SMTP, or the log without `SMTP_URL` in development), and mark it sent,
//! to retry (1 s doubling to `EMAIL_RETRY_MAX`) or failed (a permanent 5xx
//! refusal, or `EMAIL_MAX_ATTEMPTS` tries). A whole cycle runs to its end
//! even when the server stops meanwhile, so no claimed row is left behind by
//! a clean shutdown; rows of an instance that died keep their lease until it
//! expires, then any instance takes them. The task waits between cycles for
//! [`POLL`] (other instances queue mail too) or until this instance queues
//! one ([`super::Mailer::wake`]).

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use actix_web::web;
use chrono::NaiveDateTime;
use latchkey_persistence::outbox::{OutboxEmail, PASSWORD_RESET_REQUEST};
use latchkey_persistence::{StoreError, db_now};
use lettre::message::{Mailbox, MultiPart};
use lettre::transport::smtp::authentication::Credentials;
use lettre::transport::smtp::client::{Tls, TlsParameters};
use lettre::{Message, SmtpTransport, Transport};

use super::{EmailSettings, SmtpSecurity};
use crate::state::AppState;

/// Emails claimed per cycle. Each one's lease (`EmailSettings::lease`,
/// longer than one delivery can take) is renewed just before it is sent,
/// so a batch may take longer than a lease without another instance
/// sending its later emails too.
pub const BATCH: i64 = 10;
/// The longest wait between two looks at the outbox.
pub const POLL: Duration = Duration::from_secs(1);
/// How often sent and failed rows past `EMAIL_RETENTION` are deleted (or
/// every `EMAIL_RETENTION`, when shorter).
const PRUNE_EVERY: Duration = Duration::from_secs(60);

/// How emails leave this instance.
#[derive(Clone)]
pub enum Delivery {
    Smtp(SmtpTransport),
    /// No `SMTP_URL` in development: each email is logged in full.
    Console,
    /// No `SMTP_URL` in production: nothing is delivered (only the password
    /// reset would queue, and it answers 503 instead).
    Disabled,
}

/// The transport for the settings (no connection is made here).
pub fn delivery(settings: &EmailSettings, production: bool) -> Result<Delivery, String> {
    let Some(url) = &settings.smtp else {
        return Ok(if production {
            Delivery::Disabled
        } else {
            Delivery::Console
        });
    };
    let tls = match url.security {
        SmtpSecurity::Insecure => Tls::None,
        SmtpSecurity::ImplicitTls | SmtpSecurity::StartTls => {
            let parameters = TlsParameters::new(url.host.clone())
                .map_err(|e| format!("SMTP_URL: cannot set up TLS for {}: {e}", url.host))?;
            if url.security == SmtpSecurity::ImplicitTls {
                Tls::Wrapper(parameters)
            } else {
                Tls::Required(parameters)
            }
        }
    };
    let mut builder = SmtpTransport::builder_dangerous(url.host.clone())
        .port(url.port)
        .tls(tls)
        .timeout(Some(settings.smtp_timeout));
    if let Some(username) = &url.username {
        builder = builder.credentials(Credentials::new(
            username.clone(),
            url.password.clone().unwrap_or_default(),
        ));
    }
    Ok(Delivery::Smtp(builder.build()))
}

/// How one try ended.
enum Outcome {
    Sent,
    /// Worth another try (no answer, a 4xx, a dropped connection).
    Transient(String),
    /// A 5xx, or a message that cannot be built: never retried.
    Permanent(String),
}

fn message(from: &Mailbox, email: &OutboxEmail) -> Result<Message, String> {
    let to: Mailbox = email
        .recipient
        .parse()
        .map_err(|e| format!("the recipient cannot be used: {e}"))?;
    Message::builder()
        .from(from.clone())
        .to(to)
        .subject(email.subject.clone())
        .multipart(MultiPart::alternative_plain_html(
            email.text_body.clone(),
            email.html_body.clone(),
        ))
        .map_err(|e| format!("the message cannot be built: {e}"))
}

fn deliver(delivery: &Delivery, from: &Mailbox, email: &OutboxEmail) -> Outcome {
    match delivery {
        Delivery::Console => {
            // Django's console backend: the whole email, links included,
            // in the log of a development server.
            log::info!(
                target: "latchkey::email",
                "email {} (no SMTP_URL: written to the log instead of sent)\nFrom: {from}\nTo: {}\nSubject: {}\n\n{}\n----- HTML part -----\n{}",
                email.id,
                email.recipient,
                email.subject,
                email.text_body,
                email.html_body
            );
            Outcome::Sent
        }
        Delivery::Disabled => Outcome::Permanent("no SMTP_URL is configured".into()),
        Delivery::Smtp(transport) => {
            let message = match message(from, email) {
                Ok(message) => message,
                Err(error) => return Outcome::Permanent(error),
            };
            match transport.send(&message) {
                Ok(_) => Outcome::Sent,
                Err(error) if error.is_permanent() => Outcome::Permanent(error.to_string()),
                Err(error) => Outcome::Transient(error.to_string()),
            }
        }
    }
}

fn later(now: NaiveDateTime, wait: Duration) -> NaiveDateTime {
    chrono::Duration::from_std(wait)
        .ok()
        .and_then(|d| now.checked_add_signed(d))
        .unwrap_or(NaiveDateTime::MAX)
}

/// What a cycle found.
struct Cycle {
    claimed: usize,
    next_due: Option<NaiveDateTime>,
}

/// One cycle: claim, deliver, mark, count. Runs on the blocking pool.
fn cycle(state: &AppState, delivery: &Delivery, prune: bool) -> Result<Cycle, StoreError> {
    let email = &state.settings.email;
    let mut conn = state.db.get()?;
    let now = db_now();
    if prune {
        let before = chrono::Duration::from_std(email.retention)
            .ok()
            .and_then(|d| now.checked_sub_signed(d))
            .unwrap_or(NaiveDateTime::MIN);
        let pruned = OutboxEmail::prune_finished(&mut conn, before)?;
        if pruned > 0 {
            log::info!(target: "latchkey::email", "pruned {pruned} sent or failed email(s) older than EMAIL_RETENTION");
        }
    }
    let claim = latchkey_auth::jwt::new_jti();
    let batch = OutboxEmail::claim_due(&mut conn, &claim, now, later(now, email.lease), BATCH)?;
    let claimed = batch.len();
    for row in batch {
        if !OutboxEmail::renew_claim(&mut conn, row.id, &claim, later(db_now(), email.lease))? {
            log::warn!(target: "latchkey::email", "email {}: its claim expired before it was sent and another instance took it; not sent from here", row.id);
            continue;
        }
        let row = if row.kind == PASSWORD_RESET_REQUEST {
            match crate::flows::email::resolve_password_reset(&mut conn, state, &row, &claim)? {
                Some(message) => message,
                None => continue,
            }
        } else {
            row
        };
        let attempts = row.attempts.saturating_add(1);
        let outcome = deliver(delivery, &email.from, &row);
        let done = db_now();
        let kept = match outcome {
            Outcome::Sent => {
                state.metrics.emails_sent.inc();
                log::info!(target: "latchkey::email", "email {} to {} sent (try {attempts})", row.id, row.recipient);
                OutboxEmail::mark_sent(&mut conn, row.id, &claim, attempts, done)?
            }
            Outcome::Permanent(error) => {
                state.metrics.emails_failed.inc();
                log::error!(target: "latchkey::email", "email {} to {} failed for good after {attempts} tr{}: {error}", row.id, row.recipient, if attempts == 1 { "y" } else { "ies" });
                OutboxEmail::mark_failed(&mut conn, row.id, &claim, attempts, &error, done)?
            }
            Outcome::Transient(error)
                if u32::try_from(attempts).unwrap_or(u32::MAX) >= email.max_attempts =>
            {
                state.metrics.emails_failed.inc();
                log::error!(target: "latchkey::email", "email {} to {} failed: {attempts} tries (EMAIL_MAX_ATTEMPTS), the last: {error}", row.id, row.recipient);
                OutboxEmail::mark_failed(&mut conn, row.id, &claim, attempts, &error, done)?
            }
            Outcome::Transient(error) => {
                let wait = email.retry_delay(u32::try_from(attempts).unwrap_or(u32::MAX));
                log::warn!(target: "latchkey::email", "email {} to {}: try {attempts} failed ({error}); next try in {} s", row.id, row.recipient, wait.as_secs());
                OutboxEmail::mark_retry(
                    &mut conn,
                    row.id,
                    &claim,
                    attempts,
                    later(done, wait),
                    &error,
                )?
            }
        };
        if !kept {
            log::warn!(target: "latchkey::email", "email {}: its claim expired before it was marked (another instance may send it again)", row.id);
        }
    }
    state
        .metrics
        .email_outbox_queued
        .set(OutboxEmail::count_queued(&mut conn)?);
    Ok(Cycle {
        claimed,
        next_due: OutboxEmail::next_due(&mut conn)?,
    })
}

/// Starts this instance's sender on the current actix system; it ends
/// when [`Mailer::stop`] is called or the system stops.
pub fn spawn(state: web::Data<AppState>, delivery: Delivery) {
    actix_web::rt::spawn(async move {
        let mailer = Arc::clone(&state.mailer);
        let mut last_prune: Option<Instant> = None;
        let mut outage = false;
        while !mailer.is_stopped() {
            let mut wait = POLL;
            if state.schema_ready.load(Ordering::Acquire) {
                let every = PRUNE_EVERY.min(state.settings.email.retention);
                let prune = last_prune.is_none_or(|t| t.elapsed() >= every);
                if prune {
                    last_prune = Some(Instant::now());
                }
                let app = state.clone();
                let delivery = delivery.clone();
                match web::block(move || cycle(&app, &delivery, prune)).await {
                    Ok(Ok(done)) => {
                        if outage {
                            log::info!(target: "latchkey::email", "the outbox is readable again");
                            outage = false;
                        }
                        if done.claimed as i64 >= BATCH {
                            wait = Duration::ZERO;
                        } else if let Some(due) = done.next_due {
                            let until = (due - db_now()).to_std().unwrap_or(Duration::ZERO);
                            wait = until.clamp(Duration::from_millis(20), POLL);
                        }
                    }
                    Ok(Err(error)) => {
                        if !outage {
                            log::warn!(target: "latchkey::email", "the outbox cannot be read ({error}); mail waits until it can");
                            outage = true;
                        }
                    }
                    Err(error) => {
                        log::error!(target: "latchkey::email", "the sender's cycle failed: {error}")
                    }
                }
            }
            if wait.is_zero() {
                continue;
            }
            tokio::select! {
                _ = actix_web::rt::time::sleep(wait) => {}
                _ = mailer.woken() => {}
                _ = mailer.stopping() => {}
            }
        }
    });
}
