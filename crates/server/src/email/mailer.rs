//! The handle requests and start-up hold on this instance's email sender
//! (`super::sender`): a wake-up when mail is queued, and a stop.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use tokio::sync::Notify;

/// The handle requests and start-up hold on this instance's sender.
#[derive(Default)]
pub struct Mailer {
    wake: Notify,
    stop: Notify,
    stopped: AtomicBool,
}

impl Mailer {
    pub fn new() -> Arc<Self> {
        Arc::new(Mailer::default())
    }

    /// Something was queued: look at the outbox now.
    pub fn wake(&self) {
        self.wake.notify_one();
    }

    /// The server stopped: the sender ends after its current cycle.
    pub fn stop(&self) {
        self.stopped.store(true, Ordering::Release);
        self.stop.notify_one();
    }

    pub(super) fn is_stopped(&self) -> bool {
        self.stopped.load(Ordering::Acquire)
    }

    pub(super) async fn woken(&self) {
        self.wake.notified().await;
    }

    pub(super) async fn stopping(&self) {
        self.stop.notified().await;
    }
}
