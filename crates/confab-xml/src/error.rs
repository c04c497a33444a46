//! One error type for every document of this crate.

/// Why a body was refused. Every variant names the element (and line, 1-based, where the
/// document has one) so the server can answer `400` with a reason phrase naming the problem;
/// [`XmlError::is_too_large`] tells the `413` case apart.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum XmlError {
    /// The body is larger than [`Limits::max_bytes`](crate::Limits::max_bytes).
    #[error("body of {len} bytes is larger than the limit of {max} bytes")]
    TooLarge {
        /// Body length.
        len: usize,
        /// The limit.
        max: usize,
    },
    /// Elements nest deeper than [`Limits::max_depth`](crate::Limits::max_depth).
    #[error("line {line}: element <{element}> nests deeper than {max} levels")]
    TooDeep {
        /// The element that went too deep.
        element: String,
        /// The limit.
        max: usize,
        /// Line of the element.
        line: u32,
    },
    /// More elements than [`Limits::max_elements`](crate::Limits::max_elements).
    #[error("line {line}: more than {max} elements")]
    TooManyElements {
        /// The limit.
        max: usize,
        /// Line of the first element over the limit.
        line: u32,
    },
    /// More attributes on one element than
    /// [`Limits::max_attributes`](crate::Limits::max_attributes).
    #[error("line {line}: element <{element}> has more than {max} attributes")]
    TooManyAttributes {
        /// The element.
        element: String,
        /// The limit.
        max: usize,
        /// Line of the element.
        line: u32,
    },
    /// The body is not UTF-8 (RFC 3863 §4.1 requires UTF-8 for PIDF; the other formats
    /// here are UTF-8 by their media types).
    #[error("line {line}: body is not valid UTF-8")]
    NotUtf8 {
        /// Line of the first invalid byte.
        line: u32,
    },
    /// The XML declaration names an encoding other than UTF-8.
    #[error("encoding `{encoding}` is not supported; use UTF-8")]
    UnsupportedEncoding {
        /// The declared encoding.
        encoding: String,
    },
    /// A `<!DOCTYPE>`: refused, so no entity can expand (billion laughs) and no DTD is
    /// fetched.
    #[error("line {line}: a DOCTYPE is not allowed")]
    Doctype {
        /// Line of the DOCTYPE.
        line: u32,
    },
    /// The bytes are not well-formed XML.
    #[error("line {line}: malformed XML{}: {detail}", element.as_ref().map(|e| format!(" in <{e}>")).unwrap_or_default())]
    Malformed {
        /// Line where the parser stopped.
        line: u32,
        /// The innermost open element, if any.
        element: Option<String>,
        /// What the XML parser reported.
        detail: String,
    },
    /// `&name;` other than the five predefined entities and character references.
    #[error("line {line}: unknown entity `&{name};`")]
    UnknownEntity {
        /// The entity name.
        name: String,
        /// Line of the reference.
        line: u32,
    },
    /// A namespace prefix without a declaration in scope.
    #[error("line {line}: namespace prefix `{prefix}` is not declared")]
    UnboundPrefix {
        /// The prefix.
        prefix: String,
        /// Line of the element.
        line: u32,
    },
    /// No root element.
    #[error("body has no XML root element")]
    Empty,
    /// The root element is not the one this document type needs.
    #[error("root element is <{found}>, expected <{expected}>")]
    WrongRoot {
        /// Expected `{namespace}local` name.
        expected: &'static str,
        /// Found `{namespace}local` name.
        found: String,
    },
    /// A required child element is missing.
    #[error("line {line}: <{parent}> has no <{child}>")]
    MissingElement {
        /// The parent element.
        parent: String,
        /// The missing child.
        child: &'static str,
        /// Line of the parent.
        line: u32,
    },
    /// A required attribute is missing.
    #[error("line {line}: <{element}> has no `{attribute}` attribute")]
    MissingAttribute {
        /// The element.
        element: String,
        /// The attribute.
        attribute: &'static str,
        /// Line of the element.
        line: u32,
    },
    /// A value (text or attribute) outside its type.
    #[error("line {line}: <{element}> has invalid {what} `{value}`; expected {expected}")]
    InvalidValue {
        /// The element.
        element: String,
        /// What was invalid (`text`, or the attribute name).
        what: String,
        /// The value as written (cut to 64 bytes).
        value: String,
        /// What is allowed.
        expected: &'static str,
        /// Line of the element.
        line: u32,
    },
    /// Two siblings with the same identifier where the format requires uniqueness.
    #[error("line {line}: duplicate <{element}> with id `{id}`")]
    Duplicate {
        /// The element.
        element: String,
        /// The repeated id.
        id: String,
        /// Line of the second occurrence.
        line: u32,
    },
    /// A `multipart/related` body that cannot be split (RFC 2046 §5.1, RFC 2387).
    #[error("multipart body: {0}")]
    Multipart(String),
    /// A pidf-diff operation (RFC 5261) that cannot be applied.
    #[error("patch operation {index} (`{sel}`): {reason}")]
    Patch {
        /// 0-based index of the operation in the patch.
        index: usize,
        /// The selector as written.
        sel: String,
        /// Why it failed.
        reason: String,
    },
}

impl XmlError {
    /// True when the body is refused for its size alone (SIP `413 Request Entity Too
    /// Large`); every other error is a `400`.
    pub fn is_too_large(&self) -> bool {
        matches!(self, XmlError::TooLarge { .. })
    }

    /// The SIP status code this error maps to: `413` or `400`.
    pub fn status_code(&self) -> u16 {
        if self.is_too_large() { 413 } else { 400 }
    }

    /// The line of the problem, where there is one.
    pub fn line(&self) -> Option<u32> {
        match self {
            XmlError::TooDeep { line, .. }
            | XmlError::TooManyElements { line, .. }
            | XmlError::TooManyAttributes { line, .. }
            | XmlError::NotUtf8 { line }
            | XmlError::Doctype { line }
            | XmlError::Malformed { line, .. }
            | XmlError::UnknownEntity { line, .. }
            | XmlError::UnboundPrefix { line, .. }
            | XmlError::MissingElement { line, .. }
            | XmlError::MissingAttribute { line, .. }
            | XmlError::InvalidValue { line, .. }
            | XmlError::Duplicate { line, .. } => Some(*line),
            _ => None,
        }
    }

    pub(crate) fn invalid(
        element: &crate::Element,
        what: &str,
        value: &str,
        expected: &'static str,
    ) -> XmlError {
        let mut v = value.to_owned();
        if v.len() > 64 {
            let mut cut = 64;
            while !v.is_char_boundary(cut) {
                cut -= 1;
            }
            v.truncate(cut);
        }
        XmlError::InvalidValue {
            element: element.name.clone(),
            what: what.to_owned(),
            value: v,
            expected,
            line: element.line,
        }
    }
}
