//! A small namespace-resolved element tree: what every typed document here is read from
//! and written through, and how unknown extension elements are kept.
//!
//! Reading uses quick-xml's [`NsReader`] and resolves every name to
//! `(namespace URI, local name)`; prefixes are kept only as hints for writing. Writing
//! declares every namespace once on the root (the root's namespace as the default one).
//!
//! Whitespace-only text between elements is dropped (these formats are data, not prose);
//! other text is kept as written, after entity and character references are resolved.

use std::borrow::Cow;

use quick_xml::NsReader;
use quick_xml::escape::resolve_predefined_entity;
use quick_xml::events::{BytesDecl, BytesStart, BytesText, Event};
use quick_xml::name::ResolveResult;
use quick_xml::writer::Writer;

use crate::{XmlError, ns};

/// Size limits checked while reading, before anything large is built.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Largest body in bytes (larger ones are [`XmlError::TooLarge`], a SIP `413`).
    pub max_bytes: usize,
    /// Deepest element nesting (the root is depth 1).
    pub max_depth: usize,
    /// Most elements in one document.
    pub max_elements: usize,
    /// Most attributes on one element.
    pub max_attributes: usize,
}

impl Limits {
    /// Limits for one presence document (a PUBLISH or NOTIFY body): 64 KiB, depth 24,
    /// 2,000 elements, 32 attributes per element. Real PIDF documents are a few KiB.
    pub const DOCUMENT: Limits = Limits {
        max_bytes: 64 * 1024,
        max_depth: 24,
        max_elements: 2_000,
        max_attributes: 32,
    };

    /// Limits for documents that grow with a list (RLMI, resource-lists, watcherinfo):
    /// 1 MiB, depth 32, 50,000 elements.
    pub const LIST: Limits = Limits {
        max_bytes: 1024 * 1024,
        max_depth: 32,
        max_elements: 50_000,
        max_attributes: 32,
    };
}

impl Default for Limits {
    fn default() -> Limits {
        Limits::DOCUMENT
    }
}

/// An attribute, namespace-resolved. Namespace declarations (`xmlns`, `xmlns:p`) are not
/// attributes here; the writer makes its own.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Attribute {
    /// Namespace URI; empty for an unprefixed attribute (the usual case).
    pub namespace: String,
    /// Local name.
    pub name: String,
    /// Value with references resolved.
    pub value: String,
}

/// A child of an element.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Node {
    /// A child element.
    Element(Element),
    /// Text (never whitespace-only).
    Text(String),
}

/// An element with its namespace resolved.
///
/// Equality compares namespace, local name, attributes (in order) and children; it ignores
/// the prefix hint, the line and the namespace declarations, which are presentation.
#[derive(Debug, Clone)]
pub struct Element {
    /// Namespace URI; empty when the element is in no namespace.
    pub namespace: String,
    /// Local name.
    pub name: String,
    /// The prefix it was read with (`None` for the default namespace): a hint for writing.
    pub prefix: Option<String>,
    /// Attributes in document order.
    pub attributes: Vec<Attribute>,
    /// Children in document order.
    pub children: Vec<Node>,
    /// 1-based line of the start tag in the document it was read from; 0 when built.
    pub line: u32,
    /// Namespace declarations written on this element, as `(prefix, uri)` with `""` for the
    /// default namespace. Kept because RFC 5261 selectors use the prefixes of the patch
    /// document.
    pub declarations: Vec<(String, String)>,
}

impl PartialEq for Element {
    fn eq(&self, other: &Element) -> bool {
        self.namespace == other.namespace
            && self.name == other.name
            && self.attributes == other.attributes
            && self.children == other.children
    }
}
impl Eq for Element {}

impl Element {
    /// A new element with no attributes or children.
    pub fn new(namespace: &str, name: &str) -> Element {
        Element {
            namespace: namespace.to_owned(),
            name: name.to_owned(),
            prefix: None,
            attributes: Vec::new(),
            children: Vec::new(),
            line: 0,
            declarations: Vec::new(),
        }
    }

