//! RFC 3261 §18 rules that need a parsed message: where a response goes (§18.2.2 with
//! RFC 3581), when a request must leave UDP for a congestion-controlled transport
//! (§18.1.1), and the transport name in the top Via. Pure functions; the
//! [`crate::TransportHandle`] methods `send_response` and `send_request` apply them.

use std::fmt::Write as _;
use std::net::SocketAddr;

use bytes::Bytes;
use confab_sip::Message;

use crate::flow::FlowToken;
use crate::listen::TransportKind;
use crate::sip::write_host;
use crate::transport::{SendError, Target, TransportHandle};

/// Where a response must be sent.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ResponseRoute {
    /// Over the flow the request arrived on.
    Flow(FlowToken),
    /// To this address (a new connection for reliable transports).
    Addr {
        /// Transport from the Via.
        transport: TransportKind,
        /// Destination.
        addr: SocketAddr,
    },
    /// The sent-by is a host name: the caller resolves it per RFC 3263 §5 and sends with
    /// [`Target::Addr`].
    Resolve {
        /// Transport from the Via.
        transport: TransportKind,
        /// sent-by host.
        host: String,
        /// sent-by port or the transport's default.
        port: u16,
    },
}

/// Why a response cannot be routed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum RouteError {
    /// No Via, or the top Via does not parse.
    #[error("response has no usable top Via")]
    NoVia,
    /// The Via names a transport we do not speak.
    #[error("top Via transport `{0}` is not supported")]
    UnknownTransport(String),
    /// A WebSocket client's connection is gone; it cannot be reopened from our side.
    #[error("the WebSocket connection of the request is closed")]
    WebSocketGone,
}

/// RFC 3261 §18.2.2 with RFC 3581 §4: the destination of `response`, given the flow its
/// request arrived on and whether that flow is still open.
///
/// * reliable transport, connection open → that connection;
/// * reliable, connection gone → a new connection to `received` (else the sent-by host)
///   and the sent-by port (default 5060, 5061 for TLS);
/// * `maddr` → that address, sent-by port;
/// * unreliable with `received`: `rport` with a value → the request's flow (that is the
///   source IP and port, sent from the socket the request came to); otherwise `received`
///   and the sent-by port;
/// * otherwise the sent-by address (resolved by the caller if it is a name).
pub fn response_route(
    response: &Message,
    request_flow: Option<FlowToken>,
    flow_open: bool,
) -> Result<ResponseRoute, RouteError> {
    let via = response
        .top_via()
        .and_then(Result::ok)
        .ok_or(RouteError::NoVia)?;
    let transport = TransportKind::from_via_name(via.transport)
        .ok_or_else(|| RouteError::UnknownTransport(via.transport.to_owned()))?;
    let port = via.port.unwrap_or(transport.default_port());
    if transport.is_reliable() {
        if let Some(f) = request_flow.filter(|f| f.is_connection() && flow_open) {
            return Ok(ResponseRoute::Flow(f));
        }
        if transport.is_websocket() {
            return Err(RouteError::WebSocketGone);
        }
    } else if let Some(maddr) = via.maddr {
        if let Some(ip) = maddr.ip() {
            return Ok(ResponseRoute::Addr {
                transport,
                addr: SocketAddr::new(ip, port),
            });
        }
        let mut host = String::new();
        write_host(&mut host, &maddr);
        return Ok(ResponseRoute::Resolve {
            transport,
            host,
            port,
        });
    } else if let Some(ip) = via.received {
        if let Some(Some(rport)) = via.rport {
            return Ok(match request_flow.and_then(|f| f.as_datagram()) {
                Some((_, src)) if src == SocketAddr::new(ip, rport) => {
                    ResponseRoute::Flow(request_flow.expect("checked above"))
                }
                _ => ResponseRoute::Addr {
                    transport,
                    addr: SocketAddr::new(ip, rport),
                },
            });
        }
        return Ok(ResponseRoute::Addr {
            transport,
            addr: SocketAddr::new(ip, port),
        });
    }
    if let Some(ip) = via.received.or(via.host.ip()) {
        return Ok(ResponseRoute::Addr {
            transport,
            addr: SocketAddr::new(ip, port),
        });
    }
    let mut host = String::new();
    write_host(&mut host, &via.host);
    Ok(ResponseRoute::Resolve {
        transport,
        host,
        port,
    })
}

/// RFC 3261 §18.1.1: a request within 200 bytes of the path MTU (1300 bytes for an MTU of
/// 1500) must go over a congestion-controlled transport when the target supports one.
pub fn needs_congestion_control(len: usize, mtu: usize) -> bool {
    len > mtu.saturating_sub(200)
}

