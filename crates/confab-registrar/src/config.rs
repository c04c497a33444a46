//! `[registrar]` configuration.

use confab_sip::Uri;

/// What the registrar does when a REGISTER would leave an address with more than
/// [`RegistrarConfig::max_contacts`] bindings.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Deserialize, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum TooManyContacts {
    /// Refuse the REGISTER with `403 Too Many Contacts`; nothing changes. 403, not 503:
    /// the cap is policy, retrying later does not help (a 503 would invite the client to
    /// retry), and the reason phrase tells the user what to do (unregister a device). The
    /// default.
    #[default]
    Reject,
    /// Accept it and drop the bindings of the address that were refreshed least recently
    /// (not those the REGISTER itself writes) until the cap holds: a new device pushes out
    /// a forgotten one. A REGISTER with more contacts than the cap is still refused.
    ReplaceOldest,
}

/// Which bindings a flow failure removes (RFC 5626 §5.3 / §6).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Deserialize, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum FlowFailure {
    /// Only outbound bindings (`+sip.instance` and `reg-id`), as RFC 5626 says: a plain
    /// RFC 3261 binding stays until it expires, since the proxy may reach its Contact URI
    /// directly. The default.
    #[default]
    Outbound,
    /// Every binding registered over the flow (useful where clients sit behind NAT and
    /// cannot be reached once their connection is gone).
    All,
}

/// Configuration of the registrar (the `[registrar]` table of `confab.toml`).
///
/// ```toml
/// [registrar]
/// min_expires_s = 60          # shorter non-zero requests get 423 with Min-Expires
/// max_expires_s = 3600        # longer requests are shortened to this
/// default_expires_s = 3600    # when the REGISTER gives no expiry
/// max_contacts = 10           # bindings per address
/// on_too_many_contacts = "reject"   # or "replace_oldest"
/// service_route = ["sip:fe1.example.com;lr"]   # RFC 3608, returned in every 200
/// flow_timer_s = 120          # RFC 5626 Flow-Timer for outbound registrations (unset: none)
/// flow_failure_removes = "outbound" # or "all"
/// gruu = true                 # RFC 5627 GRUUs for clients that support them
/// ```
#[derive(Debug, Clone, PartialEq, Eq, serde::Deserialize, serde::Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct RegistrarConfig {
    /// Shortest accepted non-zero expiry, in seconds (RFC 3261 §10.3 step 7: 423).
    pub min_expires_s: u32,
    /// Longest granted expiry, in seconds; longer requests are shortened.
    pub max_expires_s: u32,
    /// Expiry when neither the Contact `expires` parameter nor an Expires header is given.
    pub default_expires_s: u32,
    /// Most bindings per address-of-record (every device of a user).
    pub max_contacts: u32,
    /// What happens beyond `max_contacts`.
    pub on_too_many_contacts: TooManyContacts,
    /// Service-Route (RFC 3608) URIs returned in every 200 to a REGISTER, in order. Each a
    /// `sip:`/`sips:` URI, written without `<>` (`sip:fe1.example.com;lr`). Empty: none.
    pub service_route: Vec<String>,
    /// Flow-Timer (RFC 5626 §4.4.1) sent in a 200 that accepted outbound registrations:
    /// how often, in seconds, the client must send keep-alives. Unset: no header, clients
    /// use their defaults (about 25 s over UDP, 95-120 s over connections).
    pub flow_timer_s: Option<u32>,
    /// Which bindings a flow failure removes.
    pub flow_failure_removes: FlowFailure,
    /// Whether GRUUs (RFC 5627) are issued to clients that send `Supported: gruu` and a
    /// `+sip.instance`.
    pub gruu: bool,
}

impl Default for RegistrarConfig {
    fn default() -> RegistrarConfig {
        RegistrarConfig {
            min_expires_s: 60,
            max_expires_s: 3600,
            default_expires_s: 3600,
            max_contacts: 10,
            on_too_many_contacts: TooManyContacts::Reject,
            service_route: Vec::new(),
            flow_timer_s: None,
            flow_failure_removes: FlowFailure::Outbound,
            gruu: true,
        }
    }
}

/// Largest `max_contacts` accepted (a REGISTER response lists them all).
pub const MAX_CONTACTS_LIMIT: u32 = 100;