    /// Whether this element is `{namespace}name`.
    pub fn is(&self, namespace: &str, name: &str) -> bool {
        self.name == name && self.namespace == namespace
    }

    /// `{namespace}name` for messages.
    pub fn expanded_name(&self) -> String {
        if self.namespace.is_empty() {
            self.name.clone()
        } else {
            format!("{{{}}}{}", self.namespace, self.name)
        }
    }

    /// Value of the unprefixed attribute `name`.
    pub fn attr(&self, name: &str) -> Option<&str> {
        self.attr_ns("", name)
    }

    /// Value of the attribute `{namespace}name`.
    pub fn attr_ns(&self, namespace: &str, name: &str) -> Option<&str> {
        self.attributes
            .iter()
            .find(|a| a.name == name && a.namespace == namespace)
            .map(|a| a.value.as_str())
    }

    /// Sets (or replaces) the unprefixed attribute `name`.
    pub fn set_attr(&mut self, name: &str, value: impl Into<String>) {
        self.set_attr_ns("", name, value);
    }

    /// Sets (or replaces) the attribute `{namespace}name`.
    pub fn set_attr_ns(&mut self, namespace: &str, name: &str, value: impl Into<String>) {
        let value = value.into();
        match self
            .attributes
            .iter_mut()
            .find(|a| a.name == name && a.namespace == namespace)
        {
            Some(a) => a.value = value,
            None => self.attributes.push(Attribute {
                namespace: namespace.to_owned(),
                name: name.to_owned(),
                value,
            }),
        }
    }

    /// Builder form of [`set_attr`](Self::set_attr).
    pub fn with_attr(mut self, name: &str, value: impl Into<String>) -> Element {
        self.set_attr(name, value);
        self
    }

    /// Builder form: appends a child element.
    pub fn with_child(mut self, child: Element) -> Element {
        self.children.push(Node::Element(child));
        self
    }

    /// Builder form: appends text (nothing for an empty string).
    pub fn with_text(mut self, text: impl Into<String>) -> Element {
        let text = text.into();
        if !text.is_empty() {
            self.children.push(Node::Text(text));
        }
        self
    }

    /// Child elements in order.
    pub fn elements(&self) -> impl Iterator<Item = &Element> {
        self.children.iter().filter_map(|n| match n {
            Node::Element(e) => Some(e),
            Node::Text(_) => None,
        })
    }

    /// The first child element `{namespace}name`.
    pub fn child(&self, namespace: &str, name: &str) -> Option<&Element> {
        self.elements().find(|e| e.is(namespace, name))
    }

    /// All text children joined (no descendants).
    pub fn text(&self) -> Cow<'_, str> {
        let mut texts = self.children.iter().filter_map(|n| match n {
            Node::Text(t) => Some(t.as_str()),
            Node::Element(_) => None,
        });
        match (texts.next(), texts.next()) {
            (None, _) => Cow::Borrowed(""),
            (Some(a), None) => Cow::Borrowed(a),
            (Some(a), Some(b)) => {
                let mut s = format!("{a}{b}");
                texts.for_each(|t| s.push_str(t));
                Cow::Owned(s)
            }
        }
    }

    /// Number of elements in this subtree, itself included.
    pub fn count_elements(&self) -> usize {
        1 + self.elements().map(Element::count_elements).sum::<usize>()
    }

    /// Reads a document with `limits`. The root element is returned; the XML declaration,
    /// comments and processing instructions are dropped.
    pub fn parse(body: &[u8], limits: &Limits) -> Result<Element, XmlError> {
        parse(body, limits)
    }

    /// Writes this element as a whole document: an XML declaration, then the element with
    /// every namespace it uses declared on it.
    pub fn to_document(&self) -> Vec<u8> {
        write_document(self)
    }
}

/// Counts lines incrementally over monotonic byte positions.
struct LineCounter<'a> {
    text: &'a [u8],
    pos: usize,
    line: u32,
}

