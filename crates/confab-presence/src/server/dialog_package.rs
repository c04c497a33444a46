//! The dialog event package (RFC 4235) in the running role: the proxy's
//! [`DialogObserver`] reports go into the [`DialogTable`]; the watchers of `dialog` (and of
//! `presence`, when "on the phone" flips) of the users concerned owe a NOTIFY; the
//! `dialog-events` chain step attaches the observer to the requests it follows.
//!
//! The chain step runs first in the chain (before `dialog`, which forwards in-dialog BYEs
//! and ends the chain): attaching the observer costs nothing, and the proxy only reports a
//! request it forwards, so a request the chain challenges or refuses is never reported.

use std::sync::Arc;

use async_trait::async_trait;
use confab_core::chain::{Outcome, RequestContext, RequestHandler};
use confab_core::{DialogObserver, Timestamp};
use confab_sip::Message;
use confab_xml::dialog_info::DialogInfo;

use super::{Inner, PresenceServer, lock, now};
use crate::access::{self, AccessLevel};
use crate::dialogs::{self, Changed, DialogTable};
use crate::subscription::EventPackage;

fn table(inner: &Inner) -> std::sync::MutexGuard<'_, DialogTable> {
    inner
        .dialogs
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// Whether `user` has a confirmed call.
pub(super) fn on_the_phone(inner: &Inner, user: &str) -> bool {
    table(inner).on_the_phone(user)
}

/// The user's full, unfiltered document (version set per NOTIFY by [`body`]).
pub(super) fn document(inner: &Inner, user: &str) -> DialogInfo {
    table(inner).document(user, 0, now())
}

/// The NOTIFY body for one watcher.
pub(super) fn body(doc: &DialogInfo, version: u32, level: AccessLevel) -> (&'static str, Vec<u8>) {
    let doc = DialogInfo {
        version,
        ..doc.clone()
    };
    access::dialog_notify_body(&doc, level)
}

/// Ends overlong dialogs and forgets ended ones (called every second).
pub(super) fn sweep(inner: &Inner, t: Timestamp) {
    let changed = table(inner).sweep(t, &inner.config.dialog);
    apply(inner, &changed, t);
}

fn apply(inner: &Inner, changed: &[Changed], t: Timestamp) {
    if changed.is_empty() {
        return;
    }
    {
        let mut st = lock(&inner.state);
        for c in changed {
            st.changed(&c.user, EventPackage::Dialog, t);
            if c.on_the_phone_changed {
                st.changed(&c.user, EventPackage::Presence, t);
            }
        }
    }
    inner.wake.notify_one();
}

impl DialogObserver for PresenceServer {
    fn invite_forwarded(&self, invite: &Message) {
        let t = now();
        let changed = table(&self.inner).handle_invite(invite, t, &self.inner.config.dialog);
        apply(&self.inner, &changed, t);
    }

    fn invite_response(&self, invite: &Message, response: &Message) {
        let t = now();
        let changed =
            table(&self.inner).handle_response(invite, response, t, &self.inner.config.dialog);
        apply(&self.inner, &changed, t);
    }

    fn bye_forwarded(&self, bye: &Message) {
        let t = now();
        let changed = table(&self.inner).handle_bye(bye, t);
        apply(&self.inner, &changed, t);
    }
}

impl PresenceServer {
    /// The proxy's dialog signal (what the `dialog-events` step attaches).
    pub fn dialog_observer(&self) -> Arc<dyn DialogObserver> {
        Arc::new(self.clone())
    }

    /// The chain step `dialog-events`, to insert first (before `dialog`): it marks initial
    /// INVITEs and in-dialog BYEs for the dialog observer and always continues.
    pub fn dialog_step(&self) -> Arc<dyn RequestHandler> {
        Arc::new(DialogEventsStep {
            observer: self.dialog_observer(),
        })
    }

    /// Dialogs followed (both parties of a call counted), for tests and metrics.
    pub fn dialogs_followed(&self) -> usize {
        table(&self.inner).len()
    }
}

struct DialogEventsStep {
    observer: Arc<dyn DialogObserver>,
}

impl std::fmt::Debug for DialogEventsStep {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("DialogEventsStep")
    }
}

#[async_trait]
impl RequestHandler for DialogEventsStep {
    fn name(&self) -> &'static str {
        "dialog-events"
    }

    async fn handle(&self, ctx: &mut RequestContext) -> Outcome {
        if dialogs::followed(&ctx.request, ctx.in_dialog) {
            ctx.dialog_observer = Some(self.observer.clone());
        }
        Outcome::Continue
    }
}