/// A `[registrar]` value that is not acceptable; the message names the key.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{key}: {message}")]
pub struct ConfigError {
    /// The key at fault, as written in the file (`registrar.min_expires_s`).
    pub key: &'static str,
    /// What is wrong.
    pub message: String,
}

fn err(key: &'static str, message: impl Into<String>) -> Result<(), ConfigError> {
    Err(ConfigError {
        key,
        message: message.into(),
    })
}

impl RegistrarConfig {
    /// Checks the values (the binary calls this for `confab serve --check`, and
    /// [`crate::Registrar::new`] refuses a config that fails it).
    pub fn validate(&self) -> Result<(), ConfigError> {
        if self.min_expires_s == 0 {
            return err("registrar.min_expires_s", "must be at least 1");
        }
        if self.max_expires_s < self.min_expires_s {
            return err(
                "registrar.max_expires_s",
                format!(
                    "{} is below min_expires_s = {}",
                    self.max_expires_s, self.min_expires_s
                ),
            );
        }
        if !(self.min_expires_s..=self.max_expires_s).contains(&self.default_expires_s) {
            return err(
                "registrar.default_expires_s",
                format!(
                    "{} must lie between min_expires_s = {} and max_expires_s = {}",
                    self.default_expires_s, self.min_expires_s, self.max_expires_s
                ),
            );
        }
        if self.max_contacts == 0 || self.max_contacts > MAX_CONTACTS_LIMIT {
            return err(
                "registrar.max_contacts",
                format!("must be between 1 and {MAX_CONTACTS_LIMIT}"),
            );
        }
        if self.flow_timer_s == Some(0) {
            return err(
                "registrar.flow_timer_s",
                "must be at least 1 (leave it out for no Flow-Timer)",
            );
        }
        for (i, r) in self.service_route.iter().enumerate() {
            let ok = match Uri::parse(r) {
                Ok(Uri::Sip(_)) => true,
                Ok(_) | Err(_) => false,
            };
            if !ok || r.contains(['<', '>', ',', ' ']) {
                return err(
                    "registrar.service_route",
                    format!(
                        "entry {i} (`{r}`) is not a sip:/sips: URI written without <> (e.g. sip:fe1.example.com;lr)"
                    ),
                );
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[track_caller]
    fn check(toml_text: &str, expected: Result<(), &str>) {
        let parsed: Result<RegistrarConfig, _> = toml::from_str(toml_text);
        let outcome = match parsed {
            Err(e) => Err(e.message().to_owned()),
            Ok(c) => c.validate().map_err(|e| e.to_string()),
        };
        match (outcome, expected) {
            (Ok(()), Ok(())) => {}
            (Err(got), Err(want)) => assert!(got.contains(want), "{got:?} lacks {want:?}"),
            (got, want) => panic!("{toml_text:?}: got {got:?}, want {want:?}"),
        }
    }

    #[test]
    fn defaults_are_valid_and_documented_example_parses() {
        assert_eq!(RegistrarConfig::default().validate(), Ok(()));
        check("", Ok(()));
        check(
            "min_expires_s = 60\nmax_expires_s = 3600\ndefault_expires_s = 3600\n\
             max_contacts = 10\non_too_many_contacts = \"replace_oldest\"\n\
             service_route = [\"sip:fe1.example.com;lr\"]\nflow_timer_s = 120\n\
             flow_failure_removes = \"all\"\ngruu = false",
            Ok(()),
        );
    }

    #[test]
    fn bad_values_name_the_key() {
        check("min_expire_s = 5", Err("unknown field `min_expire_s`"));
        check("min_expires_s = 0", Err("registrar.min_expires_s"));
        check(
            "min_expires_s = 100\nmax_expires_s = 50\ndefault_expires_s = 50",
            Err("registrar.max_expires_s: 50 is below min_expires_s = 100"),
        );
        check("default_expires_s = 5", Err("registrar.default_expires_s"));
        check("max_contacts = 0", Err("registrar.max_contacts"));
        check("max_contacts = 101", Err("registrar.max_contacts"));
        check("flow_timer_s = 0", Err("registrar.flow_timer_s"));
        check(
            "service_route = [\"<sip:fe1;lr>\"]",
            Err("registrar.service_route: entry 0"),
        );
        check(
            "service_route = [\"tel:+1234\"]",
            Err("registrar.service_route: entry 0"),
        );
        check(
            "on_too_many_contacts = \"drop\"",
            Err("unknown variant `drop`"),
        );
    }
}
