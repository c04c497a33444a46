//! File-transfer offers in SDP (RFC 5547 over MSRP, RFC 4975).
//!
//! An offer is a file transfer when it has an active (`port != 0`) `m=message` section
//! whose protocol is MSRP (`TCP/MSRP`, `TCP/TLS/MSRP`, also over WebSocket) and which
//!
//! * carries `a=file-selector` (RFC 5547 §6: `name:"My picture.jpg" type:image/jpeg ...`;
//!   the name is percent-decoded), or
//! * carries `a=file-transfer-id`, or
//! * is one-way (`a=sendonly` push or `a=recvonly` pull, at media or session level): a
//!   chat session is `sendrecv`, a one-way MSRP session moves content, i.e. a file.
//!
//! The second and third kinds may name no file: they count as offers of an unnamed file,
//! which only the `*` extension blocks.

use super::mime::percent_decode;

/// Calls `found(name)` for every file-transfer media section of `sdp`, with the file name
/// (percent-decoded) when the offer gives one.
pub(crate) fn for_each_file_offer(sdp: &[u8], mut found: impl FnMut(Option<&[u8]>)) {
    let mut session_one_way = false;
    let mut current: Option<Section> = None;
    for raw in sdp.split(|&b| b == b'\n') {
        let line = raw.strip_suffix(b"\r").unwrap_or(raw);
        if let Some(m) = line.strip_prefix(b"m=") {
            if let Some(s) = current.take()
                && s.is_file_offer(session_one_way)
            {
                found(s.name.as_deref());
            }
            let mut f = m.split(|&b| b == b' ').filter(|w| !w.is_empty());
            let media = f.next().unwrap_or_default();
            let port = f.next().unwrap_or_default();
            let proto = f.next().unwrap_or_default();
            // Port 0 rejects or disables the stream (RFC 3264 §8.2).
            let active = port
                .split(|&b| b == b'/')
                .next()
                .is_some_and(|p| !p.is_empty() && p.iter().any(|&d| d != b'0'));
            current = Some(Section {
                msrp: media.eq_ignore_ascii_case(b"message")
                    && active
                    && proto.windows(4).any(|w| w.eq_ignore_ascii_case(b"MSRP")),
                ..Section::default()
            });
            continue;
        }
        let Some(attr) = line.strip_prefix(b"a=") else {
            continue;
        };
        let (key, value) = match attr.iter().position(|&b| b == b':') {
            Some(c) => (&attr[..c], &attr[c + 1..]),
            None => (attr, &b""[..]),
        };
        let direction = if key.eq_ignore_ascii_case(b"sendonly")
            || key.eq_ignore_ascii_case(b"recvonly")
        {
            Some(true)
        } else if key.eq_ignore_ascii_case(b"sendrecv") || key.eq_ignore_ascii_case(b"inactive") {
            Some(false)
        } else {
            None
        };
        match current.as_mut() {
            None => {
                if let Some(d) = direction {
                    session_one_way = d;
                }
            }
            Some(s) => {
                if let Some(d) = direction {
                    s.one_way = Some(d);
                } else if key.eq_ignore_ascii_case(b"file-selector") {
                    s.selector = true;
                    if s.name.is_none() {
                        s.name = selector_name(value).map(percent_decode);
                    }
                } else if key.eq_ignore_ascii_case(b"file-transfer-id") {
                    s.transfer_id = true;
                }
            }
        }
    }
    if let Some(s) = current.take()
        && s.is_file_offer(session_one_way)
    {
        found(s.name.as_deref());
    }
}

/// What a media section says about file transfer.
#[derive(Default)]
struct Section {
    msrp: bool,
    name: Option<Vec<u8>>,
    selector: bool,
    transfer_id: bool,
    one_way: Option<bool>,
}

impl Section {
    fn is_file_offer(&self, session_one_way: bool) -> bool {
        self.msrp && (self.selector || self.transfer_id || self.one_way.unwrap_or(session_one_way))
    }
}