impl LineCounter<'_> {
    fn line_at(&mut self, pos: usize) -> u32 {
        let pos = pos.min(self.text.len());
        if pos < self.pos {
            // Error positions may point back into the last event: count from the start.
            return 1 + u32::try_from(memchr::memchr_iter(b'\n', &self.text[..pos]).count())
                .unwrap_or(u32::MAX);
        }
        let n = memchr::memchr_iter(b'\n', &self.text[self.pos..pos]).count();
        self.line = self
            .line
            .saturating_add(u32::try_from(n).unwrap_or(u32::MAX));
        self.pos = pos;
        self.line
    }
}

struct Open {
    element: Element,
    text: String,
}

impl Open {
    fn flush_text(&mut self) {
        if !self.text.is_empty() {
            let t = std::mem::take(&mut self.text);
            if !t.bytes().all(|b| matches!(b, b' ' | b'\t' | b'\r' | b'\n')) {
                self.element.children.push(Node::Text(t));
            }
        }
    }
}

fn parse(body: &[u8], limits: &Limits) -> Result<Element, XmlError> {
    if body.len() > limits.max_bytes {
        return Err(XmlError::TooLarge {
            len: body.len(),
            max: limits.max_bytes,
        });
    }
    let text = match std::str::from_utf8(body) {
        Ok(t) => t,
        Err(e) => {
            let line = 1 + memchr::memchr_iter(b'\n', &body[..e.valid_up_to()]).count();
            return Err(XmlError::NotUtf8 {
                line: u32::try_from(line).unwrap_or(u32::MAX),
            });
        }
    };
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
    let mut lines = LineCounter {
        text: text.as_bytes(),
        pos: 0,
        line: 1,
    };
    let mut reader = NsReader::from_str(text);
    let config = reader.config_mut();
    config.check_end_names = true;
    config.expand_empty_elements = false;
    config.trim_text(false);

    let mut stack: Vec<Open> = Vec::new();
    let mut root: Option<Element> = None;
    let mut elements = 0usize;

    loop {
        let start_pos = usize::try_from(reader.buffer_position()).unwrap_or(usize::MAX);
        let (ns, event) = match reader.read_resolved_event() {
            Ok((ns, ev)) => {
                let ns = match ns {
                    ResolveResult::Bound(n) => Ok(n.0.to_owned()),
                    ResolveResult::Unbound => Ok(String::new()),
                    ResolveResult::Unknown(p) => Err(p),
                };
                (ns, ev)
            }
            Err(e) => {
                let pos = usize::try_from(reader.error_position()).unwrap_or(usize::MAX);
                return Err(XmlError::Malformed {
                    line: lines.line_at(pos),
                    element: stack.last().map(|o| o.element.name.clone()),
                    detail: e.to_string(),
                });
            }
        };
        match event {
            Event::Start(ref start) | Event::Empty(ref start) => {
                let line = lines.line_at(start_pos);
                let local = start.local_name().as_ref().to_owned();
                let namespace = ns.map_err(|prefix| XmlError::UnboundPrefix { prefix, line })?;
                if root.is_some() {
                    return Err(XmlError::Malformed {
                        line,
                        element: None,
                        detail: format!("second root element <{local}>"),
                    });
                }
                elements += 1;
                if elements > limits.max_elements {
                    return Err(XmlError::TooManyElements {
                        max: limits.max_elements,
                        line,
                    });
                }
                if stack.len() + 1 > limits.max_depth {
                    return Err(XmlError::TooDeep {
                        element: local,
                        max: limits.max_depth,
                        line,
                    });
                }
                let prefix = start.name().prefix().map(|p| p.as_ref().to_owned());
                let mut element = Element::new(&namespace, &local);
                element.prefix = prefix;
                element.line = line;
                read_attributes(&reader, start, &mut element, limits)?;
                if let Some(parent) = stack.last_mut() {
                    parent.flush_text();
                }
                let open = Open {
                    element,
                    text: String::new(),
                };
                if matches!(event, Event::Empty(_)) {
                    close(&mut stack, &mut root, open);
                } else {
                    stack.push(open);
                }
            }
            Event::End(_) => {
                // quick-xml checks that the end name matches.
                if let Some(mut open) = stack.pop() {
                    open.flush_text();
                    close(&mut stack, &mut root, open);
                }
            }
            Event::Text(t) => {
                let content = t.xml10_content();
                push_text(&mut stack, &content, || lines.line_at(start_pos))?;
            }
            Event::CData(c) => {
                let content = c.xml10_content();
                push_text(&mut stack, &content, || lines.line_at(start_pos))?;
            }
            Event::GeneralRef(r) => {
                let line = lines.line_at(start_pos);
                let resolved: Cow<'_, str> = match r.resolve_char_ref() {
                    Ok(Some(c)) => Cow::Owned(c.to_string()),
                    Ok(None) => match resolve_predefined_entity(&r) {
                        Some(s) => Cow::Borrowed(s),
                        None => {
                            return Err(XmlError::UnknownEntity {
                                name: r.to_string(),
                                line,
                            });
                        }
                    },
                    Err(e) => {
                        return Err(XmlError::Malformed {
                            line,
                            element: stack.last().map(|o| o.element.name.clone()),
                            detail: e.to_string(),
                        });
                    }
                };
                push_text(&mut stack, &resolved, || line)?;
            }
            Event::Decl(d) => {
                if let Some(Ok(enc)) = d.encoding() {
                    let enc = enc.into_owned();
                    if !enc.eq_ignore_ascii_case("utf-8") && !enc.eq_ignore_ascii_case("utf8") {
                        return Err(XmlError::UnsupportedEncoding { encoding: enc });
                    }
                }
            }
            Event::DocType(_) => {
                return Err(XmlError::Doctype {
                    line: lines.line_at(start_pos),
                });
            }
            Event::Comment(_) | Event::PI(_) => {}
            Event::Eof => {
                if let Some(open) = stack.last() {
                    return Err(XmlError::Malformed {
                        line: lines.line_at(text.len()),
                        element: Some(open.element.name.clone()),
                        detail: format!("end of body inside <{}>", open.element.name),
                    });
                }
                return root.ok_or(XmlError::Empty);
            }
        }
    }
}

