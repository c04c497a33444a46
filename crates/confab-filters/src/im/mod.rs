//! The Intelligent IM Filter: links in message text and file-transfer offers.

mod mime;
mod sdp;
mod url;

use bytes::Bytes;
use confab_core::policy::{ImFilterPolicy, PolicyError, UrlAction};
use confab_sip::{HeaderName, Message, Method};

use self::mime::{Headers, Look, Walker};

/// Reason phrase when a message has links that only show after HTML decoding, so the
/// prefix cannot be put in front of them.
pub const HIDDEN_LINK_REASON: &str = "Message blocked: a link could not be disabled";
/// Reason phrase when the filter must look at content it cannot read.
pub const UNREADABLE_REASON: &str = "Blocked: content the IM filter cannot inspect";
/// Reason phrase when disabling the links would make the body larger than
/// [`MAX_REWRITTEN_BODY`].
pub const TOO_LARGE_REASON: &str = "Message blocked: too large once links are disabled";
/// Largest body the filter produces when disabling links (the SIP parser's default body
/// limit, so a rewritten message is never one the next hop must refuse for size).
pub const MAX_REWRITTEN_BODY: usize = 65_535;

/// Why the filter refused a request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BlockCause {
    /// The text contains a link and the URL rule says `block`.
    Link,
    /// The URL rule says `disable_links`, but an HTML part hides a link behind character
    /// references (`http&#58;//...`) where the prefix cannot go.
    HiddenLink,
    /// A file transfer of a blocked type; the file name (`*` when the offer names none).
    File(String),
    /// A rule applies but the content cannot be read (UTF-16 text, quoted-printable, a
    /// compressed body, a malformed container ...): the filter fails closed. The detail.
    Unreadable(&'static str),
    /// The body with its links disabled would exceed [`MAX_REWRITTEN_BODY`].
    TooLarge,
}

/// What the filter decided for a request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ImVerdict<'f> {
    /// Let it through unchanged.
    Pass,
    /// Answer 403 with this reason phrase.
    Block {
        /// The reason phrase (saying why).
        reason: &'f str,
        /// The cause, for logs and tests.
        cause: BlockCause,
    },
    /// Let it through with this body instead (links disabled); the caller sets it with
    /// `Message::set_body`, which fixes Content-Length. Content-Type does not change.
    Rewrite {
        /// The new body.
        body: Bytes,
        /// How many links were disabled.
        links: usize,
    },
}

/// A compiled IM filter policy with the served domains. Immutable: a policy change builds
/// a new one (see [`crate::Snapshot`]).
///
/// # What it looks at
///
/// * **MESSAGE** (RFC 3428): the text of `text/plain`, `text/html` and every other `text/*`
///   body, also inside `message/cpim` (RFC 3862) wrappers and `multipart/*` bodies, nested
///   up to 6 levels. Text is read in any ASCII-compatible charset and in base64 transfer
///   encoding. Links: see [`crate::links`] for exactly what counts.
/// * **INVITE**: file-transfer offers in its SDP (`application/sdp`, also inside a
///   multipart body): RFC 5547 `a=file-selector` names, and one-way MSRP offers.
/// * In both: a `Content-Disposition` with a `filename` (RFC 2183, RFC 2231 `filename*`)
///   on the body or any part.
///
/// Bodies that are not text — IMDN (`message/imdn+xml`, RFC 5438), isComposing
/// (`application/im-iscomposing+xml`, RFC 3994), images, XML — pass byte for byte. A
/// rewritten body keeps every byte it does not rewrite: only the text of the parts holding
/// links changes (and the `Content-Length` of a CPIM or multipart part around it, when it
/// has one).
///
/// # Order of decisions
///
/// 1. A rule applies only to senders in its scope (`all`, or `external`).
/// 2. With no applicable rule, or a policy that changes nothing, the request passes without
///    its body being read.
/// 3. A blocked file → 403 with the file rule's reason.
/// 4. Content an applicable rule would need to read but cannot → 403 ([`UNREADABLE_REASON`]).
/// 5. Links with `block` → 403 with the URL rule's reason; with `disable_links` → the body
///    rewritten with the prefix before each link (or 403 [`HIDDEN_LINK_REASON`] when an HTML
///    link cannot be reached, 403 [`TOO_LARGE_REASON`] when the rewritten body would exceed
///    [`MAX_REWRITTEN_BODY`]).
#[derive(Debug)]
pub struct ImFilter {
    policy: ImFilterPolicy,
    domains: Vec<String>,
}

