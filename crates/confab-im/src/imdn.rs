//! The parts of CPIM (RFC 3862) and IMDN (RFC 5438) the queue needs, as pure functions:
//! reading whether a message asks for a negative delivery notification, and writing the
//! `failed` delivery notification sent when a stored message expires.

/// The IMDN namespace URN (RFC 5438 §5).
pub const IMDN_NS: &str = "urn:ietf:params:imdn";

/// What a CPIM message asks for (RFC 5438 §5-6).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ImdnRequest {
    /// `imdn.Message-ID`.
    pub message_id: Option<String>,
    /// `imdn.Disposition-Notification` lists `negative-delivery`.
    pub negative_delivery: bool,
    /// `DateTime` of the message.
    pub datetime: Option<String>,
}

/// Longest header section of a CPIM body read (bytes).
pub const MAX_CPIM_HEADERS: usize = 16 * 1024;

/// Reads the message headers of a `message/cpim` body (the part before the first empty
/// line): `NS` prefixes, `<prefix>.Message-ID`, `<prefix>.Disposition-Notification`,
/// `DateTime`. Anything unreadable reads as "no IMDN asked for" (the body is forwarded as
/// received either way).
pub fn imdn_request(cpim: &[u8]) -> ImdnRequest {
    let head = &cpim[..cpim.len().min(MAX_CPIM_HEADERS)];
    let Ok(text) =
        std::str::from_utf8(head).or_else(|e| std::str::from_utf8(&head[..e.valid_up_to()]))
    else {
        return ImdnRequest::default();
    };
    let mut prefix: Option<&str> = None;
    let mut fields: Vec<(&str, &str)> = Vec::new();
    for line in text.split('\n') {
        let line = line.strip_suffix('\r').unwrap_or(line);
        if line.is_empty() {
            break;
        }
        let Some((name, value)) = line.split_once(':') else {
            continue;
        };
        let (name, value) = (name.trim(), value.trim());
        if name.eq_ignore_ascii_case("NS") {
            // NS: imdn <urn:ietf:params:imdn>
            if let Some((p, urn)) = value.split_once('<')
                && urn
                    .trim_end_matches('>')
                    .trim()
                    .eq_ignore_ascii_case(IMDN_NS)
            {
                prefix = Some(p.trim());
            }
            continue;
        }
        fields.push((name, value));
    }
    let mut out = ImdnRequest::default();
    for (name, value) in fields {
        if name.eq_ignore_ascii_case("DateTime") {
            out.datetime = Some(value.to_owned());
            continue;
        }
        let Some(p) = prefix else { continue };
        let Some((np, local)) = name.split_once('.') else {
            continue;
        };
        if np != p {
            continue;
        }
        if local.eq_ignore_ascii_case("Message-ID") {
            out.message_id = Some(value.to_owned());
        } else if local.eq_ignore_ascii_case("Disposition-Notification") {
            out.negative_delivery = value
                .split(',')
                .any(|v| v.trim().eq_ignore_ascii_case("negative-delivery"));
        }
    }
    out
}

/// Escapes text for XML character data and attribute values.
pub fn xml_escape(s: &str) -> String {
    let mut o = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => o.push_str("&amp;"),
            '<' => o.push_str("&lt;"),
            '>' => o.push_str("&gt;"),
            '"' => o.push_str("&quot;"),
            '\'' => o.push_str("&apos;"),
            c if c.is_control() && c != '\t' => {}
            c => o.push(c),
        }
    }
    o
}

/// Removes characters that would break a CPIM header line.
fn header_safe(s: &str) -> String {
    s.chars().filter(|c| !c.is_control()).collect()
}

/// What the failure notification is about.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FailedDelivery<'a> {
    /// The original message's `imdn.Message-ID`.
    pub message_id: &'a str,
    /// Its `DateTime` (RFC 3339).
    pub datetime: &'a str,
    /// The recipient (who could not be reached), `sip:user@domain`.
    pub recipient_uri: &'a str,
    /// The original sender, `sip:user@domain`.
    pub sender_uri: &'a str,
    /// A new Message-ID for the notification itself.
    pub notification_id: &'a str,
    /// Now, RFC 3339.
    pub now: &'a str,
}

