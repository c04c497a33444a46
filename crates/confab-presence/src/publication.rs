//! PUBLISH processing (RFC 3903 §6) as a pure function: initial, refresh, modify and
//! remove, entity-tags from caller randomness, and the error responses (412, 423, 489, 415,
//! 400/413). Partial publication (RFC 5264, `application/pidf-diff+xml`) is applied to the
//! stored document. The caller looks up the publication named by `SIP-If-Match` and stores
//! the outcome; [`Publication`] is plain data for that store.

use confab_core::Timestamp;
use confab_xml::pidf::{self, Presence};
use confab_xml::pidf_diff::{self, PidfDiff};
use confab_xml::{Limits, XmlError};

use crate::aggregate::EndpointPublication;

/// A stored publication.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Publication {
    /// The current entity-tag.
    pub etag: String,
    /// The presentity (Request-URI AOR of the PUBLISH).
    pub resource: String,
    /// When the document was last set (initial or modify).
    pub published_at: Timestamp,
    /// When it expires.
    pub expires_at: Timestamp,
    /// The publisher's `+sip.instance`, when known.
    pub instance: Option<String>,
    /// The document as `application/pidf+xml` (written by `confab-xml`, so it reads back).
    pub body: Vec<u8>,
}

impl Publication {
    /// The parsed document, for aggregation.
    pub fn to_endpoint(&self) -> Result<EndpointPublication, XmlError> {
        Ok(EndpointPublication {
            etag: self.etag.clone(),
            published_at: self.published_at,
            expires_at: self.expires_at,
            instance: self.instance.clone(),
            document: Presence::parse(&self.body, &Limits::DOCUMENT)?,
        })
    }
}

/// Settings.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct PublishConfig {
    /// Expiry when the PUBLISH has no Expires (RFC 3903 §4: 3600 for presence).
    pub default_expires: u32,
    /// Min-Expires (423 below it).
    pub min_expires: u32,
    /// Longer ones are cut to this.
    pub max_expires: u32,
    /// Limits for the body.
    #[serde(skip, default = "default_limits")]
    pub limits: Limits,
}

fn default_limits() -> Limits {
    Limits::DOCUMENT
}

impl Default for PublishConfig {
    fn default() -> PublishConfig {
        PublishConfig {
            default_expires: 3600,
            min_expires: 60,
            max_expires: 86_400,
            limits: Limits::DOCUMENT,
        }
    }
}

/// What an incoming PUBLISH says.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PublishRequest<'a> {
    /// The presentity (Request-URI).
    pub resource: &'a str,
    /// `Event` header value.
    pub event: &'a str,
    /// `SIP-If-Match`, if present.
    pub if_match: Option<&'a str>,
    /// `Expires`, if present.
    pub expires: Option<u32>,
    /// `Content-Type` and body, if the request has a body.
    pub body: Option<(&'a str, &'a [u8])>,
    /// The publisher's `+sip.instance`, when known.
    pub instance: Option<&'a str>,
}

/// A refused PUBLISH.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PublishError {
    /// `489 Bad Event` (with `Allow-Events: presence`).
    #[error("489 Bad Event: PUBLISH for `{0}` is not supported")]
    BadEvent(String),
    /// `412 Conditional Request Failed`: SIP-If-Match names no live publication.
    #[error("412 Conditional Request Failed: no publication with entity-tag `{0}`")]
    UnknownEtag(String),
    /// `423 Interval Too Brief` (with Min-Expires).
    #[error("423 Interval Too Brief: Expires {requested} is below {min}")]
    IntervalTooBrief {
        /// Requested.
        requested: u32,
        /// Min-Expires.
        min: u32,
    },
    /// `415 Unsupported Media Type` (with Accept).
    #[error("415 Unsupported Media Type: `{0}`")]
    UnsupportedMediaType(String),
    /// `400`: an initial PUBLISH without body, or a removal without SIP-If-Match.
    #[error("400 Bad Request: {0}")]
    BadRequest(&'static str),
    /// `400` (or `413` when too large): the body is malformed; the previous state is kept.
    #[error("body refused: {0}")]
    Body(#[from] XmlError),
}

impl PublishError {
    /// The SIP status code.
    pub fn status_code(&self) -> u16 {
        match self {
            PublishError::BadEvent(_) => 489,
            PublishError::UnknownEtag(_) => 412,
            PublishError::IntervalTooBrief { .. } => 423,
            PublishError::UnsupportedMediaType(_) => 415,
            PublishError::BadRequest(_) => 400,
            PublishError::Body(e) => e.status_code(),
        }
    }

    /// The `Accept` value for a 415.
    pub const ACCEPT: &'static str = "application/pidf+xml, application/pidf-diff+xml";
}

/// What the PUBLISH did; answer `200 OK` with `SIP-ETag` and `Expires` from it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Published {
    /// A new publication (store it).
    Created(Publication),
    /// Expiry extended, new entity-tag, same document (replace the stored one).
    Refreshed(Publication),
    /// New document and entity-tag (replace the stored one).
    Modified(Publication),
    /// Removed (delete the publication with this entity-tag); answer with Expires: 0.
    Removed {
        /// The removed publication's entity-tag.
        etag: String,
    },
}

