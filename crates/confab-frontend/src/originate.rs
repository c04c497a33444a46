//! Requests the node sends on its own behalf (offline message delivery): handed to a worker,
//! which runs them in a client transaction of its proxy core
//! ([`confab_proxy::Proxy::originate`]) and reports the final status. The presence
//! notifier's NOTIFYs take the same path through [`FrontendSender`].

use std::hash::{Hash, Hasher};

use async_trait::async_trait;
use confab_core::Binding;
use confab_proxy::Router;
use confab_sip::Message;
use tokio::sync::{mpsc, oneshot};

use crate::worker::WorkerMsg;

/// [`confab_im::Originator`] over the Front End's workers.
pub(crate) struct WorkerOriginator {
    router: Router,
    inboxes: Vec<mpsc::Sender<WorkerMsg>>,
}

impl WorkerOriginator {
    pub(crate) fn new(router: Router, inboxes: Vec<mpsc::Sender<WorkerMsg>>) -> Self {
        WorkerOriginator { router, inboxes }
    }
}

#[async_trait]
impl confab_im::Originator for WorkerOriginator {
    async fn send(&self, request: Message, binding: &Binding) -> u16 {
        let target = self.router.target(binding);
        // The worker a request of this Call-ID would land on (its responses do too).
        let i = match request.call_id() {
            Some(Ok(c)) if self.inboxes.len() > 1 => {
                let mut h = std::collections::hash_map::DefaultHasher::new();
                c.hash(&mut h);
                (h.finish() % self.inboxes.len() as u64) as usize
            }
            _ => 0,
        };
        let (tx, rx) = oneshot::channel();
        let msg = WorkerMsg::Originate {
            request,
            target,
            reply: tx,
        };
        if self.inboxes[i].send(msg).await.is_err() {
            return 503;
        }
        rx.await.unwrap_or(503)
    }
}

/// One request a role originates through [`FrontendSender`], with where to report its
/// final status.
#[derive(Debug)]
pub(crate) struct Originate {
    pub(crate) request: Message,
    pub(crate) hop: confab_core::chain::Hop,
    pub(crate) reply: oneshot::Sender<u16>,
}

/// The Front End's [`confab_core::RequestSender`] (the presence notifier's NOTIFYs).
/// Requests given before the Front End started wait in its queue.
#[derive(Debug, Clone)]
pub(crate) struct FrontendSender {
    pub(crate) tx: mpsc::Sender<Originate>,
    pub(crate) node: String,
    pub(crate) transport: std::sync::Arc<std::sync::OnceLock<confab_transport::TransportHandle>>,
}

#[async_trait]
impl confab_core::RequestSender for FrontendSender {
    async fn send_request(
        &self,
        mut request: Message,
        hop: confab_core::chain::Hop,
    ) -> confab_core::SendOutcome {
        use confab_core::SendOutcome;
        // The proxy core adds its own Via; the builder's placeholder goes.
        request.remove_top_via();
        let (reply, rx) = oneshot::channel();
        if self
            .tx
            .send(Originate {
                request,
                hop,
                reply,
            })
            .await
            .is_err()
        {
            return SendOutcome::Refused;
        }
        match rx.await {
            // `Proxy::originate` reports a timeout as 408 and a failure to send as 503.
            Ok(408) => SendOutcome::Timeout,
            Ok(503) => SendOutcome::TransportError,
            Ok(status) => SendOutcome::Response { status },
            Err(_) => SendOutcome::Refused,
        }
    }

    fn hop_for_flow(&self, flow: &confab_core::FlowInfo) -> Option<confab_core::chain::Hop> {
        if flow.node != self.node {
            return None;
        }
        let transport = self.transport.get()?;
        let token = confab_transport::FlowToken::decode(&flow.token).ok()?;
        if !transport.flow_is_open(token) {
            return None;
        }
        Some(confab_core::chain::Hop::over_flow(
            flow.transport,
            flow.source,
            crate::convert::flow_id(token),
        ))
    }
}

/// Passes requests given to [`FrontendSender`] to the worker of their Call-ID (waiting when
/// its inbox is full: NOTIFY fan-out is paced by the workers, never dropped here).
pub(crate) async fn dispatch(
    mut rx: mpsc::Receiver<Originate>,
    inboxes: Vec<mpsc::Sender<WorkerMsg>>,
) {
    while let Some(o) = rx.recv().await {
        let i = crate::worker_for(&o.request, inboxes.len());
        let uri = o
            .request
            .request_uri_bytes()
            .and_then(|b| std::str::from_utf8(b).ok())
            .unwrap_or("")
            .to_owned();
        let mut target = confab_core::chain::Target::new(uri);
        target.hop = Some(o.hop);
        let msg = WorkerMsg::Originate {
            request: o.request,
            target,
            reply: o.reply,
        };
        if let Err(mpsc::error::SendError(WorkerMsg::Originate { reply, .. })) =
            inboxes[i].send(msg).await
        {
            let _ = reply.send(503);
        }
    }
}