/// The `name:` selector of a file-selector value: `name:"x y.exe"` (quoted, RFC 5547) or
/// `name:x.exe` (unquoted, lenient), still percent-encoded.
fn selector_name(value: &[u8]) -> Option<&[u8]> {
    let mut i = 0;
    while i + 5 <= value.len() {
        let at_start = i == 0 || matches!(value[i - 1], b' ' | b'\t');
        if at_start && value[i..i + 5].eq_ignore_ascii_case(b"name:") {
            let rest = &value[i + 5..];
            return Some(match rest.strip_prefix(b"\"") {
                Some(q) => {
                    let end = q.iter().position(|&b| b == b'"').unwrap_or(q.len());
                    &q[..end]
                }
                None => {
                    let end = rest
                        .iter()
                        .position(|&b| matches!(b, b' ' | b'\t'))
                        .unwrap_or(rest.len());
                    &rest[..end]
                }
            });
        }
        i += 1;
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[track_caller]
    fn check(sdp: &str, expected: &[Option<&str>]) {
        let mut got = Vec::new();
        for_each_file_offer(sdp.as_bytes(), |n| {
            got.push(n.map(|n| String::from_utf8_lossy(n).into_owned()));
        });
        let want: Vec<Option<String>> = expected.iter().map(|e| e.map(str::to_owned)).collect();
        assert_eq!(got, want, "{sdp}");
    }

    const HEAD: &str =
        "v=0\r\no=alice 1 1 IN IP4 192.0.2.1\r\ns= \r\nc=IN IP4 192.0.2.1\r\nt=0 0\r\n";

    #[test]
    fn rfc_5547_offers() {
        // RFC 5547 §9.1 (push), abridged.
        check(
            &format!(
                "{HEAD}m=message 7654 TCP/MSRP *\r\ni=This is my latest picture\r\na=sendonly\r\n\
                 a=accept-types:message/cpim\r\na=accept-wrapped-types:*\r\n\
                 a=path:msrp://192.0.2.1:7654/jshA7we;tcp\r\n\
                 a=file-selector:name:\"My cool picture.jpg\" type:image/jpeg size:32349 hash:sha-1:72:24\r\n\
                 a=file-transfer-id:vBnG916bdberum2fFEABR1FR3ExZMUrd\r\n"
            ),
            &[Some("My cool picture.jpg")],
        );
        check(
            &format!(
                "{HEAD}m=message 7654 TCP/TLS/MSRP *\r\na=file-selector:type:x size:1 name:\"a%22b.exe\"\r\n"
            ),
            &[Some("a\"b.exe")],
        );
        check(
            &format!("{HEAD}m=message 7654 TCP/MSRP *\r\na=file-selector:name:evil.exe size:1\n"),
            &[Some("evil.exe")],
        );
        // One-way MSRP without a selector (session-level sendonly), transfer id only.
        check(
            &format!("{HEAD}a=sendonly\r\nm=message 7654 TCP/MSRP *\r\na=path:msrp://x\r\n"),
            &[None],
        );
        check(
            &format!("{HEAD}m=message 7654 TCP/MSRP *\r\na=file-transfer-id:abc\r\n"),
            &[None],
        );
        // Two file sections.
        check(
            &format!(
                "{HEAD}m=message 1 TCP/MSRP *\r\na=file-selector:name:\"a.txt\"\r\n\
                 m=message 2 TCP/MSRP *\r\na=recvonly\r\n"
            ),
            &[Some("a.txt"), None],
        );
    }

    #[test]
    fn not_file_transfers() {
        // Chat (sendrecv) session, audio, a rejected section, a session-level sendonly
        // overridden by the media's sendrecv.
        check(
            &format!("{HEAD}m=message 7654 TCP/MSRP *\r\na=path:msrp://x\r\n"),
            &[],
        );
        check(
            &format!("{HEAD}m=audio 49170 RTP/AVP 0\r\na=sendonly\r\n"),
            &[],
        );
        check(
            &format!("{HEAD}m=message 0 TCP/MSRP *\r\na=file-selector:name:\"x.exe\"\r\n"),
            &[],
        );
        check(
            &format!("{HEAD}a=sendonly\r\nm=message 9 TCP/MSRP *\r\na=sendrecv\r\n"),
            &[],
        );
        check(
            &format!("{HEAD}m=message 9 TCP/RTP *\r\na=file-selector:name:x\r\n"),
            &[],
        );
        check("", &[]);
        check("garbage\nm=\na=file-selector", &[]);
    }
}
