//! UDP: SO_REUSEPORT sockets (one receive task each, so both cores receive), a receive
//! loop that drains the socket after each readiness event, STUN keep-alive answers,
//! per-source rate limiting before parsing, and error responses only where allowed and
//! rate-limited (anti-reflection).
//!
//! Overload: every datagram is read with the kernel's receive timestamp (SO_TIMESTAMPNS,
//! through `nix`'s safe `recvmsg`). A request that starts new work and waited in the
//! kernel longer than `max_datagram_age_ms` is dropped before parsing ([`crate::stale`]).
//! When the event channel is full the receive task waits for room instead of reading on
//! and dropping parsed messages, so the backlog stays in the kernel buffer, where dropping
//! a stale request costs one receive call.

use std::io;
use std::io::IoSliceMut;
use std::net::SocketAddr;
use std::os::fd::AsRawFd;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use nix::sys::socket::{
    ControlMessageOwned, MsgFlags, MultiHeaders, SockaddrStorage, recvmmsg, setsockopt, sockopt,
};
use nix::sys::time::TimeSpec;
use socket2::{Domain, Protocol, Socket, Type};
use tokio::io::Interest;
use tokio::net::UdpSocket;
use tokio::sync::mpsc::error::TrySendError;

use crate::config::TransportConfig;
use crate::flow::FlowToken;
use crate::listen::TransportKind;
use crate::sip;
use crate::stale;
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
        // The kernel's receive time of each datagram, for the stale check. Without it
        // (an old kernel), datagrams are stamped when read and none is ever stale.
        if let Err(e) = setsockopt(&s, sockopt::ReceiveTimestampns, &true) {
            tracing::warn!(error = %e, "SO_TIMESTAMPNS unavailable: transport.max_datagram_age_ms has no effect");
        }
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

/// One datagram taken from a socket.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Received {
    pub(crate) len: usize,
    pub(crate) src: SocketAddr,
    /// When the kernel received it (wall clock), if the socket reports it.
    pub(crate) kernel_time: Option<SystemTime>,
}

/// Datagrams taken per `recvmmsg` call. Under overload most of them are stale requests
/// dropped unparsed, and the system call is then most of what each one costs.
const BATCH: usize = 16;

/// Receive state of one socket: `BATCH` buffers of the largest datagram (untouched pages
/// stay unallocated) and what the last `recvmmsg` took.
pub(crate) struct Receiver {
    bufs: Vec<Vec<u8>>,
    got: Vec<Received>,
}

impl Receiver {
    pub(crate) fn new() -> Self {
        Receiver {
            bufs: (0..BATCH).map(|_| vec![0u8; 65_536]).collect(),
            got: Vec::with_capacity(BATCH),
        }
    }