/// Sets the transport token of the top Via (`SIP/2.0/TCP ...`) when it differs.
/// Returns false when the message has no parsable top Via.
pub fn set_via_transport(msg: &mut Message, transport: TransportKind) -> bool {
    let new_value = {
        let Some(Ok(via)) = msg.top_via() else {
            return false;
        };
        if via.transport.eq_ignore_ascii_case(transport.via_name()) {
            return true;
        }
        let mut v = String::with_capacity(96);
        let _ = write!(
            v,
            "{}/{}/{} ",
            via.protocol,
            via.version,
            transport.via_name()
        );
        write_host(&mut v, &via.host);
        if let Some(p) = via.port {
            let _ = write!(v, ":{p}");
        }
        let params = via.params.as_str();
        if !params.is_empty() && !params.starts_with(';') {
            v.push(';');
        }
        v.push_str(params);
        v
    };
    msg.replace_top_via(&new_value).is_ok()
}

/// Where and how to send a request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RequestTarget {
    /// The transport RFC 3263 chose.
    pub transport: TransportKind,
    /// The resolved address.
    pub addr: SocketAddr,
    /// For TLS: the SIP domain to verify (RFC 5922 §7.3).
    pub server_name: Option<String>,
    /// The target also supports TCP at `addr` (from RFC 3263 resolution or configuration),
    /// so a large request may move from UDP to TCP.
    pub tcp_supported: bool,
}

impl TransportHandle {
    /// Sends a response where RFC 3261 §18.2.2 says (see [`response_route`]): over the
    /// request's flow while it exists, otherwise by the Via. A Via with a host name comes
    /// back as [`SendError::NeedsResolution`].
    pub async fn send_response(
        &self,
        response: &Message,
        request_flow: FlowToken,
    ) -> Result<FlowToken, SendError> {
        let route = response_route(
            response,
            Some(request_flow),
            self.flow_is_open(request_flow),
        )
        .map_err(SendError::Route)?;
        let bytes = response.to_bytes();
        match route {
            ResponseRoute::Flow(f) => match self.send(&Target::Flow(f), bytes.clone()).await {
                // Closed between the check and the send: §18.2.2 says open a new one.
                Err(SendError::FlowGone(_)) if f.is_connection() => {
                    let route = response_route(response, None, false).map_err(SendError::Route)?;
                    self.send_routed(route, bytes).await
                }
                other => other,
            },
            other => self.send_routed(other, bytes).await,
        }
    }

    async fn send_routed(
        &self,
        route: ResponseRoute,
        bytes: Bytes,
    ) -> Result<FlowToken, SendError> {
        match route {
            ResponseRoute::Flow(f) => self.send(&Target::Flow(f), bytes).await,
            ResponseRoute::Addr { transport, addr } => {
                self.send(
                    &Target::Addr {
                        transport,
                        addr,
                        server_name: None,
                    },
                    bytes,
                )
                .await
            }
            ResponseRoute::Resolve {
                transport,
                host,
                port,
            } => Err(SendError::NeedsResolution {
                transport,
                host,
                port,
            }),
        }
    }