impl ImFilter {
    /// Compiles a policy for a front end serving `served_domains`.
    ///
    /// # Errors
    /// [`PolicyError`] if the policy is invalid (a store only hands out validated ones).
    pub fn compile(
        policy: &ImFilterPolicy,
        served_domains: &[String],
    ) -> Result<ImFilter, PolicyError> {
        Ok(ImFilter {
            policy: policy.clone().validated()?,
            domains: served_domains
                .iter()
                .map(|d| d.to_ascii_lowercase())
                .collect(),
        })
    }

    /// A filter that lets everything through (the default policy).
    pub fn allow_all(served_domains: &[String]) -> ImFilter {
        ImFilter {
            policy: ImFilterPolicy::default(),
            domains: served_domains
                .iter()
                .map(|d| d.to_ascii_lowercase())
                .collect(),
        }
    }

    /// The policy this filter applies (validated and normalised).
    pub fn policy(&self) -> &ImFilterPolicy {
        &self.policy
    }

    /// Whether `domain` is one of the served domains (ASCII case-insensitive).
    pub fn is_served(&self, domain: &str) -> bool {
        self.domains.iter().any(|d| d.eq_ignore_ascii_case(domain))
    }

    /// The decision for `request` from a sender that is (`external`) or is not outside the
    /// served domains.
    pub fn inspect(&self, request: &Message, external: bool) -> ImVerdict<'_> {
        let p = &self.policy;
        let urls_apply = p.urls.action != UrlAction::Allow && p.urls.scope.applies(external);
        let files_apply = !p.files.extensions.is_empty() && p.files.scope.applies(external);
        let links = match request.method() {
            Some(Method::Message) => urls_apply,
            Some(Method::Invite) => false,
            _ => return ImVerdict::Pass,
        };
        if !(links || files_apply) || request.body().is_empty() {
            return ImVerdict::Pass;
        }
        let look = Look {
            links,
            prefix: (links && p.urls.action == UrlAction::DisableLinks)
                .then_some(p.urls.prefix.as_bytes()),
            extensions: files_apply.then_some(&p.files.extensions[..]),
        };
        let mut walker = Walker::new(look);
        let encoded = request
            .get(HeaderName::ContentEncoding)
            .is_some_and(|h| !h.value().trim_ascii().eq_ignore_ascii_case(b"identity"));
        let body = request.body();
        if encoded {
            walker.found.unreadable = Some("compressed or encoded body");
        } else {
            let h = Headers {
                content_type: request.get(HeaderName::ContentType).map(|h| h.value()),
                transfer_encoding: request.get("Content-Transfer-Encoding").map(|h| h.value()),
                disposition: request
                    .get(HeaderName::ContentDisposition)
                    .map(|h| h.value()),
                content_length: None,
            };
            walker.entity(body, 0, h, 0);
        }
        let found = walker.found;
        if let Some(name) = found.blocked_file {
            return ImVerdict::Block {
                reason: &p.files.reason,
                cause: BlockCause::File(name),
            };
        }
        if let Some(why) = found.unreadable {
            return ImVerdict::Block {
                reason: UNREADABLE_REASON,
                cause: BlockCause::Unreadable(why),
            };
        }
        if found.links == 0 {
            return ImVerdict::Pass;
        }
        match p.urls.action {
            UrlAction::Allow => ImVerdict::Pass,
            UrlAction::Block => ImVerdict::Block {
                reason: &p.urls.reason,
                cause: BlockCause::Link,
            },
            UrlAction::DisableLinks if found.hidden_links => ImVerdict::Block {
                reason: HIDDEN_LINK_REASON,
                cause: BlockCause::HiddenLink,
            },
            UrlAction::DisableLinks => match apply(body, found.splices) {
                Some(body) if body.len() > MAX_REWRITTEN_BODY => ImVerdict::Block {
                    reason: TOO_LARGE_REASON,
                    cause: BlockCause::TooLarge,
                },
                Some(body) => ImVerdict::Rewrite {
                    body: body.into(),
                    links: found.links,
                },
                None => ImVerdict::Block {
                    reason: UNREADABLE_REASON,
                    cause: BlockCause::Unreadable("overlapping edits"),
                },
            },
        }
    }
}

/// `body` with the splices applied (sorted by position); `None` if two overlap.
fn apply(body: &[u8], mut splices: Vec<mime::Splice>) -> Option<Vec<u8>> {
    splices.sort_by_key(|s| s.range.start);
    let grow: usize = splices.iter().map(|s| s.with.len()).sum();
    let mut out = Vec::with_capacity(body.len() + grow);
    let mut at = 0;
    for s in &splices {
        if s.range.start < at || s.range.end > body.len() {
            return None;
        }
        out.extend_from_slice(&body[at..s.range.start]);
        out.extend_from_slice(&s.with);
        at = s.range.end;
    }
    out.extend_from_slice(&body[at..]);
    Some(out)
}