    /// Takes up to `BATCH` datagrams with their kernel receive times (`recvmmsg`);
    /// `WouldBlock` when nothing is queued. The datagrams are then `self.datagram(i)` for
    /// `i < self.len()`.
    pub(crate) fn recv(&mut self, socket: &UdpSocket) -> io::Result<usize> {
        let fd = socket.as_raw_fd();
        let Receiver { bufs, got } = self;
        got.clear();
        socket.try_io(Interest::READABLE, || {
            // The headers hold raw pointers (not Send), so they cannot live in the task
            // across an await: a few small allocations per call, shared by its datagrams.
            let mut headers = MultiHeaders::<SockaddrStorage>::preallocate(
                BATCH,
                Some(nix::cmsg_space!(TimeSpec)),
            );
            let mut iovs: Vec<[IoSliceMut<'_>; 1]> =
                bufs.iter_mut().map(|b| [IoSliceMut::new(b)]).collect();
            let results = recvmmsg(
                fd,
                &mut headers,
                iovs.iter_mut(),
                MsgFlags::MSG_DONTWAIT,
                None,
            )
            .map_err(io::Error::from)?;
            for msg in results {
                let Some(src) = msg.address.as_ref().and_then(to_socket_addr) else {
                    // not an IP datagram: cannot happen on an IP socket; keep the slot
                    // aligned with its buffer and let the length 0 drop it
                    got.push(Received {
                        len: 0,
                        src: SocketAddr::from(([0, 0, 0, 0], 0)),
                        kernel_time: None,
                    });
                    continue;
                };
                let mut kernel_time = None;
                if let Ok(cmsgs) = msg.cmsgs() {
                    for c in cmsgs {
                        if let ControlMessageOwned::ScmTimestampns(ts) = c {
                            kernel_time = wall_time(&ts);
                        }
                    }
                }
                got.push(Received {
                    len: msg.bytes,
                    src,
                    kernel_time,
                });
            }
            Ok(got.len())
        })
    }

    pub(crate) fn datagram(&self, i: usize) -> (&[u8], Received) {
        let r = self.got[i];
        (&self.bufs[i][..r.len.min(self.bufs[i].len())], r)
    }
}

fn to_socket_addr(a: &SockaddrStorage) -> Option<SocketAddr> {
    if let Some(v4) = a.as_sockaddr_in() {
        return Some(SocketAddr::V4((*v4).into()));
    }
    if let Some(v6) = a.as_sockaddr_in6() {
        return Some(SocketAddr::V6((*v6).into()));
    }
    None
}

fn wall_time(ts: &TimeSpec) -> Option<SystemTime> {
    let secs = u64::try_from(ts.tv_sec()).ok()?;
    let nanos = u32::try_from(ts.tv_nsec()).ok()?;
    UNIX_EPOCH.checked_add(Duration::new(secs, nanos))
}

/// How long a datagram stamped `kernel_time` has waited, by the wall clock (0 when the
/// stamp is missing or in the future: a clock step backwards never makes input stale).
pub(crate) fn waited(kernel_time: Option<SystemTime>, wall_now: SystemTime) -> Duration {
    kernel_time
        .and_then(|t| wall_now.duration_since(t).ok())
        .unwrap_or(Duration::ZERO)
}

/// Receives on socket `sock` of UDP listener `li` until the event receiver is dropped.
pub(crate) async fn receive_loop(shared: Arc<Shared>, li: usize, sock: usize) {
    let socket = shared.udp[li].sockets[sock].clone();
    let listener_id = shared.udp[li].info.id;
    let mut rx = Receiver::new();
    let mut scratch = Vec::with_capacity(64);
    let mut errors_in_a_row = 0u32;
    loop {
        if socket.readable().await.is_err() {
            return;
        }
        // Drain everything queued: one readiness wake-up serves a batch of datagrams.
        loop {
            match rx.recv(&socket) {
                Ok(n) => {
                    errors_in_a_row = 0;
                    for i in 0..n {
                        let (data, r) = rx.datagram(i);
                        if r.len == 0 {
                            continue;
                        }
                        let Some(ev) = on_datagram(&shared, li, listener_id, data, r, &mut scratch)
                        else {
                            continue;
                        };
                        match shared.events.try_send(ev) {
                            Ok(()) => {}
                            // Full: wait for room instead of reading on. The backlog stays in
                            // the kernel buffer, where the stale check drops old requests
                            // unparsed.
                            Err(TrySendError::Full(ev)) => {
                                if shared.events.send(ev).await.is_err() {
                                    return;
                                }
                            }
                            Err(TrySendError::Closed(_)) => return,
                        }
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

/// Handles one datagram: keep-alives, the stale check, rate limit, parse. Returns the
/// event to hand up, if any.
fn on_datagram(
    shared: &Shared,
    li: usize,
    listener_id: u16,
    data: &[u8],
    r: Received,
    scratch: &mut Vec<u8>,
) -> Option<TransportEvent> {
    let src = r.src;
    let now = Instant::now();
    if data.iter().all(|&b| b == b'\r' || b == b'\n') {
        // RFC 5626 §3.5.1 allows CRLF keep-alives on UDP too; nothing to answer.
        shared.metrics.keepalive_crlf.increment(1);
        return None;
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
        return None;
    }
    let age = waited(r.kernel_time, SystemTime::now());
    if stale::is_stale(age, shared.cfg.max_datagram_age_ms) && stale::datagram_is_droppable(data) {
        shared.metrics.drop_stale.increment(1);
        return None;
    }
    if !shared.sources.admit_message(src.ip(), now) {
        shared.metrics.drop_rate_limited.increment(1);
        return None;
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
            return None;
        }
    };
    let mut message = message;
    if message.is_request() {
        sip::stamp_received(&mut message, src);
    } else if shared.cfg.check_response_sent_by
        && !sip::response_is_ours(&message, &shared.listeners)
    {
        shared.metrics.drop_foreign_response.increment(1);
        return None;
    }
    shared.metrics.received(TransportKind::Udp).increment(1);
    let info = &shared.udp[li].info;
    Some(TransportEvent::Message(Inbound {
        message,
        flow: FlowToken::datagram(listener_id, src),
        source: src,
        listener: Some(info.clone()),
        local: info.local,
        transport: TransportKind::Udp,
        peer_identity: None,
        received_at: now.checked_sub(age).unwrap_or(now),
    }))
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
