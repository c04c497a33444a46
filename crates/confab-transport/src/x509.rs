//! Just enough DER to read the names in a certificate: subjectAltName (dNSName, URI) and
//! the subject Common Name. Used for RFC 5922 peer identities and for deriving SNI names.
//! The chain itself is verified by rustls/webpki; this code only reads an already-verified
//! certificate (or our own configured one), and every read is bounds-checked.

/// Names found in a certificate.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct CertNames {
    /// True when the certificate has a subjectAltName extension at all.
    pub(crate) has_san: bool,
    /// dNSName entries.
    pub(crate) dns: Vec<String>,
    /// uniformResourceIdentifier entries.
    pub(crate) uris: Vec<String>,
    /// The subject's most specific (last) Common Name.
    pub(crate) common_name: Option<String>,
}

/// Why the DER could not be read.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("malformed certificate DER at byte {at}: {what}")]
pub(crate) struct DerError {
    at: usize,
    what: &'static str,
}

struct Reader<'a> {
    data: &'a [u8],
    pos: usize,
    base: usize,
}

impl<'a> Reader<'a> {
    fn new(data: &'a [u8], base: usize) -> Self {
        Reader { data, pos: 0, base }
    }

    fn err(&self, what: &'static str) -> DerError {
        DerError {
            at: self.base + self.pos,
            what,
        }
    }

    fn is_empty(&self) -> bool {
        self.pos >= self.data.len()
    }

    /// Reads one TLV: (tag, value, absolute offset of value).
    fn tlv(&mut self) -> Result<(u8, &'a [u8], usize), DerError> {
        let tag = *self.data.get(self.pos).ok_or(self.err("truncated tag"))?;
        if tag & 0x1f == 0x1f {
            return Err(self.err("multi-byte tags are not supported"));
        }
        let first = *self
            .data
            .get(self.pos + 1)
            .ok_or(self.err("truncated length"))?;
        let mut p = self.pos + 2;
        let len = if first < 0x80 {
            usize::from(first)
        } else {
            let n = usize::from(first & 0x7f);
            if n == 0 || n > 4 {
                return Err(self.err("unsupported length form"));
            }
            let bytes = self
                .data
                .get(p..p + n)
                .ok_or(self.err("truncated length"))?;
            p += n;
            bytes.iter().fold(0usize, |a, &b| (a << 8) | usize::from(b))
        };
        let end = p.checked_add(len).ok_or(self.err("length overflows"))?;
        let value = self
            .data
            .get(p..end)
            .ok_or(self.err("value runs past its container"))?;
        let at = self.base + p;
        self.pos = end;
        Ok((tag, value, at))
    }

    fn expect(&mut self, want: u8, what: &'static str) -> Result<(&'a [u8], usize), DerError> {
        let (tag, v, at) = self.tlv()?;
        if tag != want {
            return Err(self.err(what));
        }
        Ok((v, at))
    }
}

const OID_SAN: &[u8] = &[0x55, 0x1d, 0x11];
const OID_CN: &[u8] = &[0x55, 0x04, 0x03];

/// Reads the names of one DER certificate.
pub(crate) fn cert_names(der: &[u8]) -> Result<CertNames, DerError> {
    let mut top = Reader::new(der, 0);
    let (cert, at) = top.expect(0x30, "certificate is not a SEQUENCE")?;
    let mut cert = Reader::new(cert, at);
    let (tbs, at) = cert.expect(0x30, "tbsCertificate is not a SEQUENCE")?;
    let mut tbs = Reader::new(tbs, at);
    let mut names = CertNames::default();
    // version [0] (optional), serial, signature, issuer, validity, subject, spki, [1], [2], [3]
    let mut seq_index = 0;
    while !tbs.is_empty() {
        let (tag, value, at) = tbs.tlv()?;
        match tag {
            0x30 => {
                // signature(0), issuer(1), validity(2), subject(3), spki(4)
                if seq_index == 3 {
                    names.common_name = common_name(value, at)?;
                }
                seq_index += 1;
            }
            0xa3 => read_extensions(value, at, &mut names)?,
            _ => {}
        }
    }
    Ok(names)
}