    /// Sends a request (RFC 3261 §18.1.1): moves a request larger than `mtu - 200` bytes
    /// from UDP to TCP when the target supports TCP (falling back to UDP if the connection
    /// is refused), and writes the transport actually used into the top Via.
    pub async fn send_request(
        &self,
        request: &mut Message,
        target: &RequestTarget,
    ) -> Result<FlowToken, SendError> {
        let mut transport = target.transport;
        if transport == TransportKind::Udp
            && target.tcp_supported
            && needs_congestion_control(request.encoded_len(), self.shared.cfg.mtu)
        {
            transport = TransportKind::Tcp;
        }
        set_via_transport(request, transport);
        let t = Target::Addr {
            transport,
            addr: target.addr,
            server_name: target.server_name.clone(),
        };
        match self.send(&t, request.to_bytes()).await {
            Err(SendError::Connect { .. }) if transport != target.transport => {
                set_via_transport(request, target.transport);
                let t = Target::Addr {
                    transport: target.transport,
                    addr: target.addr,
                    server_name: target.server_name.clone(),
                };
                self.send(&t, request.to_bytes()).await
            }
            other => other,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn response(via: &str) -> Message {
        let text = format!(
            "SIP/2.0 200 OK\r\nVia: {via}\r\nFrom: <sip:a@x>;tag=1\r\nTo: <sip:b@x>;tag=2\r\n\
             Call-ID: c\r\nCSeq: 1 OPTIONS\r\nContent-Length: 0\r\n\r\n"
        );
        confab_sip::parse_datagram(Bytes::from(text), &confab_sip::Limits::DEFAULT).unwrap()
    }

    const UDP_FLOW_SRC: &str = "192.0.2.9:40000";

    #[track_caller]
    fn check(
        via: &str,
        flow: Option<FlowToken>,
        open: bool,
        want: Result<ResponseRoute, RouteError>,
    ) {
        assert_eq!(response_route(&response(via), flow, open), want, "{via}");
    }

    fn addr(t: TransportKind, a: &str) -> Result<ResponseRoute, RouteError> {
        Ok(ResponseRoute::Addr {
            transport: t,
            addr: a.parse().unwrap(),
        })
    }

    #[test]
    fn rfc3261_18_2_2_response_routes() {
        use TransportKind::*;
        let conn = FlowToken::connection(7);
        let udp = FlowToken::datagram(0, UDP_FLOW_SRC.parse().unwrap());
        // reliable: the connection while open, else received + sent-by port
        check(
            "SIP/2.0/TCP 10.0.0.1:5070;branch=z9hG4bK1;received=192.0.2.9",
            Some(conn),
            true,
            Ok(ResponseRoute::Flow(conn)),
        );
        check(
            "SIP/2.0/TCP 10.0.0.1:5070;branch=z9hG4bK1;received=192.0.2.9",
            Some(conn),
            false,
            addr(Tcp, "192.0.2.9:5070"),
        );
        check(
            "SIP/2.0/TLS client.example;branch=z9hG4bK1",
            Some(conn),
            false,
            Ok(ResponseRoute::Resolve {
                transport: Tls,
                host: "client.example".into(),
                port: 5061,
            }),
        );
        check(
            "SIP/2.0/WSS df7jal23ls0d.invalid;branch=z9hG4bK1",
            Some(conn),
            false,
            Err(RouteError::WebSocketGone),
        );
        // UDP with rport filled by us: the request's flow
        check(
            "SIP/2.0/UDP 10.0.0.1;branch=z9hG4bK1;rport=40000;received=192.0.2.9",
            Some(udp),
            true,
            Ok(ResponseRoute::Flow(udp)),
        );
        // rport naming another port than the flow: the address it names
        check(
            "SIP/2.0/UDP 10.0.0.1;branch=z9hG4bK1;rport=40001;received=192.0.2.9",
            Some(udp),
            true,
            addr(Udp, "192.0.2.9:40001"),
        );
        // received without rport: received IP, sent-by port
        check(
            "SIP/2.0/UDP 10.0.0.1:5080;branch=z9hG4bK1;received=192.0.2.9",
            Some(udp),
            true,
            addr(Udp, "192.0.2.9:5080"),
        );
        // maddr wins for UDP
        check(
            "SIP/2.0/UDP 10.0.0.1:5080;branch=z9hG4bK1;maddr=239.0.0.1;received=192.0.2.9",
            Some(udp),
            true,
            addr(Udp, "239.0.0.1:5080"),
        );
        // plain sent-by
        check(
            "SIP/2.0/UDP [2001:db8::1];branch=z9hG4bK1",
            None,
            false,
            addr(Udp, "[2001:db8::1]:5060"),
        );
        check(
            "SIP/2.0/UDP pc33.example.com:5066;branch=z9hG4bK1",
            None,
            false,
            Ok(ResponseRoute::Resolve {
                transport: Udp,
                host: "pc33.example.com".into(),
                port: 5066,
            }),
        );
        check(
            "SIP/2.0/SCTP 10.0.0.1;branch=z9hG4bK1",
            None,
            false,
            Err(RouteError::UnknownTransport("SCTP".into())),
        );
        check("garbage", None, false, Err(RouteError::NoVia));
    }

    #[test]
    fn rfc3261_18_1_1_size_rule() {
        assert!(!needs_congestion_control(1300, 1500));
        assert!(needs_congestion_control(1301, 1500));
        assert!(needs_congestion_control(801, 1000));
        assert!(needs_congestion_control(1, 100));
    }

    #[track_caller]
    fn check_via(via: &str, t: TransportKind, want: &str) {
        let mut m = response(via);
        assert!(set_via_transport(&mut m, t));
        let v = m.get(confab_sip::HeaderName::Via).unwrap();
        assert_eq!(v.value_str(), Some(want));
    }

    #[test]
    fn via_transport_rewrite() {
        use TransportKind::*;
        check_via(
            "SIP/2.0/UDP 10.0.0.1:5060;branch=z9hG4bK1",
            Tcp,
            "SIP/2.0/TCP 10.0.0.1:5060;branch=z9hG4bK1",
        );
        check_via(
            "SIP/2.0/UDP [::1];branch=z9hG4bK1;rport",
            Tls,
            "SIP/2.0/TLS [::1];branch=z9hG4bK1;rport",
        );
        // already right: untouched, byte for byte
        check_via(
            "SIP/2.0/tcp  h.example ;branch=z9hG4bK1",
            Tcp,
            "SIP/2.0/tcp  h.example ;branch=z9hG4bK1",
        );
        // only the first value of a combined line changes
        check_via(
            "SIP/2.0/UDP a;branch=z9hG4bK1, SIP/2.0/UDP b;branch=z9hG4bK2",
            Tcp,
            "SIP/2.0/TCP a;branch=z9hG4bK1, SIP/2.0/UDP b;branch=z9hG4bK2",
        );
    }
}