fn close(stack: &mut [Open], root: &mut Option<Element>, open: Open) {
    match stack.last_mut() {
        Some(parent) => parent.element.children.push(Node::Element(open.element)),
        None => *root = Some(open.element),
    }
}

fn push_text(
    stack: &mut [Open],
    content: &str,
    line: impl FnOnce() -> u32,
) -> Result<(), XmlError> {
    match stack.last_mut() {
        Some(open) => {
            open.text.push_str(content);
            Ok(())
        }
        None if content
            .bytes()
            .all(|b| matches!(b, b' ' | b'\t' | b'\r' | b'\n')) =>
        {
            Ok(())
        }
        None => Err(XmlError::Malformed {
            line: line(),
            element: None,
            detail: "text outside the root element".to_owned(),
        }),
    }
}

fn read_attributes(
    reader: &NsReader<&[u8]>,
    start: &BytesStart<'_>,
    element: &mut Element,
    limits: &Limits,
) -> Result<(), XmlError> {
    let malformed = |detail: String| XmlError::Malformed {
        line: element.line,
        element: Some(element.name.clone()),
        detail,
    };
    for attr in start.attributes() {
        let attr = attr.map_err(|e| malformed(e.to_string()))?;
        let key = attr.key;
        let value = attr
            .normalized_value(quick_xml::XmlVersion::Implicit1_0)
            .map_err(|e| malformed(e.to_string()))?
            .into_owned();
        let raw_key: &str = key.as_ref();
        if raw_key == "xmlns" {
            element.declarations.push((String::new(), value));
            continue;
        }
        if let Some(p) = raw_key.strip_prefix("xmlns:") {
            element.declarations.push((p.to_owned(), value));
            continue;
        }
        let (ns, local) = reader.resolver().resolve_attribute(key);
        let namespace = match ns {
            ResolveResult::Bound(n) => n.0.to_owned(),
            ResolveResult::Unbound => String::new(),
            ResolveResult::Unknown(prefix) => {
                return Err(XmlError::UnboundPrefix {
                    prefix,
                    line: element.line,
                });
            }
        };
        if element.attributes.len() >= limits.max_attributes {
            return Err(XmlError::TooManyAttributes {
                element: element.name.clone(),
                max: limits.max_attributes,
                line: element.line,
            });
        }
        element.attributes.push(Attribute {
            namespace,
            name: local.as_ref().to_owned(),
            value,
        });
    }
    Ok(())
}

