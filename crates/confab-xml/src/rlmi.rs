//! Resource List Meta-Information (RFC 4662 §5, `application/rlmi+xml`): the root part of
//! a resource-list NOTIFY, naming each resource of the list and the body part (`cid`) that
//! carries its state.

use crate::{Element, Limits, Node, Text, XmlError, ns, opt_u32, required};

/// The media type.
pub const CONTENT_TYPE: &str = "application/rlmi+xml";

/// `state` of an instance (RFC 4662 §5.2).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum InstanceState {
    /// `active`.
    Active,
    /// `pending`.
    Pending,
    /// `terminated`.
    Terminated,
}

impl InstanceState {
    /// The token.
    pub const fn as_str(self) -> &'static str {
        match self {
            InstanceState::Active => "active",
            InstanceState::Pending => "pending",
            InstanceState::Terminated => "terminated",
        }
    }
}

/// `<instance>`: one back-end subscription of a resource.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Instance {
    /// `id`.
    pub id: String,
    /// `state`.
    pub state: InstanceState,
    /// `reason` (with `terminated`; the RFC 6665 reason codes).
    pub reason: Option<String>,
    /// `cid`: the Content-ID (without `<>`) of the body part with the state.
    pub cid: Option<String>,
}

/// `<resource>`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Resource {
    /// `uri`.
    pub uri: String,
    /// `<name>`s.
    pub names: Vec<Text>,
    /// `<instance>`s.
    pub instances: Vec<Instance>,
}

/// An RLMI `<list>` document.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct List {
    /// `uri`: the list URI.
    pub uri: String,
    /// `version`, incremented per NOTIFY of one subscription.
    pub version: u32,
    /// `fullState`.
    pub full_state: bool,
    /// `cid` of a nested list (RFC 4662 §5.2).
    pub cid: Option<String>,
    /// `<name>`s.
    pub names: Vec<Text>,
    /// `<resource>`s.
    pub resources: Vec<Resource>,
}

impl List {
    /// Reads an RLMI body.
    pub fn parse(body: &[u8], limits: &Limits) -> Result<List, XmlError> {
        let e = crate::root(
            body,
            limits,
            ns::RLMI,
            "list",
            "{urn:ietf:params:xml:ns:rlmi}list",
        )?;
        List::from_element(&e)
    }

    /// Reads a `<list>` element.
    pub fn from_element(e: &Element) -> Result<List, XmlError> {
        let version = opt_u32(e, "version")?.ok_or_else(|| XmlError::MissingAttribute {
            element: e.name.clone(),
            attribute: "version",
            line: e.line,
        })?;
        let full = required(e, "fullState")?;
        let full_state = match full {
            "true" | "1" => true,
            "false" | "0" => false,
            v => return Err(XmlError::invalid(e, "fullState", v, "true or false")),
        };
        let mut list = List {
            uri: required(e, "uri")?.to_owned(),
            version,
            full_state,
            cid: e.attr("cid").map(str::to_owned),
            names: Vec::new(),
            resources: Vec::new(),
        };
        for c in e.elements() {
            match (c.namespace.as_str(), c.name.as_str()) {
                (ns::RLMI, "name") => list.names.push(Text::from_element(c)),
                (ns::RLMI, "resource") => {
                    let mut r = Resource {
                        uri: required(c, "uri")?.to_owned(),
                        names: Vec::new(),
                        instances: Vec::new(),
                    };
                    for x in c.elements() {
                        match (x.namespace.as_str(), x.name.as_str()) {
                            (ns::RLMI, "name") => r.names.push(Text::from_element(x)),
                            (ns::RLMI, "instance") => {
                                let state = match required(x, "state")? {
                                    "active" => InstanceState::Active,
                                    "pending" => InstanceState::Pending,
                                    "terminated" => InstanceState::Terminated,
                                    v => {
                                        return Err(XmlError::invalid(
                                            x,
                                            "state",
                                            v,
                                            "active, pending or terminated",
                                        ));
                                    }
                                };
                                r.instances.push(Instance {
                                    id: required(x, "id")?.to_owned(),
                                    state,
                                    reason: x.attr("reason").map(str::to_owned),
                                    cid: x.attr("cid").map(str::to_owned),
                                });
                            }
                            _ => {}
                        }
                    }
                    list.resources.push(r);
                }
                _ => {}
            }
        }
        Ok(list)
    }

    /// Builds the `<list>` element.
    pub fn to_element(&self) -> Element {
        let mut e = Element::new(ns::RLMI, "list")
            .with_attr("uri", self.uri.clone())
            .with_attr("version", self.version.to_string())
            .with_attr("fullState", if self.full_state { "true" } else { "false" });
        if let Some(c) = &self.cid {
            e.set_attr("cid", c.clone());
        }
        for n in &self.names {
            e.children
                .push(Node::Element(n.to_element(ns::RLMI, "name")));
        }
        for r in &self.resources {
            let mut re = Element::new(ns::RLMI, "resource").with_attr("uri", r.uri.clone());
            for n in &r.names {
                re = re.with_child(n.to_element(ns::RLMI, "name"));
            }
            for i in &r.instances {
                let mut ie = Element::new(ns::RLMI, "instance")
                    .with_attr("id", i.id.clone())
                    .with_attr("state", i.state.as_str());
                if let Some(x) = &i.reason {
                    ie.set_attr("reason", x.clone());
                }
                if let Some(x) = &i.cid {
                    ie.set_attr("cid", x.clone());
                }
                re = re.with_child(ie);
            }
            e.children.push(Node::Element(re));
        }
        e
    }

    /// Writes the document.
    pub fn to_bytes(&self) -> Vec<u8> {
        self.to_element().to_document()
    }
}
