//! Partial PIDF (RFC 5262, `application/pidf-diff+xml`): a full-state `<p:pidf-full>`
//! document or a `<p:patch>` of RFC 5261 operations, each with a `version` so a watcher (RFC
//! 5263) or the server (RFC 5264 partial PUBLISH) can tell a missed update.
//!
//! [`Patch::apply`] runs the operations on a [`Presence`]; [`diff`] computes a patch from
//! two documents at the granularity of tuples, persons and devices (by `id`), and returns
//! `None` when a full document is the better answer.
//!
//! # Selector subset (RFC 5261 §4.1)
//!
//! `sel` is an absolute location path of steps separated by `/`:
//!
//! - the first step matches the document element (`*`, `presence`, or a prefixed name);
//! - each further step is `*` or `[prefix:]name` with any number of predicates
//!   `[@attr='value']`, `[@attr="value"]`, `[n]` (1-based position among the matches);
//! - the last step may also be `text()` or `@[prefix:]attr`.
//!
//! Unprefixed names are in the patch document's default namespace (RFC 5261 §4.2.1), and
//! prefixes are those declared on the `<p:patch>` element or the operation. `namespace::`
//! steps, `//`, functions other than `text()` and the `ws` attribute's whitespace handling
//! are not supported (whitespace-only text is not kept at all, see [`crate::Element`]); an
//! unsupported selector is an [`XmlError::Patch`] naming it. A selector must match exactly
//! one node.

use crate::pidf::Presence;
use crate::{Element, Limits, Node, XmlError, ns, opt_u32};

/// The media type.
pub const CONTENT_TYPE: &str = "application/pidf-diff+xml";

/// Where `<add>` puts its content (RFC 5261 §4.3 `pos`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Pos {
    /// `before`: as preceding siblings of the selected element.
    Before,
    /// `after`: as following siblings.
    After,
    /// `prepend`: as its first children.
    Prepend,
}

impl Pos {
    const fn as_str(self) -> &'static str {
        match self {
            Pos::Before => "before",
            Pos::After => "after",
            Pos::Prepend => "prepend",
        }
    }
}

/// One RFC 5261 operation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Op {
    /// `<add sel pos? type?>content</add>`.
    Add {
        /// Selector.
        sel: String,
        /// `pos`; `None` appends as last children.
        pos: Option<Pos>,
        /// `type="@name"` adds an attribute whose value is the text content.
        attribute: Option<String>,
        /// The nodes to add.
        content: Vec<Node>,
    },
    /// `<replace sel>content</replace>`: an element by one element, an attribute value or
    /// a text node by the text content.
    Replace {
        /// Selector.
        sel: String,
        /// The replacement.
        content: Vec<Node>,
    },
    /// `<remove sel/>`.
    Remove {
        /// Selector.
        sel: String,
    },
}

impl Op {
    /// The selector.
    pub fn sel(&self) -> &str {
        match self {
            Op::Add { sel, .. } | Op::Replace { sel, .. } | Op::Remove { sel } => sel,
        }
    }
}

/// A `<p:patch>` document.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Patch {
    /// `version`.
    pub version: u32,
    /// `entity`, if given.
    pub entity: Option<String>,
    /// The operations, applied in order.
    pub ops: Vec<Op>,
    /// Namespace declarations `(prefix, uri)` in scope for the selectors (`""` is the
    /// default namespace).
    pub namespaces: Vec<(String, String)>,
}

/// A pidf-diff body.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PidfDiff {
    /// `<p:pidf-full version>`: the whole document.
    Full {
        /// `version`.
        version: u32,
        /// The document (the content of `<pidf-full>` is that of `<presence>`).
        presence: Presence,
    },
    /// `<p:patch version>`.
    Patch(Patch),
}