impl Published {
    /// The `SIP-ETag` of the response (`None` for a removal).
    pub fn etag(&self) -> Option<&str> {
        match self {
            Published::Created(p) | Published::Refreshed(p) | Published::Modified(p) => {
                Some(&p.etag)
            }
            Published::Removed { .. } => None,
        }
    }

    /// The `Expires` of the response at `now`.
    pub fn expires(&self, now: Timestamp) -> u32 {
        match self {
            Published::Created(p) | Published::Refreshed(p) | Published::Modified(p) => {
                u32::try_from((p.expires_at.as_millis() - now.as_millis()).max(0) / 1000)
                    .unwrap_or(u32::MAX)
            }
            Published::Removed { .. } => 0,
        }
    }
}

/// An entity-tag from caller randomness: 16 characters of `[0-9a-z]`.
pub fn etag_from(random: [u8; 10]) -> String {
    const ALPHABET: &[u8] = b"0123456789abcdefghijklmnopqrstuvwxyz";
    let mut n = u128::from_be_bytes({
        let mut b = [0u8; 16];
        b[6..].copy_from_slice(&random);
        b
    });
    let mut s = String::with_capacity(16);
    for _ in 0..16 {
        s.push(ALPHABET[(n % 36) as usize] as char);
        n /= 36;
    }
    s
}

/// Processes a PUBLISH. `current` is the caller's lookup of the unexpired publication of
/// `req.resource` whose entity-tag is `req.if_match` (`None` when there is no such header or
/// no such publication). On any error nothing changes.
pub fn handle_publish(
    req: &PublishRequest<'_>,
    current: Option<&Publication>,
    now: Timestamp,
    random: [u8; 10],
    config: &PublishConfig,
) -> Result<Published, PublishError> {
    let token = req.event.split(';').next().unwrap_or("").trim();
    if !token.eq_ignore_ascii_case("presence") {
        return Err(PublishError::BadEvent(req.event.to_owned()));
    }
    let current = match req.if_match {
        Some(tag) => Some(
            current
                .filter(|c| c.etag == tag && c.expires_at > now && c.resource == req.resource)
                .ok_or_else(|| PublishError::UnknownEtag(tag.to_owned()))?,
        ),
        None => None,
    };
    let expires = match req.expires {
        None => config.default_expires.min(config.max_expires),
        Some(0) => 0,
        Some(r) if r < config.min_expires => {
            return Err(PublishError::IntervalTooBrief {
                requested: r,
                min: config.min_expires,
            });
        }
        Some(r) => r.min(config.max_expires),
    };
    let expires_at = Timestamp(now.as_millis() + i64::from(expires) * 1000);
    if expires == 0 {
        return match current {
            Some(c) => Ok(Published::Removed {
                etag: c.etag.clone(),
            }),
            None => Err(PublishError::BadRequest(
                "a PUBLISH with Expires: 0 needs SIP-If-Match",
            )),
        };
    }
    let etag = etag_from(random);
    match (req.body, current) {
        (None, None) => Err(PublishError::BadRequest("an initial PUBLISH needs a body")),
        (None, Some(c)) => Ok(Published::Refreshed(Publication {
            etag,
            expires_at,
            ..c.clone()
        })),
        (Some((content_type, body)), current) => {
            let document = read_body(content_type, body, current, config)?;
            let publication = Publication {
                etag,
                resource: req.resource.to_owned(),
                published_at: now,
                expires_at,
                instance: req
                    .instance
                    .map(str::to_owned)
                    .or_else(|| current.and_then(|c| c.instance.clone())),
                body: document.to_bytes(),
            };
            Ok(match current {
                Some(_) => Published::Modified(publication),
                None => Published::Created(publication),
            })
        }
    }
}

fn read_body(
    content_type: &str,
    body: &[u8],
    current: Option<&Publication>,
    config: &PublishConfig,
) -> Result<Presence, PublishError> {
    let media = content_type
        .split(';')
        .next()
        .unwrap_or("")
        .trim()
        .to_ascii_lowercase();
    if media == pidf::CONTENT_TYPE {
        return Ok(Presence::parse(body, &config.limits)?);
    }
    if media == pidf_diff::CONTENT_TYPE {
        return match PidfDiff::parse(body, &config.limits)? {
            PidfDiff::Full { presence, .. } => Ok(presence),
            PidfDiff::Patch(patch) => {
                let c = current.ok_or(PublishError::BadRequest(
                    "a pidf-diff patch needs SIP-If-Match naming the document it changes",
                ))?;
                let base = Presence::parse(&c.body, &Limits::LIST)?;
                Ok(patch.apply(&base)?)
            }
        };
    }
    Err(PublishError::UnsupportedMediaType(content_type.to_owned()))
}