fn common_name(subject: &[u8], at: usize) -> Result<Option<String>, DerError> {
    let mut rdns = Reader::new(subject, at);
    let mut cn = None;
    while !rdns.is_empty() {
        let (set, at) = rdns.expect(0x31, "RDN is not a SET")?;
        let mut set = Reader::new(set, at);
        while !set.is_empty() {
            let (atv, at) = set.expect(0x30, "attribute is not a SEQUENCE")?;
            let mut atv = Reader::new(atv, at);
            let (oid, _) = atv.expect(0x06, "attribute type is not an OID")?;
            let (_tag, value, _) = atv.tlv()?;
            if oid == OID_CN {
                cn = Some(String::from_utf8_lossy(value).into_owned());
            }
        }
    }
    Ok(cn)
}

fn read_extensions(wrapped: &[u8], at: usize, names: &mut CertNames) -> Result<(), DerError> {
    let mut outer = Reader::new(wrapped, at);
    let (exts, at) = outer.expect(0x30, "extensions are not a SEQUENCE")?;
    let mut exts = Reader::new(exts, at);
    while !exts.is_empty() {
        let (ext, at) = exts.expect(0x30, "extension is not a SEQUENCE")?;
        let mut ext = Reader::new(ext, at);
        let (oid, _) = ext.expect(0x06, "extension id is not an OID")?;
        let (mut tag, mut value, mut at) = ext.tlv()?;
        if tag == 0x01 {
            (tag, value, at) = ext.tlv()?; // skip `critical`
        }
        if tag != 0x04 {
            return Err(DerError {
                at,
                what: "extension value is not an OCTET STRING",
            });
        }
        if oid != OID_SAN {
            continue;
        }
        names.has_san = true;
        let mut inner = Reader::new(value, at);
        let (gns, at) = inner.expect(0x30, "subjectAltName is not a SEQUENCE")?;
        let mut gns = Reader::new(gns, at);
        while !gns.is_empty() {
            let (tag, v, _) = gns.tlv()?;
            let text = || String::from_utf8_lossy(v).into_owned();
            match tag {
                0x82 => names.dns.push(text()),
                0x86 => names.uris.push(text()),
                _ => {}
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_rcgen_names() {
        let mut params =
            rcgen::CertificateParams::new(vec!["a.example".into(), "b.example".into()]).unwrap();
        params
            .subject_alt_names
            .push(rcgen::SanType::URI("sip:example.com".try_into().unwrap()));
        params
            .distinguished_name
            .push(rcgen::DnType::CommonName, "The CN");
        let key = rcgen::KeyPair::generate().unwrap();
        let cert = params.self_signed(&key).unwrap();
        let names = cert_names(cert.der()).unwrap();
        assert!(names.has_san);
        assert_eq!(names.dns, ["a.example", "b.example"]);
        assert_eq!(names.uris, ["sip:example.com"]);
        assert_eq!(names.common_name.as_deref(), Some("The CN"));

        let mut params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
        params
            .distinguished_name
            .push(rcgen::DnType::CommonName, "only-cn.example");
        let cert = params.self_signed(&key).unwrap();
        let names = cert_names(cert.der()).unwrap();
        assert!(!names.has_san && names.dns.is_empty());
        assert_eq!(names.common_name.as_deref(), Some("only-cn.example"));
    }

    #[test]
    fn truncated_input_is_an_error_not_a_panic() {
        let key = rcgen::KeyPair::generate().unwrap();
        let params = rcgen::CertificateParams::new(vec!["a.example".into()]).unwrap();
        let der = params.self_signed(&key).unwrap().der().to_vec();
        for n in 0..der.len() {
            assert!(cert_names(&der[..n]).is_err(), "prefix of {n} bytes");
        }
        let mut bad = der.clone();
        for i in 0..bad.len() {
            bad[i] ^= 0xff;
            let _ = cert_names(&bad); // must not panic
            bad[i] ^= 0xff;
        }
        assert_eq!(
            cert_names(&[0x30, 0x85, 0, 0, 0, 0, 1]).unwrap_err().what,
            "unsupported length form"
        );
    }
}
