//! Who "we" are: the served domains and the listeners, to recognise our own URIs (Route,
//! Record-Route, Request-URI) and to write our Via and Record-Route values.

use std::net::{IpAddr, SocketAddr};

use confab_core::Address;
use confab_core::SipTransport;
use confab_core::chain::{Addressed, Hop, Source};
use confab_sip::{Host, SipUri, Uri};

/// One listener of this node.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Listener {
    /// Its transport.
    pub transport: SipTransport,
    /// The bound address (may be a wildcard such as `0.0.0.0:5060`).
    pub local: SocketAddr,
    /// `host:port` written in Via sent-by and Record-Route (the configured `advertise`
    /// value, else the bound address). Must be what the transport adapter checks the Via
    /// of responses against.
    pub sent_by: String,
}

impl Listener {
    fn host_port(&self) -> (&str, Option<u16>) {
        split_host_port(&self.sent_by)
    }
}

/// Splits `host:port`, `[v6]:port`, `host`.
fn split_host_port(s: &str) -> (&str, Option<u16>) {
    if let Some(rest) = s.strip_prefix('[') {
        if let Some((h, tail)) = rest.split_once(']') {
            return (h, tail.strip_prefix(':').and_then(|p| p.parse().ok()));
        }
        return (s, None);
    }
    match s.rsplit_once(':') {
        Some((h, p)) if !h.contains(':') => (h, p.parse().ok()),
        _ => (s, None),
    }
}

/// The identity of this node: served domains and listeners.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LocalNode {
    domains: Vec<String>,
    listeners: Vec<Listener>,
}

impl LocalNode {
    /// `domains` are the served SIP domains (the first is the default), `listeners` the
    /// bound listeners.
    pub fn new(domains: &[String], listeners: Vec<Listener>) -> LocalNode {
        LocalNode {
            domains: domains.iter().map(|d| d.to_ascii_lowercase()).collect(),
            listeners,
        }
    }

    /// The served domains.
    pub fn domains(&self) -> &[String] {
        &self.domains
    }

    /// The listeners.
    pub fn listeners(&self) -> &[Listener] {
        &self.listeners
    }

    /// The default domain.
    pub fn default_domain(&self) -> &str {
        self.domains.first().map_or("localhost", String::as_str)
    }

    /// Whether `host` is one of our domains.
    pub fn is_domain(&self, host: &Host<'_>) -> bool {
        match host {
            Host::Domain(d) => self.domains.iter().any(|x| x.eq_ignore_ascii_case(d)),
            other => {
                let s = other.to_string();
                let s = s.trim_start_matches('[').trim_end_matches(']');
                self.domains.iter().any(|x| x.eq_ignore_ascii_case(s))
            }
        }
    }

    /// Whether `host:port` names one of our listeners (a missing port matches the
    /// transport's default port).
    pub fn is_listener(&self, host: &Host<'_>, port: Option<u16>) -> bool {
        self.listeners.iter().any(|l| {
            let lport = l.local.port();
            let port_ok = port.unwrap_or(l.transport.default_port()) == lport
                || port.is_none() && [5060, 5061].contains(&lport);
            if !port_ok {
                return false;
            }
            let (h, _) = l.host_port();
            let by_name = match host {
                Host::Domain(d) => d.eq_ignore_ascii_case(h),
                other => other
                    .ip()
                    .is_some_and(|ip| h.parse::<IpAddr>().ok() == Some(ip)),
            };
            by_name
                || host
                    .ip()
                    .is_some_and(|ip| ip == l.local.ip() && !ip.is_unspecified())
        })
    }

    /// Whether a SIP URI names this node (a domain we serve, or one of our listeners).
    pub fn is_us(&self, uri: &SipUri<'_>) -> bool {
        self.is_domain(&uri.host) || self.is_listener(&uri.host, uri.port)
    }

    /// Classifies a Request-URI for the chain.
    pub fn classify(&self, uri: Option<&Uri<'_>>) -> Addressed {
        let Some(Uri::Sip(u)) = uri else {
            return Addressed::Other;
        };
        let domain = if self.is_domain(&u.host) {
            match u.host {
                Host::Domain(d) => d.to_ascii_lowercase(),
                other => other.to_string(),
            }
        } else if self.is_listener(&u.host, u.port) {
            // `sip:bob@192.0.2.1`: our address stands for the default domain.
            self.default_domain().to_owned()
        } else {
            return Addressed::Other;
        };
        match u.user {
            None => Addressed::Server,
            Some(user) => match Address::new(user, &domain) {
                Ok(a) => Addressed::LocalUser(a),
                Err(_) => Addressed::LocalInvalid,
            },
        }
    }

    /// The listener a message from `source` arrived on: same transport and port, the same
    /// address (or a wildcard listener of the same family).
    pub fn listener_of(&self, source: &Source) -> Option<&Listener> {
        let t = source.hop.transport;
        let local = source.local;
        self.listeners
            .iter()
            .filter(|l| l.transport == t && l.local.port() == local.port())
            .find(|l| l.local.ip() == local.ip())
            .or_else(|| {
                self.listeners.iter().find(|l| {
                    l.transport == t
                        && l.local.port() == local.port()
                        && l.local.ip().is_unspecified()
                        && l.local.is_ipv4() == local.is_ipv4()
                })
            })
            .or_else(|| self.listeners.iter().find(|l| l.transport == t))
    }

