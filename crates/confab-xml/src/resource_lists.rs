//! Resource lists (RFC 4826 §3, `application/resource-lists+xml`): named, nestable lists
//! of entries, the format of a user's contact list and of a list URI's members.

use crate::{Element, Limits, Node, Text, XmlError, ns, required};

/// The media type.
pub const CONTENT_TYPE: &str = "application/resource-lists+xml";

/// One item of a list, in document order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Item {
    /// A nested `<list>`.
    List(List),
    /// `<external anchor=".."/>`: a list held elsewhere (an HTTP URI).
    External {
        /// `anchor`.
        anchor: String,
        /// `<display-name>`.
        display_name: Option<Text>,
    },
    /// `<entry uri=".."/>`.
    Entry(Entry),
    /// `<entry-ref ref=".."/>`: a reference to an entry elsewhere in the XCAP tree.
    EntryRef {
        /// `ref`.
        reference: String,
        /// `<display-name>`.
        display_name: Option<Text>,
    },
}

/// An `<entry>`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    /// `uri`.
    pub uri: String,
    /// `<display-name>`.
    pub display_name: Option<Text>,
    /// Other child elements, kept as written.
    pub extensions: Vec<Element>,
}

/// A `<list>`.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct List {
    /// `name`.
    pub name: Option<String>,
    /// `<display-name>`.
    pub display_name: Option<Text>,
    /// The items.
    pub items: Vec<Item>,
}

impl List {
    /// Every entry URI in this list and its nested lists, depth first (externals and
    /// entry-refs are not followed: they need XCAP).
    pub fn entry_uris(&self) -> Vec<&str> {
        let mut out = Vec::new();
        fn walk<'a>(l: &'a List, out: &mut Vec<&'a str>) {
            for i in &l.items {
                match i {
                    Item::Entry(e) => out.push(&e.uri),
                    Item::List(sub) => walk(sub, out),
                    _ => {}
                }
            }
        }
        walk(self, &mut out);
        out
    }
}

/// A `<resource-lists>` document.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ResourceLists {
    /// The top-level lists.
    pub lists: Vec<List>,
}

impl ResourceLists {
    /// Reads a resource-lists body.
    pub fn parse(body: &[u8], limits: &Limits) -> Result<ResourceLists, XmlError> {
        let e = crate::root(
            body,
            limits,
            ns::RESOURCE_LISTS,
            "resource-lists",
            "{urn:ietf:params:xml:ns:resource-lists}resource-lists",
        )?;
        ResourceLists::from_element(&e)
    }

    /// Reads a `<resource-lists>` element.
    pub fn from_element(e: &Element) -> Result<ResourceLists, XmlError> {
        let mut r = ResourceLists::default();
        for c in e.elements().filter(|c| c.is(ns::RESOURCE_LISTS, "list")) {
            r.lists.push(read_list(c)?);
        }
        Ok(r)
    }

    /// Builds the `<resource-lists>` element.
    pub fn to_element(&self) -> Element {
        let mut e = Element::new(ns::RESOURCE_LISTS, "resource-lists");
        for l in &self.lists {
            e.children.push(Node::Element(write_list(l)));
        }
        e
    }

    /// Writes the document.
    pub fn to_bytes(&self) -> Vec<u8> {
        self.to_element().to_document()
    }
}

fn display_name(e: &Element) -> Option<Text> {
    e.child(ns::RESOURCE_LISTS, "display-name")
        .map(Text::from_element)
}

fn read_list(e: &Element) -> Result<List, XmlError> {
    let mut l = List {
        name: e.attr("name").map(str::to_owned),
        display_name: display_name(e),
        items: Vec::new(),
    };
    for c in e.elements() {
        match (c.namespace.as_str(), c.name.as_str()) {
            (ns::RESOURCE_LISTS, "list") => l.items.push(Item::List(read_list(c)?)),
            (ns::RESOURCE_LISTS, "external") => l.items.push(Item::External {
                anchor: required(c, "anchor")?.to_owned(),
                display_name: display_name(c),
            }),
            (ns::RESOURCE_LISTS, "entry") => l.items.push(Item::Entry(Entry {
                uri: required(c, "uri")?.to_owned(),
                display_name: display_name(c),
                extensions: c
                    .elements()
                    .filter(|x| !x.is(ns::RESOURCE_LISTS, "display-name"))
                    .cloned()
                    .collect(),
            })),
            (ns::RESOURCE_LISTS, "entry-ref") => l.items.push(Item::EntryRef {
                reference: required(c, "ref")?.to_owned(),
                display_name: display_name(c),
            }),
            _ => {}
        }
    }
    Ok(l)
}

fn with_display_name(mut e: Element, d: &Option<Text>) -> Element {
    if let Some(d) = d {
        e = e.with_child(d.to_element(ns::RESOURCE_LISTS, "display-name"));
    }
    e
}

fn write_list(l: &List) -> Element {
    let mut e = Element::new(ns::RESOURCE_LISTS, "list");
    if let Some(n) = &l.name {
        e.set_attr("name", n.clone());
    }
    e = with_display_name(e, &l.display_name);
    for i in &l.items {
        let c = match i {
            Item::List(sub) => write_list(sub),
            Item::External {
                anchor,
                display_name,
            } => with_display_name(
                Element::new(ns::RESOURCE_LISTS, "external").with_attr("anchor", anchor.clone()),
                display_name,
            ),
            Item::Entry(en) => {
                let mut x = with_display_name(
                    Element::new(ns::RESOURCE_LISTS, "entry").with_attr("uri", en.uri.clone()),
                    &en.display_name,
                );
                for ext in &en.extensions {
                    x = x.with_child(ext.clone());
                }
                x
            }
            Item::EntryRef {
                reference,
                display_name,
            } => with_display_name(
                Element::new(ns::RESOURCE_LISTS, "entry-ref").with_attr("ref", reference.clone()),
                display_name,
            ),
        };
        e.children.push(Node::Element(c));
    }
    e
}