/// Prefixes the writer prefers for well-known namespaces.
const PREFERRED: &[(&str, &str)] = &[
    (ns::PIDF, "pidf"),
    (ns::RPID, "rp"),
    (ns::DATA_MODEL, "dm"),
    (ns::CAPS, "caps"),
    (ns::CIPID, "ci"),
    (ns::LOCATION_TYPE, "lt"),
    (ns::PIDF_DIFF, "p"),
    (ns::RLMI, "rlmi"),
    (ns::WATCHERINFO, "wi"),
    (ns::RESOURCE_LISTS, "rl"),
];

/// Namespace-to-prefix plan for one document.
struct Prefixes {
    default: Option<String>,
    /// (namespace, prefix) in declaration order.
    prefixed: Vec<(String, String)>,
}

impl Prefixes {
    fn plan(root: &Element) -> Prefixes {
        let mut any_unqualified = false;
        let mut element_ns: Vec<(&str, Option<&str>)> = Vec::new();
        let mut attr_ns: Vec<&str> = Vec::new();
        fn walk<'a>(
            e: &'a Element,
            any_unqualified: &mut bool,
            element_ns: &mut Vec<(&'a str, Option<&'a str>)>,
            attr_ns: &mut Vec<&'a str>,
        ) {
            if e.namespace.is_empty() {
                *any_unqualified = true;
            } else if !element_ns.iter().any(|(n, _)| *n == e.namespace) {
                element_ns.push((&e.namespace, e.prefix.as_deref()));
            }
            for a in &e.attributes {
                if !a.namespace.is_empty()
                    && a.namespace != ns::XML
                    && !attr_ns.contains(&a.namespace.as_str())
                {
                    attr_ns.push(&a.namespace);
                }
            }
            for c in e.elements() {
                walk(c, any_unqualified, element_ns, attr_ns);
            }
        }
        walk(root, &mut any_unqualified, &mut element_ns, &mut attr_ns);
        // Declarations the root asks for come first (a patch document's selectors use
        // those prefixes); then the root's namespace is the default one.
        let declared_default = root
            .declarations
            .iter()
            .find(|(p, _)| p.is_empty())
            .map(|(_, u)| u.clone());
        let default = if any_unqualified {
            None
        } else if declared_default.is_some() {
            declared_default
        } else if root.namespace.is_empty() {
            None
        } else {
            Some(root.namespace.clone())
        };
        let mut plan = Prefixes {
            default,
            prefixed: Vec::new(),
        };
        for (p, u) in &root.declarations {
            if !p.is_empty()
                && valid_prefix(p)
                && !plan.prefix_taken(p)
                && !plan.prefixed.iter().any(|(n, _)| n == u)
            {
                plan.prefixed.push((u.clone(), p.clone()));
            }
        }
        let mut wanted: Vec<(&str, Option<&str>)> = element_ns
            .into_iter()
            .filter(|(n, _)| plan.default.as_deref() != Some(*n))
            .collect();
        for a in attr_ns {
            if !wanted.iter().any(|(n, _)| *n == a) {
                wanted.push((a, None));
            }
        }
        for (namespace, hint) in wanted {
            if plan.prefixed.iter().any(|(n, _)| n == namespace) {
                continue;
            }
            let preferred = PREFERRED
                .iter()
                .find(|(n, _)| *n == namespace)
                .map(|(_, p)| *p);
            let candidate = hint
                .filter(|h| valid_prefix(h))
                .or(preferred)
                .filter(|p| !plan.prefix_taken(p));
            let prefix = match candidate {
                Some(p) => p.to_owned(),
                None => {
                    let mut n = plan.prefixed.len();
                    loop {
                        let p = format!("ns{n}");
                        if !plan.prefix_taken(&p) {
                            break p;
                        }
                        n += 1;
                    }
                }
            };
            plan.prefixed.push((namespace.to_owned(), prefix));
        }
        plan
    }

    fn prefix_taken(&self, p: &str) -> bool {
        self.prefixed.iter().any(|(_, q)| q == p)
    }

    fn element_prefix(&self, namespace: &str) -> Option<&str> {
        if namespace.is_empty() || self.default.as_deref() == Some(namespace) {
            None
        } else {
            self.prefixed
                .iter()
                .find(|(n, _)| n == namespace)
                .map(|(_, p)| p.as_str())
        }
    }

    fn attr_prefix(&self, namespace: &str) -> Option<&str> {
        if namespace == ns::XML {
            return Some("xml");
        }
        self.prefixed
            .iter()
            .find(|(n, _)| n == namespace)
            .map(|(_, p)| p.as_str())
    }
}