/// The `message/cpim` body of an IMDN delivery notification with status `failed`
/// (RFC 5438 §7.2.1.2, §9: `Content-Disposition: notification`).
pub fn failed_delivery_body(f: &FailedDelivery<'_>) -> String {
    let xml = format!(
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\r\n\
         <imdn xmlns=\"urn:ietf:params:xml:ns:imdn\">\r\n\
         <message-id>{}</message-id>\r\n\
         <datetime>{}</datetime>\r\n\
         <recipient-uri>{}</recipient-uri>\r\n\
         <original-recipient-uri>{}</original-recipient-uri>\r\n\
         <delivery-notification><status><failed/></status></delivery-notification>\r\n\
         </imdn>\r\n",
        xml_escape(f.message_id),
        xml_escape(f.datetime),
        xml_escape(f.recipient_uri),
        xml_escape(f.recipient_uri),
    );
    format!(
        "From: <{}>\r\nTo: <{}>\r\nNS: imdn <{IMDN_NS}>\r\nimdn.Message-ID: {}\r\n\
         DateTime: {}\r\n\r\nContent-Type: message/imdn+xml\r\n\
         Content-Disposition: notification\r\nContent-Length: {}\r\n\r\n{xml}",
        header_safe(f.recipient_uri),
        header_safe(f.sender_uri),
        header_safe(f.notification_id),
        header_safe(f.now),
        xml.len(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const CPIM: &str = "From: <sip:alice@example.com>\r\nTo: <sip:bob@example.com>\r\n\
        NS: imdn <urn:ietf:params:imdn>\r\nimdn.Message-ID: 34jk324j\r\n\
        DateTime: 2006-04-04T12:16:49-05:00\r\n\
        imdn.Disposition-Notification: positive-delivery, negative-delivery\r\n\r\n\
        Content-Type: text/plain\r\nContent-Length: 12\r\n\r\nHello World\n";

    #[test]
    fn reads_the_imdn_request() {
        let r = imdn_request(CPIM.as_bytes());
        assert_eq!(r.message_id.as_deref(), Some("34jk324j"));
        assert!(r.negative_delivery);
        assert_eq!(r.datetime.as_deref(), Some("2006-04-04T12:16:49-05:00"));
        // Another prefix bound to the namespace.
        let other = CPIM
            .replace("imdn", "x")
            .replace("urn:ietf:params:x", IMDN_NS);
        assert!(imdn_request(other.as_bytes()).negative_delivery);
        // Positive only, or no namespace declaration: nothing asked.
        let pos = CPIM.replace(", negative-delivery", "");
        assert!(!imdn_request(pos.as_bytes()).negative_delivery);
        let nons = CPIM.replace("NS: imdn <urn:ietf:params:imdn>\r\n", "");
        assert!(!imdn_request(nons.as_bytes()).negative_delivery);
        // A header in the content part does not count.
        let late = "From: <sip:a@b>\r\n\r\nNS: imdn <urn:ietf:params:imdn>\r\n\
            imdn.Disposition-Notification: negative-delivery\r\n";
        assert!(!imdn_request(late.as_bytes()).negative_delivery);
    }

    #[test]
    fn failure_notification_is_escaped_and_counted() {
        let body = failed_delivery_body(&FailedDelivery {
            message_id: "a<b>&\"c",
            datetime: "2006-04-04T12:16:49-05:00",
            recipient_uri: "sip:bob@example.com",
            sender_uri: "sip:alice@example.com",
            notification_id: "n1\r\nX: y",
            now: "2024-01-01T00:00:00.000Z",
        });
        assert!(body.contains("<message-id>a&lt;b&gt;&amp;&quot;c</message-id>"));
        assert!(body.contains("<failed/>"));
        assert!(body.contains("imdn.Message-ID: n1X: y\r\n"));
        let (_, rest) = body.split_once("\r\n\r\n").unwrap();
        let (mime, xml) = rest.split_once("\r\n\r\n").unwrap();
        let len: usize = mime
            .lines()
            .find_map(|l| l.strip_prefix("Content-Length: "))
            .unwrap()
            .parse()
            .unwrap();
        assert_eq!(len, xml.len());
        // The notification itself reads as asking for nothing.
        assert!(!imdn_request(body.as_bytes()).negative_delivery);
    }

    proptest! {
        #[test]
        fn any_bytes_read_without_panic(b in proptest::collection::vec(any::<u8>(), 0..2048)) {
            let _ = imdn_request(&b);
        }

        #[test]
        fn escaped_text_has_no_markup(s in ".{0,200}") {
            let e = xml_escape(&s);
            prop_assert!(!e.contains('<') && !e.contains('>') && !e.contains('"'));
        }
    }
}