impl PidfDiff {
    /// Reads a pidf-diff body.
    pub fn parse(body: &[u8], limits: &Limits) -> Result<PidfDiff, XmlError> {
        let e = Element::parse(body, limits)?;
        let version = |e: &Element| {
            opt_u32(e, "version")?.ok_or_else(|| XmlError::MissingAttribute {
                element: e.name.clone(),
                attribute: "version",
                line: e.line,
            })
        };
        if e.is(ns::PIDF_DIFF, "pidf-full") {
            let mut as_presence = e.clone();
            as_presence.namespace = ns::PIDF.to_owned();
            as_presence.name = "presence".to_owned();
            return Ok(PidfDiff::Full {
                version: version(&e)?,
                presence: Presence::from_element(&as_presence)?,
            });
        }
        if !e.is(ns::PIDF_DIFF, "patch") {
            return Err(XmlError::WrongRoot {
                expected: "{urn:ietf:params:xml:ns:pidf-diff}pidf-full or patch",
                found: e.expanded_name(),
            });
        }
        let mut patch = Patch {
            version: version(&e)?,
            entity: e.attr("entity").map(str::to_owned),
            ops: Vec::new(),
            namespaces: e.declarations.clone(),
        };
        for c in e.elements() {
            if c.namespace != ns::PIDF_DIFF {
                continue;
            }
            for (p, u) in &c.declarations {
                if !patch.namespaces.iter().any(|(q, v)| q == p && v == u) {
                    patch.namespaces.push((p.clone(), u.clone()));
                }
            }
            let sel = crate::required(c, "sel")?.to_owned();
            let op = match c.name.as_str() {
                "add" => Op::Add {
                    sel,
                    pos: match c.attr("pos") {
                        None => None,
                        Some("before") => Some(Pos::Before),
                        Some("after") => Some(Pos::After),
                        Some("prepend") => Some(Pos::Prepend),
                        Some(v) => {
                            return Err(XmlError::invalid(c, "pos", v, "before, after or prepend"));
                        }
                    },
                    attribute: match c.attr("type") {
                        None => None,
                        Some(t) => match t.strip_prefix('@') {
                            Some(a) => Some(a.to_owned()),
                            None => {
                                return Err(XmlError::invalid(
                                    c,
                                    "type",
                                    t,
                                    "@attribute (namespace:: is not supported)",
                                ));
                            }
                        },
                    },
                    content: c.children.clone(),
                },
                "replace" => Op::Replace {
                    sel,
                    content: c.children.clone(),
                },
                "remove" => Op::Remove { sel },
                other => {
                    return Err(XmlError::invalid(
                        c,
                        "element",
                        other,
                        "add, replace or remove",
                    ));
                }
            };
            patch.ops.push(op);
        }
        Ok(PidfDiff::Patch(patch))
    }

    /// Builds the root element.
    pub fn to_element(&self) -> Element {
        match self {
            PidfDiff::Full { version, presence } => {
                let mut e = presence.to_element();
                e.namespace = ns::PIDF_DIFF.to_owned();
                e.name = "pidf-full".to_owned();
                e.set_attr("version", version.to_string());
                e.declarations = vec![
                    (String::new(), ns::PIDF.to_owned()),
                    ("p".to_owned(), ns::PIDF_DIFF.to_owned()),
                ];
                e
            }
            PidfDiff::Patch(p) => p.to_element(),
        }
    }

    /// Writes the document.
    pub fn to_bytes(&self) -> Vec<u8> {
        self.to_element().to_document()
    }
}

impl Patch {
    /// The declarations [`diff`] uses: PIDF as the default namespace, `p`, `dm`, `rp`.
    pub fn standard_namespaces() -> Vec<(String, String)> {
        vec![
            (String::new(), ns::PIDF.to_owned()),
            ("p".to_owned(), ns::PIDF_DIFF.to_owned()),
            ("dm".to_owned(), ns::DATA_MODEL.to_owned()),
            ("rp".to_owned(), ns::RPID.to_owned()),
        ]
    }