/// Whether a file called `name` (`None`: the offer names none) has a blocked extension.
///
/// The name is reduced the way Windows would open it: the last path component (after `/`
/// or `\`), cut at an NTFS stream separator `:`, trailing dots and spaces removed
/// (`evil.exe.` and `evil.exe ` run as `evil.exe`). Matching ignores ASCII case; an entry
/// `tar.gz` matches `x.tar.gz`; `*` matches every file, named or not.
pub(crate) fn is_blocked_name(name: Option<&[u8]>, extensions: &[String]) -> bool {
    if extensions.iter().any(|e| e == "*") {
        return true;
    }
    let Some(name) = name else {
        return false;
    };
    let base = name
        .rsplit(|&b| b == b'/' || b == b'\\')
        .next()
        .unwrap_or(name);
    let base = base.split(|&b| b == b':').next().unwrap_or(base);
    let mut end = base.len();
    while end > 0 && matches!(base[end - 1], b'.' | b' ' | b'\t') {
        end -= 1;
    }
    let base = &base[..end];
    extensions.iter().any(|e| {
        let e = e.as_bytes();
        base.len() > e.len()
            && base[base.len() - e.len()..].eq_ignore_ascii_case(e)
            && base[base.len() - e.len() - 1] == b'.'
    })
}

/// Link detection, for tools and tests: the byte offsets where links start in `text`
/// (`html`: also protocol-relative attribute values). What counts as a link:
///
/// 1. `scheme://` with any RFC 3986 scheme followed by a URL character (`http://`,
///    `https://`, `ftp://`, `file://`, `smb://` ...); no word boundary needed;
/// 2. `www.` at a word boundary followed by a letter or digit;
/// 3. at a word boundary, directly followed by a non-space character: `mailto:`, `sip:`,
///    `sips:`, `tel:`, `callto:`, `im:`, `pres:`, `xmpp:`, `file:`, `news:`, `data:`,
///    `javascript:`, `vbscript:`, `search-ms:` and every `ms-*:` scheme;
/// 4. in HTML: an attribute value starting with `//`.
///
/// Not links: bare domain names, `Tel: +1 555`, `xsip:`, look-alike full-width letters
/// (`ｈｔｔｐ://`), backslash forms (`http:\\x`). A word boundary is a position not
/// preceded by a letter, digit or `_` — which is why the disabling prefix must end with one
/// of those.
pub fn links(text: &[u8], html: bool) -> Vec<usize> {
    let mut v = Vec::new();
    url::for_each_link(text, html, |s| v.push(s));
    v
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn blocked_names() {
        let exts: Vec<String> = ["exe", "tar.gz", "bat"].map(str::to_owned).to_vec();
        for (name, blocked) in [
            ("evil.exe", true),
            ("EVIL.EXE", true),
            ("invoice.pdf.exe", true),
            ("evil.exe.", true),
            ("evil.exe  ", true),
            ("evil.exe:Zone.Identifier", true),
            ("C:\\Users\\x\\evil.bat", true),
            ("dir/evil.exe", true),
            ("x.tar.gz", true),
            (".exe", true),
            ("exe", false),
            ("evil.exe.pdf", false),
            ("notes.txt", false),
            ("gz", false),
            ("", false),
        ] {
            assert_eq!(
                is_blocked_name(Some(name.as_bytes()), &exts),
                blocked,
                "{name}"
            );
        }
        assert!(!is_blocked_name(None, &exts));
        assert!(is_blocked_name(None, &["*".to_owned()]));
        assert!(is_blocked_name(Some(b"a.txt"), &["*".to_owned()]));
    }

    #[test]
    fn splices_apply_in_order_and_refuse_overlaps() {
        let s = |a: usize, b: usize, w: &str| mime::Splice {
            range: a..b,
            with: w.as_bytes().to_vec(),
        };
        assert_eq!(
            apply(b"0123456789", vec![s(5, 6, "X"), s(0, 0, "<")]).unwrap(),
            b"<01234X6789"
        );
        assert_eq!(apply(b"0123", vec![s(0, 3, "a"), s(2, 4, "b")]), None);
        assert_eq!(apply(b"0123", vec![s(2, 9, "a")]), None);
    }
}
