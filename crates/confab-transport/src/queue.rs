//! The send queue of one connection: a bounded FIFO of complete messages with a wake-up.
//!
//! A tokio `mpsc` channel allocates a block of 32 slots up front (about 1 KiB per
//! connection, idle or not); this queue allocates only when something is queued, which
//! keeps an idle TCP connection under the 4 KiB budget of the performance goals.

use std::collections::VecDeque;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, Ordering};

use bytes::Bytes;
use tokio::sync::Notify;

/// Why a message could not be queued.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum PushError {
    Full,
    Closed,
}

#[derive(Debug)]
pub(crate) struct SendQueue {
    items: Mutex<VecDeque<Bytes>>,
    notify: Notify,
    closed: AtomicBool,
    capacity: usize,
}

impl SendQueue {
    pub(crate) fn new(capacity: usize) -> Self {
        SendQueue {
            items: Mutex::new(VecDeque::new()),
            notify: Notify::new(),
            closed: AtomicBool::new(false),
            capacity: capacity.max(1),
        }
    }

    pub(crate) fn push(&self, b: Bytes) -> Result<(), PushError> {
        {
            let mut q = self.items.lock().unwrap_or_else(|e| e.into_inner());
            if self.closed.load(Ordering::Acquire) {
                return Err(PushError::Closed);
            }
            if q.len() >= self.capacity {
                return Err(PushError::Full);
            }
            q.push_back(b);
        }
        self.notify.notify_one();
        Ok(())
    }

    pub(crate) fn try_pop(&self) -> Option<Bytes> {
        let mut q = self.items.lock().unwrap_or_else(|e| e.into_inner());
        let b = q.pop_front();
        if q.is_empty() && q.capacity() > 16 {
            // a burst is over: give the memory back
            *q = VecDeque::new();
        }
        b
    }

    /// The next message; `None` once closed (messages still queued are left for
    /// [`Self::drain`]).
    pub(crate) async fn pop(&self) -> Option<Bytes> {
        loop {
            if self.closed.load(Ordering::Acquire) {
                return None;
            }
            if let Some(b) = self.try_pop() {
                return Some(b);
            }
            // A notify_one() without a waiter leaves a permit, so a push between the
            // check above and this await is not lost.
            self.notify.notified().await;
        }
    }

    pub(crate) fn close(&self) {
        self.closed.store(true, Ordering::Release);
        self.notify.notify_one();
    }

    /// Closes and takes whatever is still queued.
    pub(crate) fn drain(&self) -> Vec<Bytes> {
        self.close();
        let mut q = self.items.lock().unwrap_or_else(|e| e.into_inner());
        q.drain(..).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn fifo_bounded_and_closable() {
        let q = SendQueue::new(2);
        q.push(Bytes::from_static(b"a")).unwrap();
        q.push(Bytes::from_static(b"b")).unwrap();
        assert_eq!(q.push(Bytes::from_static(b"c")), Err(PushError::Full));
        assert_eq!(q.pop().await.as_deref(), Some(&b"a"[..]));
        assert_eq!(q.try_pop().as_deref(), Some(&b"b"[..]));
        assert_eq!(q.try_pop(), None);
        q.push(Bytes::from_static(b"d")).unwrap();
        assert_eq!(q.drain(), vec![Bytes::from_static(b"d")]);
        assert_eq!(q.push(Bytes::from_static(b"e")), Err(PushError::Closed));
        assert_eq!(q.pop().await, None);
    }

    #[tokio::test]
    async fn wakes_a_waiting_consumer() {
        let q = std::sync::Arc::new(SendQueue::new(4));
        let q2 = q.clone();
        let consumer = tokio::spawn(async move { q2.pop().await });
        tokio::task::yield_now().await;
        q.push(Bytes::from_static(b"x")).unwrap();
        assert_eq!(consumer.await.unwrap().as_deref(), Some(&b"x"[..]));
    }
}
