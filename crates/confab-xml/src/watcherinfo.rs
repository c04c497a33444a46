//! Watcher information (RFC 3857 event package, RFC 3858 format,
//! `application/watcherinfo+xml`): who watches a resource and in which state.

use crate::{Element, Limits, Node, XmlError, ns, opt_u32, required};

/// The media type.
pub const CONTENT_TYPE: &str = "application/watcherinfo+xml";

macro_rules! str_enum {
    ($(#[$m:meta])* $name:ident, $expected:literal { $($variant:ident = $text:literal),+ $(,)? }) => {
        $(#[$m])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
        pub enum $name {
            $(
                #[doc = concat!("`", $text, "`")]
                $variant,
            )+
        }
        impl $name {
            /// Every value.
            pub const ALL: &'static [$name] = &[$($name::$variant),+];
            /// The token.
            pub const fn as_str(self) -> &'static str {
                match self { $($name::$variant => $text),+ }
            }
            fn read(e: &Element, attr: &'static str) -> Result<$name, XmlError> {
                let v = required(e, attr)?;
                match v { $($text => Ok($name::$variant),)+ _ => Err(XmlError::invalid(e, attr, v, $expected)) }
            }
        }
    };
}

str_enum!(
    /// `state` of the document (RFC 3858 §4.1).
    State, "full or partial" { Full = "full", Partial = "partial" }
);
str_enum!(
    /// `status` of a watcher (RFC 3857 §5.2.1 subscription states).
    WatcherStatus, "pending, active, waiting or terminated" {
        Pending = "pending",
        Active = "active",
        Waiting = "waiting",
        Terminated = "terminated",
    }
);
str_enum!(
    /// `event`: what moved the watcher into its status (RFC 3857 §5.2.2).
    WatcherEvent, "subscribe, approved, deactivated, probation, rejected, timeout, giveup or noresource" {
        Subscribe = "subscribe",
        Approved = "approved",
        Deactivated = "deactivated",
        Probation = "probation",
        Rejected = "rejected",
        Timeout = "timeout",
        Giveup = "giveup",
        Noresource = "noresource",
    }
);

/// One `<watcher>`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Watcher {
    /// `id`: stable identifier of this subscription.
    pub id: String,
    /// `status`.
    pub status: WatcherStatus,
    /// `event`.
    pub event: WatcherEvent,
    /// The watcher's URI (element text).
    pub uri: String,
    /// `display-name`.
    pub display_name: Option<String>,
    /// `expiration` in seconds.
    pub expiration: Option<u32>,
    /// `duration-subscribed` in seconds.
    pub duration_subscribed: Option<u32>,
    /// `xml:lang` of the display name.
    pub lang: Option<String>,
}

/// `<watcher-list>`: the watchers of one resource for one package.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WatcherList {
    /// `resource`: the watched URI.
    pub resource: String,
    /// `package`: the event package (`presence`).
    pub package: String,
    /// The watchers.
    pub watchers: Vec<Watcher>,
}

/// A `<watcherinfo>` document.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WatcherInfo {
    /// `version`, incremented per NOTIFY of one subscription.
    pub version: u32,
    /// `state`.
    pub state: State,
    /// The lists.
    pub lists: Vec<WatcherList>,
}

impl WatcherInfo {
    /// Reads a watcherinfo body.
    pub fn parse(body: &[u8], limits: &Limits) -> Result<WatcherInfo, XmlError> {
        let e = crate::root(
            body,
            limits,
            ns::WATCHERINFO,
            "watcherinfo",
            "{urn:ietf:params:xml:ns:watcherinfo}watcherinfo",
        )?;
        WatcherInfo::from_element(&e)
    }

    /// Reads a `<watcherinfo>` element.
    pub fn from_element(e: &Element) -> Result<WatcherInfo, XmlError> {
        let version = opt_u32(e, "version")?.ok_or_else(|| XmlError::MissingAttribute {
            element: e.name.clone(),
            attribute: "version",
            line: e.line,
        })?;
        let mut w = WatcherInfo {
            version,
            state: State::read(e, "state")?,
            lists: Vec::new(),
        };
        for l in e
            .elements()
            .filter(|c| c.is(ns::WATCHERINFO, "watcher-list"))
        {
            let mut list = WatcherList {
                resource: required(l, "resource")?.to_owned(),
                package: required(l, "package")?.to_owned(),
                watchers: Vec::new(),
            };
            for x in l.elements().filter(|c| c.is(ns::WATCHERINFO, "watcher")) {
                list.watchers.push(Watcher {
                    id: required(x, "id")?.to_owned(),
                    status: WatcherStatus::read(x, "status")?,
                    event: WatcherEvent::read(x, "event")?,
                    uri: x.text().trim().to_owned(),
                    display_name: x.attr("display-name").map(str::to_owned),
                    expiration: opt_u32(x, "expiration")?,
                    duration_subscribed: opt_u32(x, "duration-subscribed")?,
                    lang: x.attr_ns(ns::XML, "lang").map(str::to_owned),
                });
            }
            w.lists.push(list);
        }
        Ok(w)
    }

    /// Builds the `<watcherinfo>` element.
    pub fn to_element(&self) -> Element {
        let mut e = Element::new(ns::WATCHERINFO, "watcherinfo")
            .with_attr("version", self.version.to_string())
            .with_attr("state", self.state.as_str());
        for l in &self.lists {
            let mut le = Element::new(ns::WATCHERINFO, "watcher-list")
                .with_attr("resource", l.resource.clone())
                .with_attr("package", l.package.clone());
            for w in &l.watchers {
                let mut we = Element::new(ns::WATCHERINFO, "watcher");
                if let Some(d) = &w.display_name {
                    we.set_attr("display-name", d.clone());
                }
                we.set_attr("status", w.status.as_str());
                we.set_attr("event", w.event.as_str());
                if let Some(x) = w.expiration {
                    we.set_attr("expiration", x.to_string());
                }
                we.set_attr("id", w.id.clone());
                if let Some(x) = w.duration_subscribed {
                    we.set_attr("duration-subscribed", x.to_string());
                }
                if let Some(l) = &w.lang {
                    we.set_attr_ns(ns::XML, "lang", l.clone());
                }
                le.children.push(Node::Element(we.with_text(w.uri.clone())));
            }
            e.children.push(Node::Element(le));
        }
        e
    }

    /// Writes the document.
    pub fn to_bytes(&self) -> Vec<u8> {
        self.to_element().to_document()
    }
}