    /// Builds the `<p:patch>` element.
    pub fn to_element(&self) -> Element {
        let mut e =
            Element::new(ns::PIDF_DIFF, "patch").with_attr("version", self.version.to_string());
        if let Some(en) = &self.entity {
            e.set_attr("entity", en.clone());
        }
        e.declarations = self.namespaces.clone();
        if !e.declarations.iter().any(|(_, u)| u == ns::PIDF_DIFF) {
            e.declarations
                .push(("p".to_owned(), ns::PIDF_DIFF.to_owned()));
        }
        for op in &self.ops {
            let child = match op {
                Op::Add {
                    sel,
                    pos,
                    attribute,
                    content,
                } => {
                    let mut c = Element::new(ns::PIDF_DIFF, "add").with_attr("sel", sel.clone());
                    if let Some(p) = pos {
                        c.set_attr("pos", p.as_str());
                    }
                    if let Some(a) = attribute {
                        c.set_attr("type", format!("@{a}"));
                    }
                    c.children = content.clone();
                    c
                }
                Op::Replace { sel, content } => {
                    let mut c =
                        Element::new(ns::PIDF_DIFF, "replace").with_attr("sel", sel.clone());
                    c.children = content.clone();
                    c
                }
                Op::Remove { sel } => {
                    Element::new(ns::PIDF_DIFF, "remove").with_attr("sel", sel.clone())
                }
            };
            e.children.push(Node::Element(child));
        }
        e
    }

    /// Applies the operations in order to `doc` and reads the result back as PIDF (so a
    /// patch that breaks the document's rules is refused). On error `doc` is untouched.
    pub fn apply(&self, doc: &Presence) -> Result<Presence, XmlError> {
        let mut root = doc.to_element();
        for (index, op) in self.ops.iter().enumerate() {
            let fail = |reason: String| XmlError::Patch {
                index,
                sel: op.sel().to_owned(),
                reason,
            };
            let target = select(&root, op.sel(), &self.namespaces).map_err(fail)?;
            apply_op(&mut root, op, target).map_err(fail)?;
        }
        Presence::from_element(&root)
    }
}

/// What a selector picked.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Target {
    /// An element, as a path of child indexes from the root.
    Element(Vec<usize>),
    /// An attribute of an element.
    Attribute(Vec<usize>, String, String),
    /// The text of an element.
    Text(Vec<usize>),
}

struct Step<'a> {
    namespace: Option<String>, // None = `*`
    name: &'a str,
    attr_preds: Vec<(String, String, String)>, // (ns, name, value)
    position: Option<usize>,
}

fn resolve_prefix(prefix: &str, namespaces: &[(String, String)]) -> Result<String, String> {
    namespaces
        .iter()
        .rev()
        .find(|(p, _)| p == prefix)
        .map(|(_, u)| u.clone())
        .or_else(|| prefix.is_empty().then(String::new))
        .ok_or_else(|| format!("prefix `{prefix}` is not declared"))
}

fn split_qname<'a>(
    q: &'a str,
    namespaces: &[(String, String)],
    attr: bool,
) -> Result<(String, &'a str), String> {
    match q.split_once(':') {
        Some((p, l)) => Ok((resolve_prefix(p, namespaces)?, l)),
        // Unprefixed attributes are in no namespace; unprefixed elements in the default.
        None if attr => Ok((String::new(), q)),
        None => Ok((resolve_prefix("", namespaces)?, q)),
    }
}

