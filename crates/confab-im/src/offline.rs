//! The store-and-forward decisions, sans-IO: which MESSAGE is stored, what is stored, what
//! is sent back out, and the failure notification of an expired message. Time and random
//! values are arguments.

use bytes::Bytes;
use confab_core::chain::{Addressed, Reply, RequestContext};
use confab_core::message_queue::{NewQueuedMessage, QueuedMessage};
use confab_core::{Address, Timestamp};
use confab_sip::{HeaderName, Limits, Message, Method, RequestBuilder, Uri};

use crate::config::ImConfig;
use crate::imdn::{FailedDelivery, failed_delivery_body, imdn_request};

/// Headers removed before a MESSAGE is stored: hop-by-hop routing (our Via, Route,
/// Record-Route) and credentials, which must not sit in the database nor reach the
/// recipient.
const STRIPPED: [HeaderName; 5] = [
    HeaderName::Via,
    HeaderName::Route,
    HeaderName::RecordRoute,
    HeaderName::Authorization,
    HeaderName::ProxyAuthorization,
];

/// The reason phrase of the 202 answering a stored message.
pub const STORED_REASON: &str = "Accepted (stored for offline delivery)";
/// The reason phrase of the refusal when the recipient's queue is full.
pub const QUOTA_REASON: &str = "Recipient offline and message queue full";

/// The store-and-forward rules with their settings.
#[derive(Debug, Clone)]
pub struct Offline {
    config: ImConfig,
    served: Vec<String>,
}

impl Offline {
    /// Rules for these settings and served domains.
    pub fn new(config: ImConfig, served_domains: &[String]) -> Offline {
        Offline {
            config,
            served: served_domains
                .iter()
                .map(|d| d.to_ascii_lowercase())
                .collect(),
        }
    }

    /// The settings.
    pub fn config(&self) -> &ImConfig {
        &self.config
    }

    /// The recipient when `ctx` is a MESSAGE this role may store: out of dialog, not
    /// following a route set, to a local user's address (not a GRUU, which names one
    /// device). Whether the user exists and has bindings is for the caller to find out.
    pub fn candidate(ctx: &RequestContext) -> Option<&Address> {
        if ctx.method() != Some(&Method::Message) || ctx.in_dialog || ctx.routed {
            return None;
        }
        let Addressed::LocalUser(aor) = &ctx.addressed else {
            return None;
        };
        let gruu = match ctx.request.request_uri() {
            Some(Ok(Uri::Sip(u))) => u.params.get("gr").is_some(),
            _ => false,
        };
        (!gruu).then_some(aor)
    }

    /// What to store for `request` to `recipient`, or the refusal (413 over the size
    /// limit, 400 without a usable From).
    ///
    /// # Errors
    /// The [`Reply`] to send instead.
    pub fn prepare(
        &self,
        request: &Message,
        recipient: &Address,
        now: Timestamp,
    ) -> Result<NewQueuedMessage, Reply> {
        let limit = self.config.max_message_bytes as usize;
        if request.encoded_len() > limit {
            return Err(Reply::with_reason(
                413,
                format!("Message too large to store (limit {limit} bytes)"),
            ));
        }
        let sender = match request.from() {
            Some(Ok(f)) => f.uri_str.to_owned(),
            _ => return Err(Reply::with_reason(400, "Bad From header")),
        };
        let mut m = request.clone();
        for h in STRIPPED {
            m.remove_header(h);
        }
        m.set_max_forwards(70);
        if !m.contains(HeaderName::Date) {
            // The recipient learns when the message was sent, not when it came online.
            let _ = m.push_header(HeaderName::Date, &http_date(now));
        }
        let content_type = match request.content_type() {
            Some(Ok(t)) => format!("{}/{}", t.ty, t.subtype).to_ascii_lowercase(),
            _ => String::new(),
        };
        let imdn = if content_type == "message/cpim" {
            imdn_request(request.body())
        } else {
            Default::default()
        };
        Ok(NewQueuedMessage {
            recipient: recipient.clone(),
            sender,
            received_at: now,
            expires_at: Timestamp(
                now.as_millis() + i64::from(self.config.expiry_s).saturating_mul(1000),
            ),
            content_type,
            request: m.to_bytes().to_vec(),
            notify_failure: imdn.negative_delivery && imdn.message_id.is_some(),
            imdn_message_id: imdn.message_id,
        })
    }

    /// The request to send for a stored message (the caller sets the Request-URI of each
    /// endpoint and the proxy adds its Via).
    ///
    /// # Errors
    /// The stored bytes no longer parse (a corrupt row).
    pub fn delivery_request(m: &QueuedMessage) -> Result<Message, confab_sip::ParseError> {
        confab_sip::parse_datagram(
            Bytes::copy_from_slice(&m.message.request),
            &Limits::UNLIMITED,
        )
    }

