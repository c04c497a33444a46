//! Requests the node sends on its own behalf (offline message delivery): handed to a worker,
//! which runs them in a client transaction of its proxy core
//! ([`confab_proxy::Proxy::originate`]) and reports the final status.

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