fn parse_step<'a>(s: &'a str, namespaces: &[(String, String)]) -> Result<Step<'a>, String> {
    let (head, mut preds) = match s.find('[') {
        Some(i) => (&s[..i], &s[i..]),
        None => (s, ""),
    };
    if head.is_empty() || head.contains("::") || head.contains('(') {
        return Err(format!("step `{s}` is not supported"));
    }
    let mut step = if head == "*" {
        Step {
            namespace: None,
            name: "*",
            attr_preds: Vec::new(),
            position: None,
        }
    } else {
        let (n, l) = split_qname(head, namespaces, false)?;
        Step {
            namespace: Some(n),
            name: l,
            attr_preds: Vec::new(),
            position: None,
        }
    };
    while !preds.is_empty() {
        let rest = preds
            .strip_prefix('[')
            .ok_or_else(|| format!("predicate in `{s}` is not supported"))?;
        let end = rest
            .find(']')
            .ok_or_else(|| format!("unclosed predicate in `{s}`"))?;
        let pred = rest[..end].trim();
        preds = &rest[end + 1..];
        if let Some(a) = pred.strip_prefix('@') {
            let (name, value) = a
                .split_once('=')
                .ok_or_else(|| format!("predicate `[{pred}]` is not supported"))?;
            let value = value.trim();
            let unquoted = value
                .strip_prefix('\'')
                .and_then(|v| v.strip_suffix('\''))
                .or_else(|| value.strip_prefix('"').and_then(|v| v.strip_suffix('"')))
                .ok_or_else(|| format!("predicate `[{pred}]` needs a quoted value"))?;
            let (ans, an) = split_qname(name.trim(), namespaces, true)?;
            step.attr_preds
                .push((ans, an.to_owned(), unquoted.to_owned()));
        } else if let Ok(n) = pred.parse::<usize>() {
            if n == 0 {
                return Err("position predicates start at 1".to_owned());
            }
            step.position = Some(n);
        } else {
            return Err(format!("predicate `[{pred}]` is not supported"));
        }
    }
    Ok(step)
}

fn step_matches(step: &Step<'_>, e: &Element) -> bool {
    (step.name == "*" || (e.name == step.name && step.namespace.as_deref() == Some(&e.namespace)))
        && step
            .attr_preds
            .iter()
            .all(|(n, a, v)| e.attr_ns(n, a) == Some(v.as_str()))
}

fn element_at<'a>(root: &'a Element, path: &[usize]) -> &'a Element {
    let mut e = root;
    for &i in path {
        e = match &e.children[i] {
            Node::Element(c) => c,
            Node::Text(_) => unreachable!("paths only index elements"),
        };
    }
    e
}

fn element_at_mut<'a>(root: &'a mut Element, path: &[usize]) -> &'a mut Element {
    let mut e = root;
    for &i in path {
        e = match &mut e.children[i] {
            Node::Element(c) => c,
            Node::Text(_) => unreachable!("paths only index elements"),
        };
    }
    e
}

fn select(root: &Element, sel: &str, namespaces: &[(String, String)]) -> Result<Target, String> {
    let sel = sel.trim();
    let sel = sel.strip_prefix('/').unwrap_or(sel);
    if sel.is_empty() || sel.contains("//") {
        return Err("selector is empty or uses `//`".to_owned());
    }
    let steps: Vec<&str> = sel.split('/').collect();
    let first = parse_step(steps[0], namespaces)?;
    if !step_matches(&first, root) || first.position.is_some_and(|p| p != 1) {
        return Err("the first step does not match the document element".to_owned());
    }
    let mut path: Vec<usize> = Vec::new();
    for (k, raw) in steps.iter().enumerate().skip(1) {
        let last = k == steps.len() - 1;
        if last && *raw == "text()" {
            return Ok(Target::Text(path));
        }
        if let Some(a) = raw.strip_prefix('@').filter(|_| last) {
            let (n, l) = split_qname(a, namespaces, true)?;
            let e = element_at(root, &path);
            if e.attr_ns(&n, l).is_none() {
                return Err(format!("no attribute `{a}` on <{}>", e.name));
            }
            return Ok(Target::Attribute(path, n, l.to_owned()));
        }
        let step = parse_step(raw, namespaces)?;
        let current = element_at(root, &path);
        let matches: Vec<usize> = current
            .children
            .iter()
            .enumerate()
            .filter_map(|(i, n)| match n {
                Node::Element(c) if step_matches(&step, c) => Some(i),
                _ => None,
            })
            .collect();
        let chosen = match step.position {
            Some(p) => matches.get(p - 1).copied(),
            None if matches.len() == 1 => Some(matches[0]),
            None if matches.is_empty() => None,
            None => return Err(format!("step `{raw}` matches {} elements", matches.len())),
        };
        path.push(chosen.ok_or_else(|| format!("step `{raw}` matches nothing"))?);
    }
    Ok(Target::Element(path))
}