    /// The IMDN `failed` notification for an expired message whose sender asked for one,
    /// queued for the sender like any message — if the sender is a user of a served
    /// domain (a notification to another domain would need DNS routing the proxy does not
    /// do yet). `random` makes the tags and ids unique.
    pub fn failure_notification(
        &self,
        m: &QueuedMessage,
        now: Timestamp,
        random: u64,
    ) -> Option<NewQueuedMessage> {
        let q = &m.message;
        if !q.notify_failure {
            return None;
        }
        let message_id = q.imdn_message_id.as_deref()?;
        let sender = Address::parse(&q.sender).ok()?;
        if !self.served.iter().any(|d| d == sender.domain()) {
            return None;
        }
        let recipient_uri = format!("sip:{}", q.recipient);
        let sender_uri = format!("sip:{sender}");
        let original = Offline::delivery_request(m).ok();
        let datetime = original
            .as_ref()
            .map(|o| imdn_request(o.body()))
            .and_then(|r| r.datetime)
            .unwrap_or_else(|| q.received_at.to_string());
        let id = format!("{random:016x}");
        let body = failed_delivery_body(&FailedDelivery {
            message_id,
            datetime: &datetime,
            recipient_uri: &recipient_uri,
            sender_uri: &sender_uri,
            notification_id: &id,
            now: &now.to_string(),
        });
        let msg = RequestBuilder::new(Method::Message, &sender_uri)
            .via("SIP/2.0/UDP placeholder.invalid;branch=z9hG4bKimdn")
            .from(&format!("<{recipient_uri}>;tag={random:x}"))
            .to(&format!("<{sender_uri}>"))
            .call_id(&format!("imdn-{id}@{}", q.recipient.domain()))
            .cseq(1)
            .header(HeaderName::Date, &http_date(now))
            .body("message/cpim", Bytes::from(body))
            .build()
            .ok()?;
        let mut msg = msg;
        msg.remove_header(HeaderName::Via);
        Some(NewQueuedMessage {
            recipient: sender,
            sender: recipient_uri,
            received_at: now,
            expires_at: Timestamp(
                now.as_millis() + i64::from(self.config.expiry_s).saturating_mul(1000),
            ),
            content_type: "message/cpim".into(),
            request: msg.to_bytes().to_vec(),
            notify_failure: false,
            imdn_message_id: Some(id),
        })
    }
}

/// The endpoint key a delivery is recorded under: the `+sip.instance` when the client sent
/// one (stable across re-registrations and address changes), else the Contact URI.
pub fn endpoint_key(b: &confab_core::Binding) -> String {
    match &b.instance {
        Some(i) => i.clone(),
        None => b.contact.clone(),
    }
}

/// Whether a delivery failure is temporary (the endpoint could not take it now: try again
/// at its next registration) rather than a refusal of the message itself.
pub fn is_temporary(status: u16) -> bool {
    matches!(status, 408 | 480 | 486 | 500 | 503 | 504) || status < 200
}

/// RFC 3261 §20.17 / RFC 7231 IMF-fixdate: `Sun, 06 Nov 1994 08:49:37 GMT`.
pub fn http_date(t: Timestamp) -> String {
    const DAYS: [&str; 7] = ["Thu", "Fri", "Sat", "Sun", "Mon", "Tue", "Wed"];
    const MONTHS: [&str; 12] = [
        "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
    ];
    let secs = t.as_millis().max(0) / 1000;
    let days = secs / 86_400;
    let rem = secs % 86_400;
    // Hinnant's civil_from_days.
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!(
        "{}, {d:02} {} {y:04} {:02}:{:02}:{:02} GMT",
        DAYS[(days % 7) as usize],
        MONTHS[(m - 1) as usize],
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn http_dates() {
        assert_eq!(http_date(Timestamp(0)), "Thu, 01 Jan 1970 00:00:00 GMT");
        assert_eq!(
            http_date(Timestamp(784_111_777_000)),
            "Sun, 06 Nov 1994 08:49:37 GMT"
        );
        assert_eq!(
            http_date(Timestamp(1_709_164_800_000)),
            "Thu, 29 Feb 2024 00:00:00 GMT"
        );
    }

    #[test]
    fn temporary_failures() {
        assert!(is_temporary(408) && is_temporary(503) && is_temporary(480));
        assert!(!is_temporary(415) && !is_temporary(488) && !is_temporary(200));
    }
}
