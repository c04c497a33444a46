//! Wiring of the presence role (`confab-presence`) into the SIP Front End: the `presence`
//! chain step before `router` (SUBSCRIBE, PUBLISH), the `dialog-events` step before
//! `dialog` (the proxy reports INVITE dialogs and BYEs to presence: the RFC 4235 `dialog`
//! package and "on the phone"), the registration observer (the `reg` package and
//! aggregation follow binding changes) and the notifier's request sender.

use anyhow::Context as _;
use confab_frontend::FrontendBuilder;
use confab_presence::server::{PresencePorts, PresenceServer};

use crate::config::Config;
use crate::store::Stores;

/// Loads the stored subscriptions and publications.
pub async fn load(config: &Config, stores: &Stores) -> anyhow::Result<PresenceServer> {
    PresenceServer::load(
        config.presence,
        PresencePorts {
            users: stores.users.clone(),
            registrations: stores.registrations.clone(),
            subscriptions: stores.subscriptions.clone(),
            publications: stores.publications.clone(),
            contacts: stores.contacts.clone(),
        },
    )
    .await
    .context("loading presence state")
}

/// Adds the presence role to the Front End being built and starts its notifier.
pub fn wire(presence: &PresenceServer, builder: FrontendBuilder) -> FrontendBuilder {
    presence.start(builder.request_sender());
    builder
        .handler_before("dialog", presence.dialog_step())
        .handler_before("router", presence.handler())
        .registration_observer(presence.registration_observer())
}
