//! Reading products and versions out of a `User-Agent` header value.
//!
//! RFC 3261 §20.41 (with RFC 2616 §3.8): `User-Agent = "User-Agent" HCOLON server-val *(LWS
//! server-val)`, `server-val = product / comment`, `product = token [SLASH product-version]`,
//! comments in parentheses (nested, with `\` escapes). Real clients also write free-form
//! strings, so the reader accepts:
//!
//! | written | products |
//! |---|---|
//! | `Linphone-Desktop/5.2.1 (Ubuntu 22.04) LinphoneCore/5.2.0` | `Linphone-Desktop` 5.2.1, `LinphoneCore` 5.2.0 |
//! | `baresip v1.0.0` | `baresip` v1.0.0 |
//! | `Zoiper rv2.10.19.4` | `Zoiper` rv2.10.19.4 |
//! | `X-Lite release 1104o stamp 56125` | `X-Lite` 1104o, `stamp` 56125 |
//! | `Grandstream GXP2170 1.0.9.135` | `Grandstream` (none), `GXP2170` 1.0.9.135 |
//!
//! A word without `/` is a product; the word after it is its version when it starts with
//! a digit or is `v`/`V`/`r`/`rv` directly followed by a digit; the words `release`,
//! `version`, `ver` and `build` between a product and such a word are skipped. Comments
//! never hold products. The numeric version inside a version word is found with
//! [`confab_core::policy::Version::find_in`].
//!
//! No allocation: [`products`] iterates over slices of the header value.

/// One product of a User-Agent.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Product<'a> {
    /// The product name (`Linphone-Desktop`).
    pub name: &'a str,
    /// The version text as written (`5.2.1`, `v1.0.0`), if any.
    pub version: Option<&'a str>,
}

/// The products of a User-Agent value, in order.
pub fn products(user_agent: &str) -> Products<'_> {
    Products {
        s: user_agent,
        pos: 0,
    }
}

/// Iterator returned by [`products`].
#[derive(Debug, Clone)]
pub struct Products<'a> {
    s: &'a str,
    pos: usize,
}

impl<'a> Products<'a> {
    /// The next word (skipping whitespace and comments), without consuming it.
    fn peek_word(&self) -> Option<(&'a str, usize)> {
        let b = self.s.as_bytes();
        let mut i = self.pos;
        loop {
            while i < b.len() && (b[i] == b' ' || b[i] == b'\t' || b[i] == b'\r' || b[i] == b'\n') {
                i += 1;
            }
            if i >= b.len() {
                return None;
            }
            if b[i] == b'(' {
                i = skip_comment(b, i);
                continue;
            }
            let start = i;
            while i < b.len() && !matches!(b[i], b' ' | b'\t' | b'\r' | b'\n' | b'(') {
                i += 1;
            }
            // Word boundaries are ASCII bytes, so these are char boundaries.
            return Some((&self.s[start..i], i));
        }
    }
}

/// Index just past the comment starting at `b[i] == b'('` (nested, `\` escapes); the end
/// of input if it is not closed.
fn skip_comment(b: &[u8], mut i: usize) -> usize {
    let mut depth = 0usize;
    while i < b.len() {
        match b[i] {
            b'\\' => i += 1,
            b'(' => depth += 1,
            b')' => {
                depth -= 1;
                if depth == 0 {
                    return i + 1;
                }
            }
            _ => {}
        }
        i += 1;
    }
    b.len()
}

/// A free-form version word: starts with a digit, or `v`, `r` or `rv` then a digit.
fn is_version_word(w: &str) -> bool {
    let b = w.as_bytes();
    let after = if b.first().is_some_and(u8::is_ascii_digit) {
        return true;
    } else if b.len() > 2 && b[..2].eq_ignore_ascii_case(b"rv") {
        2
    } else if b.len() > 1 && (b[0] | 0x20 == b'v' || b[0] | 0x20 == b'r') {
        1
    } else {
        return false;
    };
    b[after].is_ascii_digit()
}

fn is_version_keyword(w: &str) -> bool {
    ["release", "version", "ver", "build"]
        .iter()
        .any(|k| w.eq_ignore_ascii_case(k))
}

impl<'a> Iterator for Products<'a> {
    type Item = Product<'a>;

    fn next(&mut self) -> Option<Product<'a>> {
        loop {
            let (word, end) = self.peek_word()?;
            self.pos = end;
            let word = word.trim_end_matches([',', ';']);
            if let Some((name, version)) = word.split_once('/') {
                if name.is_empty() {
                    continue;
                }
                let version = (!version.is_empty()).then_some(version);
                return Some(Product { name, version });
            }
            if word.is_empty() {
                continue;
            }
            // A free-form product: maybe followed by its version.
            let mut version = None;
            if let Some((next, next_end)) = self.peek_word() {
                if is_version_word(next) {
                    version = Some(next);
                    self.pos = next_end;
                } else if is_version_keyword(next) {
                    let saved = self.pos;
                    self.pos = next_end;
                    match self.peek_word() {
                        Some((v, v_end)) if is_version_word(v) => {
                            version = Some(v);
                            self.pos = v_end;
                        }
                        _ => self.pos = saved,
                    }
                }
            }
            return Some(Product {
                name: word,
                version,
            });
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[track_caller]
    fn check(ua: &str, expected: &[(&str, Option<&str>)]) {
        let got: Vec<(&str, Option<&str>)> = products(ua).map(|p| (p.name, p.version)).collect();
        assert_eq!(got, expected, "{ua}");
    }

    #[test]
    fn rfc_3261_and_free_form_user_agents() {
        check(
            "Softphone/Beta1.5 libsip/2.0",
            &[("Softphone", Some("Beta1.5")), ("libsip", Some("2.0"))],
        );
        check(
            "Linphone-Desktop/5.2.1 (Ubuntu 22.04.3 LTS, Qt 5.15.3) LinphoneCore/5.2.0",
            &[
                ("Linphone-Desktop", Some("5.2.1")),
                ("LinphoneCore", Some("5.2.0")),
            ],
        );
        check(
            "baresip v1.0.0 (x86_64/linux)",
            &[("baresip", Some("v1.0.0"))],
        );
        check("Zoiper rv2.10.19.4", &[("Zoiper", Some("rv2.10.19.4"))]);
        check(
            "X-Lite release 1104o stamp 56125",
            &[("X-Lite", Some("1104o")), ("stamp", Some("56125"))],
        );
        check(
            "Grandstream GXP2170 1.0.9.135",
            &[("Grandstream", None), ("GXP2170", Some("1.0.9.135"))],
        );
        check("MicroSIP/3.21.3", &[("MicroSIP", Some("3.21.3"))]);
        check(
            "Bria release version",
            &[("Bria", None), ("release", None), ("version", None)],
        );
        check("sipp", &[("sipp", None)]);
        check("Odd/ /x (unclosed (nested", &[("Odd", None)]);
        check("(only a comment) ", &[]);
        check("", &[]);
        check("(c \\) still comment) d/1", &[("d", Some("1"))]);
        check(
            "Product/1.0, Other/2;",
            &[("Product", Some("1.0")), ("Other", Some("2"))],
        );
    }
}
