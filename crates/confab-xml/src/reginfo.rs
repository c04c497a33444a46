//! Registration information (RFC 3680 `reg` event package, `application/reginfo+xml`):
//! the bindings of an address-of-record, written by the registration event notifier and
//! read back (tests, clients).

use crate::{Element, Limits, Node, XmlError, opt_u32, required};

/// The media type.
pub const CONTENT_TYPE: &str = "application/reginfo+xml";

/// The namespace (RFC 3680 §5.4).
pub const NAMESPACE: &str = "urn:ietf:params:xml:ns:reginfo";

/// `<registration>` (one address-of-record).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Registration {
    /// `aor`: the address-of-record URI.
    pub aor: String,
    /// `id`: stable per AOR within a subscription.
    pub id: String,
    /// `state`: `init`, `active` or `terminated`.
    pub state: String,
    /// The contacts.
    pub contacts: Vec<Contact>,
}

/// `<contact>` (one binding).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Contact {
    /// `id`: stable per binding.
    pub id: String,
    /// `state`: `active` or `terminated`.
    pub state: String,
    /// `event`: `registered`, `created`, `refreshed`, `shortened`, `expired`,
    /// `deactivated`, `probation`, `unregistered`, `rejected`.
    pub event: String,
    /// `expires` (seconds), for active contacts.
    pub expires: Option<u32>,
    /// `q`, as written (`0.5`).
    pub q: Option<String>,
    /// `callid`.
    pub call_id: Option<String>,
    /// `cseq`.
    pub cseq: Option<u32>,
    /// The contact URI (`<uri>`).
    pub uri: String,
}

/// A `<reginfo>` document.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RegInfo {
    /// `version`, incremented per NOTIFY of one subscription.
    pub version: u32,
    /// `full` or `partial`.
    pub full: bool,
    /// The registrations.
    pub registrations: Vec<Registration>,
}

impl RegInfo {
    /// Reads a document.
    ///
    /// # Errors
    /// [`XmlError`] naming the element and line.
    pub fn parse(body: &[u8], limits: &Limits) -> Result<RegInfo, XmlError> {
        let e = crate::root(body, limits, NAMESPACE, "reginfo", "reginfo")?;
        let version = opt_u32(&e, "version")?
            .ok_or_else(|| XmlError::invalid(&e, "version", "", "an unsigned integer"))?;
        let full = match required(&e, "state")? {
            "full" => true,
            "partial" => false,
            v => return Err(XmlError::invalid(&e, "state", v, "full or partial")),
        };
        let mut registrations = Vec::new();
        for r in e.elements().filter(|c| c.is(NAMESPACE, "registration")) {
            let mut reg = Registration {
                aor: required(r, "aor")?.to_owned(),
                id: required(r, "id")?.to_owned(),
                state: required(r, "state")?.to_owned(),
                contacts: Vec::new(),
            };
            for c in r.elements().filter(|c| c.is(NAMESPACE, "contact")) {
                let uri = c
                    .child(NAMESPACE, "uri")
                    .map(|u| u.text().trim().to_owned())
                    .ok_or(XmlError::MissingElement {
                        parent: "contact".to_owned(),
                        child: "uri",
                        line: c.line,
                    })?;
                reg.contacts.push(Contact {
                    id: required(c, "id")?.to_owned(),
                    state: required(c, "state")?.to_owned(),
                    event: required(c, "event")?.to_owned(),
                    expires: opt_u32(c, "expires")?,
                    q: c.attr("q").map(str::to_owned),
                    call_id: c.attr("callid").map(str::to_owned),
                    cseq: opt_u32(c, "cseq")?,
                    uri,
                });
            }
            registrations.push(reg);
        }
        Ok(RegInfo {
            version,
            full,
            registrations,
        })
    }

    /// The document as an element tree.
    pub fn to_element(&self) -> Element {
        let mut e = Element::new(NAMESPACE, "reginfo")
            .with_attr("version", self.version.to_string())
            .with_attr("state", if self.full { "full" } else { "partial" });
        for r in &self.registrations {
            let mut re = Element::new(NAMESPACE, "registration")
                .with_attr("aor", r.aor.clone())
                .with_attr("id", r.id.clone())
                .with_attr("state", r.state.clone());
            for c in &r.contacts {
                let mut ce = Element::new(NAMESPACE, "contact")
                    .with_attr("id", c.id.clone())
                    .with_attr("state", c.state.clone())
                    .with_attr("event", c.event.clone());
                if let Some(x) = c.expires {
                    ce.set_attr("expires", x.to_string());
                }
                if let Some(q) = &c.q {
                    ce.set_attr("q", q.clone());
                }
                if let Some(id) = &c.call_id {
                    ce.set_attr("callid", id.clone());
                }
                if let Some(n) = c.cseq {
                    ce.set_attr("cseq", n.to_string());
                }
                ce.children.push(Node::Element(
                    Element::new(NAMESPACE, "uri").with_text(c.uri.clone()),
                ));
                re.children.push(Node::Element(ce));
            }
            e.children.push(Node::Element(re));
        }
        e
    }

    /// The document as bytes (UTF-8, with the XML declaration).
    pub fn to_bytes(&self) -> Vec<u8> {
        self.to_element().to_document()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn written_document_reads_back() {
        let doc = RegInfo {
            version: 3,
            full: true,
            registrations: vec![Registration {
                aor: "sip:alice@example.com".into(),
                id: "a7".into(),
                state: "active".into(),
                contacts: vec![Contact {
                    id: "76".into(),
                    state: "active".into(),
                    event: "registered".into(),
                    expires: Some(3600),
                    q: Some("0.5".into()),
                    call_id: Some("x@y".into()),
                    cseq: Some(9),
                    uri: "sip:alice@192.0.2.1:5060;transport=tcp".into(),
                }],
            }],
        };
        let bytes = doc.to_bytes();
        let text = String::from_utf8(bytes.clone()).unwrap();
        assert!(text.contains("urn:ietf:params:xml:ns:reginfo"), "{text}");
        assert_eq!(RegInfo::parse(&bytes, &Limits::DOCUMENT).unwrap(), doc);
    }

    #[test]
    fn rfc3680_example_parses() {
        // RFC 3680 §6 example (the first NOTIFY body).
        let body = br#"<?xml version="1.0"?>
     <reginfo xmlns="urn:ietf:params:xml:ns:reginfo"
                  version="0" state="full">
       <registration aor="sip:user@example.com" id="as9"
                     state="active">
         <contact id="76" state="active" event="registered"
                  duration-registered="7322"
                  q="0.8">
                  <uri>sip:user@pc887.example.com</uri>
         </contact>
         <contact id="77" state="terminated" event="expired"
                  duration-registered="3600"
                  q="0.5">
                  <uri>sip:user@university.edu</uri>
         </contact>
       </registration>
     </reginfo>"#;
        let r = RegInfo::parse(body, &Limits::DOCUMENT).unwrap();
        assert_eq!(r.registrations[0].contacts.len(), 2);
        assert_eq!(r.registrations[0].contacts[1].event, "expired");
        assert_eq!(
            r.registrations[0].contacts[0].uri,
            "sip:user@pc887.example.com"
        );
    }

    #[test]
    fn missing_uri_is_named() {
        let body = br#"<reginfo xmlns="urn:ietf:params:xml:ns:reginfo" version="0" state="full"><registration aor="a" id="1" state="init"><contact id="1" state="active" event="created"/></registration></reginfo>"#;
        let e = RegInfo::parse(body, &Limits::DOCUMENT).unwrap_err();
        assert!(e.to_string().contains("uri"), "{e}");
    }
}