fn content_elements(content: &[Node]) -> Vec<Node> {
    content
        .iter()
        .filter(|n| matches!(n, Node::Element(_)))
        .cloned()
        .collect()
}

fn content_text(content: &[Node]) -> String {
    content
        .iter()
        .filter_map(|n| match n {
            Node::Text(t) => Some(t.as_str()),
            Node::Element(_) => None,
        })
        .collect()
}

fn apply_op(root: &mut Element, op: &Op, target: Target) -> Result<(), String> {
    match (op, target) {
        (
            Op::Add {
                attribute: Some(a),
                content,
                ..
            },
            Target::Element(path),
        ) => {
            let e = element_at_mut(root, &path);
            let (n, l) = match a.split_once(':') {
                Some(_) => return Err("namespaced attributes cannot be added".to_owned()),
                None => (String::new(), a.as_str()),
            };
            if e.attr_ns(&n, l).is_some() {
                return Err(format!("attribute `{a}` exists already"));
            }
            e.set_attr_ns(&n, l, content_text(content));
            Ok(())
        }
        (
            Op::Add {
                pos,
                content,
                attribute: None,
                ..
            },
            Target::Element(path),
        ) => {
            let nodes: Vec<Node> = content
                .iter()
                .filter(|n| !matches!(n, Node::Text(t) if t.trim().is_empty()))
                .cloned()
                .collect();
            match pos {
                None => element_at_mut(root, &path).children.extend(nodes),
                Some(Pos::Prepend) => {
                    let e = element_at_mut(root, &path);
                    e.children.splice(0..0, nodes);
                }
                Some(p @ (Pos::Before | Pos::After)) => {
                    let (&idx, parent) = path
                        .split_last()
                        .ok_or("cannot add siblings to the document element")?;
                    let at = if *p == Pos::Before { idx } else { idx + 1 };
                    element_at_mut(root, parent).children.splice(at..at, nodes);
                }
            }
            Ok(())
        }
        (Op::Replace { content, .. }, Target::Element(path)) => {
            let mut elements = content_elements(content);
            if elements.len() != 1 {
                return Err(format!(
                    "replacing an element needs exactly one element, got {}",
                    elements.len()
                ));
            }
            let new = elements.pop().expect("one element");
            match path.split_last() {
                Some((&idx, parent)) => element_at_mut(root, parent).children[idx] = new,
                None => match new {
                    Node::Element(e) => *root = e,
                    Node::Text(_) => unreachable!("filtered to elements"),
                },
            }
            Ok(())
        }
        (Op::Replace { content, .. }, Target::Attribute(path, n, l)) => {
            element_at_mut(root, &path).set_attr_ns(&n, &l, content_text(content));
            Ok(())
        }
        (Op::Replace { content, .. }, Target::Text(path)) => {
            let e = element_at_mut(root, &path);
            if !e.children.iter().any(|n| matches!(n, Node::Text(_))) {
                return Err(format!("<{}> has no text to replace", e.name));
            }
            e.children.retain(|n| !matches!(n, Node::Text(_)));
            let t = content_text(content);
            if !t.is_empty() {
                e.children.push(Node::Text(t));
            }
            Ok(())
        }
        (Op::Remove { .. }, Target::Element(path)) => {
            let (&idx, parent) = path
                .split_last()
                .ok_or("cannot remove the document element")?;
            element_at_mut(root, parent).children.remove(idx);
            Ok(())
        }
        (Op::Remove { .. }, Target::Attribute(path, n, l)) => {
            element_at_mut(root, &path)
                .attributes
                .retain(|a| !(a.namespace == n && a.name == l));
            Ok(())
        }
        (Op::Remove { .. }, Target::Text(path)) => {
            element_at_mut(root, &path)
                .children
                .retain(|n| !matches!(n, Node::Text(_)));
            Ok(())
        }
        (Op::Add { .. }, _) => Err("add needs an element selector".to_owned()),
    }
}

