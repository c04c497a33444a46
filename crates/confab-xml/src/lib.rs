//! XML bodies of SIP presence, sans-IO: read and write
//!
//! - PIDF (RFC 3863) with the data model (RFC 4479: person, device, tuple/service with
//!   `contact`, `timestamp`, `deviceID`) and RPID (RFC 4480: activities, mood, place-type,
//!   user-input) — [`pidf`];
//! - watcher information (RFC 3857/3858) — [`watcherinfo`];
//! - dialog information (RFC 4235 `dialog` package, busy lamps) — [`dialog_info`];
//! - RLMI (RFC 4662) and the `multipart/related` bodies of resource-list NOTIFYs —
//!   [`rlmi`], [`multipart`];
//! - resource-lists documents (RFC 4826) — [`resource_lists`];
//! - partial PIDF (RFC 5262 `pidf-diff`, used by RFC 5263 partial notification and RFC 5264
//!   partial publication), with the RFC 5261 patch operations applied to a document and a
//!   patch computed from two documents — [`pidf_diff`].
//!
//! Every reader takes [`Limits`] (bytes, depth, element and attribute counts), checked
//! before anything large is built, and returns an [`XmlError`] naming the element and line,
//! which maps to a SIP `400` (or `413` for size, [`XmlError::status_code`]). Elements this
//! crate has no type for (vendor namespaces, caps, cipid, the rarer RPID elements) are kept
//! as [`Element`] trees and written back, so a server can pass them through.
//!
//! What it does not do: I/O, clocks, randomness (a multipart boundary comes from the
//! caller), DTDs (a `<!DOCTYPE>` is refused), encodings other than UTF-8, XML Schema
//! validation beyond the rules each type states, XCAP (RFC 4825), and the full XPath of
//! RFC 5261 (the selector subset is documented in [`pidf_diff`]).

pub mod dialog_info;
mod error;
pub mod multipart;
pub mod pidf;
pub mod pidf_diff;
pub mod reginfo;
pub mod resource_lists;
pub mod rlmi;
pub mod rpid;
mod time;
mod tree;
pub mod watcherinfo;

pub use error::XmlError;
pub use time::{DateTime, DateTimeError};
pub use tree::{Attribute, Element, Limits, Node};

/// Namespace URIs.
pub mod ns {
    /// PIDF (RFC 3863).
    pub const PIDF: &str = "urn:ietf:params:xml:ns:pidf";
    /// RPID (RFC 4480).
    pub const RPID: &str = "urn:ietf:params:xml:ns:pidf:rpid";
    /// Presence data model (RFC 4479).
    pub const DATA_MODEL: &str = "urn:ietf:params:xml:ns:pidf:data-model";
    /// Service capabilities (RFC 5196); kept as extension elements.
    pub const CAPS: &str = "urn:ietf:params:xml:ns:pidf:caps";
    /// Contact information (RFC 4482); kept as extension elements.
    pub const CIPID: &str = "urn:ietf:params:xml:ns:pidf:cipid";
    /// Location types (RFC 4589), used by RPID `place-type`.
    pub const LOCATION_TYPE: &str = "urn:ietf:params:xml:ns:location-type";
    /// Partial PIDF (RFC 5262).
    pub const PIDF_DIFF: &str = "urn:ietf:params:xml:ns:pidf-diff";
    /// RLMI (RFC 4662).
    pub const RLMI: &str = "urn:ietf:params:xml:ns:rlmi";
    /// Watcher information (RFC 3858).
    pub const WATCHERINFO: &str = "urn:ietf:params:xml:ns:watcherinfo";
    /// Dialog information (RFC 4235).
    pub const DIALOG_INFO: &str = "urn:ietf:params:xml:ns:dialog-info";
    /// Resource lists (RFC 4826).
    pub const RESOURCE_LISTS: &str = "urn:ietf:params:xml:ns:resource-lists";
    /// The `xml:` namespace (`xml:lang`).
    pub const XML: &str = "http://www.w3.org/XML/1998/namespace";
}

/// A text with an optional `xml:lang`: PIDF/RPID/data-model `note`, RLMI `name`,
/// resource-lists `display-name`.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Text {
    /// `xml:lang`, if given.
    pub lang: Option<String>,
    /// The text as written.
    pub text: String,
}

impl Text {
    /// A text without language.
    pub fn new(text: impl Into<String>) -> Text {
        Text {
            lang: None,
            text: text.into(),
        }
    }

    pub(crate) fn from_element(e: &Element) -> Text {
        Text {
            lang: e.attr_ns(ns::XML, "lang").map(str::to_owned),
            text: e.text().into_owned(),
        }
    }

    pub(crate) fn to_element(&self, namespace: &str, name: &str) -> Element {
        let mut e = Element::new(namespace, name);
        if let Some(l) = &self.lang {
            e.set_attr_ns(ns::XML, "lang", l.clone());
        }
        e.with_text(self.text.clone())
    }
}

/// Parses a root element and checks its name.
pub(crate) fn root(
    body: &[u8],
    limits: &Limits,
    namespace: &str,
    name: &str,
    expected: &'static str,
) -> Result<Element, XmlError> {
    let e = Element::parse(body, limits)?;
    if !e.is(namespace, name) {
        return Err(XmlError::WrongRoot {
            expected,
            found: e.expanded_name(),
        });
    }
    Ok(e)
}

/// A required attribute.
pub(crate) fn required<'a>(e: &'a Element, name: &'static str) -> Result<&'a str, XmlError> {
    e.attr(name).ok_or_else(|| XmlError::MissingAttribute {
        element: e.name.clone(),
        attribute: name,
        line: e.line,
    })
}

/// An optional unsigned attribute.
pub(crate) fn opt_u32(e: &Element, name: &'static str) -> Result<Option<u32>, XmlError> {
    match e.attr(name) {
        None => Ok(None),
        Some(v) => v
            .trim()
            .parse()
            .map(Some)
            .map_err(|_| XmlError::invalid(e, name, v, "an unsigned integer")),
    }
}
