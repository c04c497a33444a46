//! Requests a role originates (the presence notifier's NOTIFYs): the
//! [`confab_core::RequestSender`] the Front End hands out, and the task that passes its
//! requests to the worker owning their Call-ID, which sends them as client transactions
//! of its proxy core ([`confab_proxy::Proxy::originate`]).

use std::sync::{Arc, OnceLock};

use async_trait::async_trait;
use confab_core::chain::Hop;
use confab_core::{FlowInfo, RequestSender, SendOutcome};
use confab_transport::{FlowToken, TransportHandle};
use tokio::sync::{mpsc, oneshot};

use crate::convert::flow_id;
use crate::worker::WorkerMsg;

/// One request to originate, with where to report its end.
#[derive(Debug)]
pub(crate) struct Originate {
    pub(crate) request: confab_sip::Message,
    pub(crate) hop: Hop,
    pub(crate) reply: oneshot::Sender<SendOutcome>,
}

/// The Front End's [`RequestSender`]. Requests given before the Front End started wait
/// in its queue.
#[derive(Debug, Clone)]
pub(crate) struct FrontendSender {
    pub(crate) tx: mpsc::Sender<Originate>,
    pub(crate) node: String,
    pub(crate) transport: Arc<OnceLock<TransportHandle>>,
}

#[async_trait]
impl RequestSender for FrontendSender {
    async fn send_request(&self, request: confab_sip::Message, hop: Hop) -> SendOutcome {
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
        rx.await.unwrap_or(SendOutcome::Refused)
    }

    fn hop_for_flow(&self, flow: &FlowInfo) -> Option<Hop> {
        if flow.node != self.node {
            return None;
        }
        let transport = self.transport.get()?;
        let token = FlowToken::decode(&flow.token).ok()?;
        if !transport.flow_is_open(token) {
            return None;
        }
        Some(Hop::over_flow(flow.transport, flow.source, flow_id(token)))
    }
}

/// Passes originated requests to the worker of their Call-ID (waiting when its inbox is
/// full: NOTIFY fan-out is paced by the workers, never dropped here).
pub(crate) async fn dispatch(
    mut rx: mpsc::Receiver<Originate>,
    inboxes: Vec<mpsc::Sender<WorkerMsg>>,
) {
    while let Some(o) = rx.recv().await {
        let i = crate::worker_for(&o.request, inboxes.len());
        if let Err(mpsc::error::SendError(WorkerMsg::Originate(o))) =
            inboxes[i].send(WorkerMsg::Originate(o)).await
        {
            let _ = o.reply.send(SendOutcome::Refused);
        }
    }
}