fn valid_prefix(p: &str) -> bool {
    let mut chars = p.chars();
    matches!(chars.next(), Some(c) if c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.'))
        && !p.to_ascii_lowercase().starts_with("xml")
}

fn qualified(prefix: Option<&str>, local: &str) -> String {
    match prefix {
        Some(p) => format!("{p}:{local}"),
        None => local.to_owned(),
    }
}

fn write_document(root: &Element) -> Vec<u8> {
    let plan = Prefixes::plan(root);
    let mut writer = Writer::new(Vec::with_capacity(512));
    // Writing into a Vec cannot fail.
    let _ = writer.write_event(Event::Decl(BytesDecl::new("1.0", Some("UTF-8"), None)));
    writer.get_mut().push(b'\n');
    write_element(&mut writer, root, &plan, true);
    writer.into_inner()
}

fn write_element(writer: &mut Writer<Vec<u8>>, e: &Element, plan: &Prefixes, is_root: bool) {
    let name = qualified(plan.element_prefix(&e.namespace), &e.name);
    let mut start = BytesStart::new(name.as_str());
    if is_root {
        if let Some(d) = &plan.default {
            start.push_attribute(("xmlns", d.as_str()));
        }
        for (namespace, prefix) in &plan.prefixed {
            let key = format!("xmlns:{prefix}");
            start.push_attribute((key.as_str(), namespace.as_str()));
        }
    }
    for a in &e.attributes {
        let key = if a.namespace.is_empty() {
            a.name.clone()
        } else {
            qualified(plan.attr_prefix(&a.namespace), &a.name)
        };
        start.push_attribute((key.as_str(), a.value.as_str()));
    }
    if e.children.is_empty() {
        let _ = writer.write_event(Event::Empty(start));
        return;
    }
    let end = start.to_end().into_owned();
    let _ = writer.write_event(Event::Start(start));
    for c in &e.children {
        match c {
            Node::Element(child) => write_element(writer, child, plan, false),
            Node::Text(t) if t.contains('\r') => {
                // A raw CR would be read back as LF (XML 1.0 §2.11): write it as a reference.
                let escaped = quick_xml::escape::escape(t.as_str()).replace('\r', "&#13;");
                let _ = writer.write_event(Event::Text(BytesText::from_escaped(escaped)));
            }
            Node::Text(t) => {
                let _ = writer.write_event(Event::Text(BytesText::new(t)));
            }
        }
    }
    let _ = writer.write_event(Event::End(end));
}
