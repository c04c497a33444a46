//! Conversions between the transport adapter's types and the ports' types the roles use.

use std::sync::Arc;

use confab_core::chain::{FlowId, Hop, Source};
use confab_core::{FlowInfo, SipTransport};
use confab_transport::{FlowToken, Inbound, Target, TransportKind};

/// The adapter's transport kind as the ports' transport.
pub fn transport_of(kind: TransportKind) -> SipTransport {
    match kind {
        TransportKind::Udp => SipTransport::Udp,
        TransportKind::Tcp => SipTransport::Tcp,
        TransportKind::Tls => SipTransport::Tls,
        TransportKind::Ws => SipTransport::Ws,
        TransportKind::Wss => SipTransport::Wss,
    }
}

/// The ports' transport as the adapter's kind.
pub fn kind_of(t: SipTransport) -> TransportKind {
    match t {
        SipTransport::Udp => TransportKind::Udp,
        SipTransport::Tcp => TransportKind::Tcp,
        SipTransport::Tls => TransportKind::Tls,
        SipTransport::Ws => TransportKind::Ws,
        SipTransport::Wss => TransportKind::Wss,
    }
}

/// A flow token as a flow id.
pub fn flow_id(token: FlowToken) -> FlowId {
    match (token.as_datagram(), token.connection_id()) {
        (Some((listener, remote)), _) => FlowId::Datagram { listener, remote },
        (None, Some(id)) => FlowId::Connection { id },
        // A token is one or the other; keep a harmless value if that ever changes.
        (None, None) => FlowId::Connection { id: u64::MAX },
    }
}

/// A flow id as a flow token.
pub fn token_of(flow: FlowId) -> FlowToken {
    match flow {
        FlowId::Datagram { listener, remote } => FlowToken::datagram(listener, remote),
        FlowId::Connection { id } => FlowToken::connection(id),
    }
}

/// Where the transport must send for a hop.
pub fn target_of(hop: &Hop) -> Target {
    match hop.flow {
        Some(f) => Target::Flow(token_of(f)),
        None => Target::Addr {
            transport: kind_of(hop.transport),
            addr: hop.remote,
            server_name: hop.server_name.as_deref().map(str::to_owned),
        },
    }
}

/// The chain's view of where an inbound message came from.
pub fn source_of(inbound: &Inbound) -> Source {
    Source {
        hop: Hop::over_flow(
            transport_of(inbound.transport),
            inbound.source,
            flow_id(inbound.flow),
        ),
        local: inbound.local,
        tls_names: inbound
            .peer_identity
            .as_ref()
            .map(|p| Arc::from(p.domains().to_vec())),
    }
}

/// The registration record of the flow a request came on.
pub fn flow_info(source: &Source, node: &str) -> FlowInfo {
    FlowInfo {
        token: source
            .hop
            .flow
            .map(|f| token_of(f).encode())
            .unwrap_or_default(),
        transport: source.hop.transport,
        source: source.hop.remote,
        node: node.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips() {
        for k in TransportKind::ALL {
            assert_eq!(kind_of(transport_of(k)), k);
        }
        for t in [
            FlowToken::connection(5),
            FlowToken::datagram(2, "192.0.2.1:5060".parse().unwrap()),
        ] {
            assert_eq!(token_of(flow_id(t)), t);
            assert_eq!(FlowToken::decode(&token_of(flow_id(t)).encode()), Ok(t));
        }
    }
}
