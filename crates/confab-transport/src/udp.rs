//! UDP: SO_REUSEPORT sockets (one receive task each, so both cores receive), a receive
//! loop that drains the socket with `try_recv_from` after each readiness event, STUN
//! keep-alive answers, per-source rate limiting before parsing, and error responses only
//! where allowed and rate-limited (anti-reflection).

use std::io;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Instant;

use bytes::Bytes;
use socket2::{Domain, Protocol, Socket, Type};
use tokio::net::UdpSocket;
use tokio::sync::mpsc::error::TrySendError;

use crate::config::TransportConfig;
use crate::flow::FlowToken;
use crate::listen::TransportKind;
use crate::sip;
use crate::stun;
use crate::transport::{Inbound, Shared, TransportEvent};

/// Binds `n` sockets to `addr` with SO_REUSEPORT; the kernel spreads peers over them by a
/// hash of the 4-tuple, so one peer's datagrams stay on one socket (in order).
pub(crate) fn bind_reuseport(
    addr: SocketAddr,
    n: usize,
    cfg: &TransportConfig,
) -> io::Result<Vec<Arc<UdpSocket>>> {
    let mut out = Vec::with_capacity(n);
    let mut addr = addr;
    for _ in 0..n.max(1) {
        let s = Socket::new(Domain::for_address(addr), Type::DGRAM, Some(Protocol::UDP))?;
        if addr.is_ipv6() {
            s.set_only_v6(true)?;
        }
        s.set_reuse_port(true)?;
        // Best effort: the kernel caps these at net.core.{r,w}mem_max.
        let _ = s.set_recv_buffer_size(cfg.udp_recv_buffer_bytes);
        let _ = s.set_send_buffer_size(cfg.udp_send_buffer_bytes);
        s.set_nonblocking(true)?;
        s.bind(&addr.into())?;
        // Port 0: the first socket picked the port; the others join it.
        addr = s
            .local_addr()?
            .as_socket()
            .ok_or_else(|| io::Error::other("bound socket has no IP address"))?;
        out.push(Arc::new(UdpSocket::from_std(s.into())?));
    }
    Ok(out)
}

/// Receives on socket `sock` of UDP listener `li` until the event receiver is dropped.
pub(crate) async fn receive_loop(shared: Arc<Shared>, li: usize, sock: usize) {
    let socket = shared.udp[li].sockets[sock].clone();
    let listener_id = shared.udp[li].info.id;
    let mut buf = vec![0u8; 65_536];
    let mut scratch = Vec::with_capacity(64);
    let mut errors_in_a_row = 0u32;
    loop {
        if socket.readable().await.is_err() {
            return;
        }
        // Drain everything queued: one readiness wake-up serves a batch of datagrams.
        loop {
            match socket.try_recv_from(&mut buf) {
                Ok((n, src)) => {
                    errors_in_a_row = 0;
                    if !on_datagram(&shared, li, listener_id, &buf[..n], src, &mut scratch) {
                        return;
                    }
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                // ICMP errors from earlier sends surface here on Linux; they concern
                // another datagram, so keep going. A socket that only errors gets a pause
                // instead of a busy loop.
                Err(e) => {
                    errors_in_a_row += 1;
                    if errors_in_a_row >= 64 {
                        tracing::warn!(error = %e, "UDP receive keeps failing; pausing 10 ms");
                        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
                        errors_in_a_row = 0;
                        break;
                    }
                }
            }
        }
    }
}

/// Handles one datagram. Returns false when nobody listens for events any more.
fn on_datagram(
    shared: &Shared,
    li: usize,
    listener_id: u16,
    data: &[u8],
    src: SocketAddr,
    scratch: &mut Vec<u8>,
) -> bool {
    let now = Instant::now();
    if data.iter().all(|&b| b == b'\r' || b == b'\n') {
        // RFC 5626 §3.5.1 allows CRLF keep-alives on UDP too; nothing to answer.
        shared.metrics.keepalive_crlf.increment(1);
        return true;
    }
    if stun::looks_like_stun(data) {
        if shared.sources.admit_message(src.ip(), now)
            && stun::answer_binding(data, src, scratch).is_ok()
        {
            shared.metrics.keepalive_stun.increment(1);
            let _ = shared.udp_send(listener_id, src, scratch);
        } else {
            shared.metrics.drop_garbage.increment(1);
        }
        return true;
    }
    if !shared.sources.admit_message(src.ip(), now) {
        shared.metrics.drop_rate_limited.increment(1);
        return true;
    }
    let bytes = Bytes::copy_from_slice(data);
    let message = match sip::parse_datagram(bytes, &shared.sip_limits) {
        Ok(m) => m,
        Err(e) => {
            answer_bad_input(
                shared,
                &e,
                now,
                |resp| {
                    let _ = shared.udp_send(listener_id, src, resp);
                },
                src,
            );
            return true;
        }
    };
    let mut message = message;
    if message.is_request() {
        sip::stamp_received(&mut message, src);
    } else if shared.cfg.check_response_sent_by
        && !sip::response_is_ours(&message, &shared.listeners)
    {
        shared.metrics.drop_foreign_response.increment(1);
        return true;
    }
    shared.metrics.received(TransportKind::Udp).increment(1);
    let info = &shared.udp[li].info;
    let ev = TransportEvent::Message(Inbound {
        message,
        flow: FlowToken::datagram(listener_id, src),
        source: src,
        listener: Some(info.clone()),
        local: info.local,
        transport: TransportKind::Udp,
        peer_identity: None,
        received_at: now,
    });
    match shared.events.try_send(ev) {
        Ok(()) => true,
        Err(TrySendError::Full(_)) => {
            shared.metrics.drop_queue_full.increment(1);
            true
        }
        Err(TrySendError::Closed(_)) => false,
    }
}

/// Answers unparsable input when the message layer says a response is possible and the
/// source is under its error-response rate; otherwise drops it. Shared with streams.
pub(crate) fn answer_bad_input(
    shared: &Shared,
    err: &confab_sip::ParseError,
    now: Instant,
    send: impl FnOnce(&[u8]),
    src: SocketAddr,
) {
    match sip::error_response(err) {
        Some(resp) => {
            if shared.sources.admit_error_response(src.ip(), now) {
                shared.metrics.error_resp_sent.increment(1);
                send(&resp);
            } else {
                shared.metrics.error_resp_suppressed.increment(1);
            }
        }
        None => shared.metrics.drop_garbage.increment(1),
    }
}