    /// The listener a message to `hop` leaves from: same transport, same address family if
    /// possible.
    pub fn listener_for(&self, hop: &Hop) -> Option<&Listener> {
        let v4 = hop.remote.is_ipv4();
        let family = |l: &&Listener| {
            let ip = l.local.ip();
            ip.is_ipv4() == v4 || (ip.is_unspecified() && ip.is_ipv6())
        };
        self.listeners
            .iter()
            .filter(|l| l.transport == hop.transport)
            .find(family)
            .or_else(|| self.listeners.iter().find(|l| l.transport == hop.transport))
    }

    /// The `host:port` to advertise for `listener`, with a wildcard address replaced by
    /// `local_ip` (the address the peer reached us on) when known.
    pub fn sent_by(listener: &Listener, local_ip: Option<IpAddr>) -> String {
        if listener.local.ip().is_unspecified()
            && listener.sent_by == listener.local.to_string()
            && let Some(ip) = local_ip.filter(|ip| !ip.is_unspecified())
        {
            return SocketAddr::new(ip, listener.local.port()).to_string();
        }
        listener.sent_by.clone()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use confab_core::chain::FlowId;

    fn node() -> LocalNode {
        LocalNode::new(
            &["Example.com".into()],
            vec![
                Listener {
                    transport: SipTransport::Udp,
                    local: "192.0.2.1:5060".parse().unwrap(),
                    sent_by: "192.0.2.1:5060".into(),
                },
                Listener {
                    transport: SipTransport::Tcp,
                    local: "0.0.0.0:5070".parse().unwrap(),
                    sent_by: "sip.example.com:5070".into(),
                },
                Listener {
                    transport: SipTransport::Udp,
                    local: "[2001:db8::1]:5060".parse().unwrap(),
                    sent_by: "[2001:db8::1]:5060".into(),
                },
            ],
        )
    }

    #[track_caller]
    fn classify(uri: &str, want: Addressed) {
        let u = Uri::parse(uri).unwrap();
        assert_eq!(node().classify(Some(&u)), want, "{uri}");
    }

    fn local(a: &str) -> Addressed {
        Addressed::LocalUser(Address::parse(a).unwrap())
    }

    #[test]
    fn request_uri_classes() {
        classify("sip:example.com", Addressed::Server);
        classify("sip:EXAMPLE.com;transport=tcp", Addressed::Server);
        classify("sip:192.0.2.1", Addressed::Server);
        classify("sip:192.0.2.1:5060", Addressed::Server);
        classify("sip:sip.example.com:5070", Addressed::Server);
        classify("sip:bob@example.com", local("bob@example.com"));
        classify("sips:bob@example.com:5061", local("bob@example.com"));
        classify("sip:bob@192.0.2.1", local("bob@example.com"));
        classify("sip:bob@[2001:db8::1]", local("bob@example.com"));
        classify("sip:b%40ob@example.com", Addressed::LocalInvalid);
        classify("sip:bob@elsewhere.example", Addressed::Other);
        classify("sip:bob@192.0.2.1:5080", Addressed::Other);
        classify("sip:bob@192.0.2.99", Addressed::Other);
        classify("tel:+15551234567", Addressed::Other);
    }

    #[test]
    fn listener_selection() {
        let n = node();
        let remote: SocketAddr = "198.51.100.5:40000".parse().unwrap();
        let src = Source {
            hop: Hop::over_flow(SipTransport::Tcp, remote, FlowId::Connection { id: 1 }),
            local: "192.0.2.1:5070".parse().unwrap(),
            tls_names: None,
        };
        assert_eq!(n.listener_of(&src).unwrap().sent_by, "sip.example.com:5070");
        let v6: SocketAddr = "[2001:db8::9]:5060".parse().unwrap();
        assert_eq!(
            n.listener_for(&Hop::to_addr(SipTransport::Udp, v6))
                .unwrap()
                .sent_by,
            "[2001:db8::1]:5060"
        );
        assert_eq!(
            n.listener_for(&Hop::to_addr(SipTransport::Udp, remote))
                .unwrap()
                .sent_by,
            "192.0.2.1:5060"
        );
        assert!(
            n.listener_for(&Hop::to_addr(SipTransport::Tls, remote))
                .is_none()
        );
        let wild = Listener {
            transport: SipTransport::Udp,
            local: "0.0.0.0:5060".parse().unwrap(),
            sent_by: "0.0.0.0:5060".into(),
        };
        assert_eq!(
            LocalNode::sent_by(&wild, Some("10.0.0.5".parse().unwrap())),
            "10.0.0.5:5060"
        );
        assert_eq!(split_host_port("[::1]:5"), ("::1", Some(5)));
        assert_eq!(split_host_port("a.b"), ("a.b", None));
    }
}
