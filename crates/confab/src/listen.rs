//! Listener SPEC strings: `TRANSPORT:ADDR[:PORT][;advertise=HOST[:PORT]]`, e.g.
//! `udp:127.0.0.1:5060`, `tls:[::1]:5061`. The syntax and its parser belong to
//! `confab-transport` ([`ListenSpec`]); the same strings are used on the command line
//! (`confab init --listen SPEC`) and in the configuration file (`transport.listen`).

pub use confab_transport::{ListenSpec, ListenSpecError, TransportKind};

/// The default SIP listeners of a fresh installation: UDP and TCP on 5060, TLS on 5061,
/// WebSocket on 8080 and secure WebSocket on 8443, all on 127.0.0.1.
pub fn default_listeners() -> Vec<ListenSpec> {
    [
        "udp:127.0.0.1:5060",
        "tcp:127.0.0.1:5060",
        "tls:127.0.0.1:5061",
        "ws:127.0.0.1:8080",
        "wss:127.0.0.1:8443",
    ]
    .into_iter()
    .map(|s| s.parse().expect("default listener specs are valid"))
    .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_cover_every_transport_once() {
        let d = default_listeners();
        for t in TransportKind::ALL {
            assert_eq!(d.iter().filter(|l| l.transport == t).count(), 1, "{t:?}");
        }
        assert!(d.iter().all(|l| l.addr.ip().is_loopback()));
    }

    #[test]
    fn ipv6_specs_round_trip() {
        let l: ListenSpec = "udp:[::1]:5060".parse().unwrap();
        assert_eq!(l.to_string(), "udp:[::1]:5060");
        assert!("udp:localhost:5060".parse::<ListenSpec>().is_err());
    }
}