fn quote(id: &str) -> Option<String> {
    if !id.contains('\'') {
        Some(format!("'{id}'"))
    } else if !id.contains('"') {
        Some(format!("\"{id}\""))
    } else {
        None
    }
}

/// A patch that turns `old` into `new` (up to the order of tuples, persons and devices), at
/// the granularity of whole tuples, persons and devices identified by `id`. `None` when a
/// full document is needed instead: the entity, the document notes or the top-level
/// extensions differ, or an id cannot be quoted in a selector.
pub fn diff(old: &Presence, new: &Presence, version: u32) -> Option<Patch> {
    if old.entity != new.entity || old.notes != new.notes || old.extensions != new.extensions {
        return None;
    }
    let mut ops = Vec::new();
    let pidf = new.to_element();
    let new_elements: Vec<&Element> = pidf.elements().collect();
    let old_root = old.to_element();
    let old_elements: Vec<&Element> = old_root.elements().collect();

    // (namespace, name, selector step) for the three id-keyed kinds.
    let kinds: [(&str, &str, &str); 3] = [
        (ns::PIDF, "tuple", "tuple"),
        (ns::DATA_MODEL, "person", "dm:person"),
        (ns::DATA_MODEL, "device", "dm:device"),
    ];
    for (kns, kname, step) in kinds {
        let olds: Vec<&Element> = old_elements
            .iter()
            .copied()
            .filter(|e| e.is(kns, kname))
            .collect();
        let news: Vec<&Element> = new_elements
            .iter()
            .copied()
            .filter(|e| e.is(kns, kname))
            .collect();
        let id = |e: &Element| e.attr("id").unwrap_or_default().to_owned();
        let mut last_kept: Option<String> = None;
        for o in &olds {
            let oid = id(o);
            let sel = format!("*/{step}[@id={}]", quote(&oid)?);
            match news.iter().find(|n| id(n) == oid) {
                None => ops.push(Op::Remove { sel }),
                Some(n) => {
                    if *n != *o {
                        ops.push(Op::Replace {
                            sel: sel.clone(),
                            content: vec![Node::Element((*n).clone())],
                        });
                    }
                    last_kept = Some(oid);
                }
            }
        }
        for n in news.iter().filter(|n| !olds.iter().any(|o| id(o) == id(n))) {
            let nid = id(n);
            let content = vec![Node::Element((*n).clone())];
            let op = match (kname, &last_kept) {
                // Tuples come before notes and data-model elements (RFC 3863 §4.1.1).
                ("tuple", Some(prev)) => Op::Add {
                    sel: format!("*/tuple[@id={}]", quote(prev)?),
                    pos: Some(Pos::After),
                    attribute: None,
                    content,
                },
                ("tuple", None) => Op::Add {
                    sel: "*".to_owned(),
                    pos: Some(Pos::Prepend),
                    attribute: None,
                    content,
                },
                _ => Op::Add {
                    sel: "*".to_owned(),
                    pos: None,
                    attribute: None,
                    content,
                },
            };
            ops.push(op);
            quote(&nid)?;
            last_kept = Some(nid);
        }
    }
    Some(Patch {
        version,
        entity: Some(new.entity.clone()),
        ops,
        namespaces: Patch::standard_namespaces(),
    })
}
