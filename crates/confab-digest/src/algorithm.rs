//! Digest algorithms (RFC 7616 §3.2, RFC 8760 §2) and HA1 values.

use std::fmt;

use md5::Md5;
use sha2::{Digest as _, Sha256, Sha512_256};

/// The hash function under a digest [`Algorithm`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum HashKind {
    /// MD5 (RFC 1321): 16-byte output. Kept for old clients (RFC 8760 §2 allows it).
    Md5,
    /// SHA-256 (FIPS 180-4): 32-byte output.
    Sha256,
    /// SHA-512/256 (FIPS 180-4): 32-byte output.
    Sha512_256,
}

impl HashKind {
    /// Every hash kind, in the order the HA1 set stores them.
    pub const ALL: [HashKind; 3] = [HashKind::Md5, HashKind::Sha256, HashKind::Sha512_256];

    /// Output length in bytes (the hex form is twice as long).
    pub const fn output_len(self) -> usize {
        match self {
            HashKind::Md5 => 16,
            HashKind::Sha256 | HashKind::Sha512_256 => 32,
        }
    }

    /// Hashes the concatenation of `parts` into a [`Hash`].
    pub fn hash_parts(self, parts: &[&[u8]]) -> Hash {
        let mut out = Hash {
            kind: self,
            bytes: [0; 32],
        };
        match self {
            HashKind::Md5 => {
                let mut h = Md5::new();
                for p in parts {
                    h.update(p);
                }
                out.bytes[..16].copy_from_slice(&h.finalize());
            }
            HashKind::Sha256 => {
                let mut h = Sha256::new();
                for p in parts {
                    h.update(p);
                }
                out.bytes.copy_from_slice(&h.finalize());
            }
            HashKind::Sha512_256 => {
                let mut h = Sha512_256::new();
                for p in parts {
                    h.update(p);
                }
                out.bytes.copy_from_slice(&h.finalize());
            }
        }
        out
    }
}

/// A digest algorithm as named in the `algorithm` auth-param.
///
/// The `-sess` variants compute the session HA1 as `H(H(user:realm:password):nonce:cnonce)`
/// (RFC 7616 §3.4.2); the stored HA1 is the same as for the plain variant.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Algorithm {
    /// `MD5`; also the meaning of an absent `algorithm` parameter.
    Md5,
    /// `MD5-sess`.
    Md5Sess,
    /// `SHA-256`.
    Sha256,
    /// `SHA-256-sess`.
    Sha256Sess,
    /// `SHA-512-256`.
    Sha512_256,
    /// `SHA-512-256-sess`.
    Sha512_256Sess,
}

impl Algorithm {
    /// Every algorithm, strongest first.
    pub const ALL: [Algorithm; 6] = [
        Algorithm::Sha512_256,
        Algorithm::Sha512_256Sess,
        Algorithm::Sha256,
        Algorithm::Sha256Sess,
        Algorithm::Md5,
        Algorithm::Md5Sess,
    ];

    /// The token as written on the wire (RFC 7616 §6.1 registry spelling).
    pub const fn as_str(self) -> &'static str {
        match self {
            Algorithm::Md5 => "MD5",
            Algorithm::Md5Sess => "MD5-sess",
            Algorithm::Sha256 => "SHA-256",
            Algorithm::Sha256Sess => "SHA-256-sess",
            Algorithm::Sha512_256 => "SHA-512-256",
            Algorithm::Sha512_256Sess => "SHA-512-256-sess",
        }
    }

    /// Parses an `algorithm` token, ignoring ASCII case. `None` for an unknown algorithm.
    pub fn from_token(token: &str) -> Option<Algorithm> {
        Algorithm::ALL
            .into_iter()
            .find(|a| a.as_str().eq_ignore_ascii_case(token))
    }

    /// The hash function under this algorithm.
    pub const fn hash_kind(self) -> HashKind {
        match self {
            Algorithm::Md5 | Algorithm::Md5Sess => HashKind::Md5,
            Algorithm::Sha256 | Algorithm::Sha256Sess => HashKind::Sha256,
            Algorithm::Sha512_256 | Algorithm::Sha512_256Sess => HashKind::Sha512_256,
        }
    }

    /// Whether this is a `-sess` variant.
    pub const fn is_session(self) -> bool {
        matches!(
            self,
            Algorithm::Md5Sess | Algorithm::Sha256Sess | Algorithm::Sha512_256Sess
        )
    }
}

impl fmt::Display for Algorithm {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A hash output of up to 32 bytes, tagged with its [`HashKind`]. No allocation.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct Hash {
    kind: HashKind,
    bytes: [u8; 32],
}

impl Hash {
    /// Builds a hash from raw bytes; `None` when the length does not fit `kind`.
    pub fn from_bytes(kind: HashKind, raw: &[u8]) -> Option<Hash> {
        if raw.len() != kind.output_len() {
            return None;
        }
        let mut bytes = [0; 32];
        bytes[..raw.len()].copy_from_slice(raw);
        Some(Hash { kind, bytes })
    }

    /// Parses the lowercase or uppercase hex form; `None` on a wrong length or a non-hex digit.
    pub fn from_hex(kind: HashKind, hex: &str) -> Option<Hash> {
        let hex = hex.as_bytes();
        if hex.len() != 2 * kind.output_len() {
            return None;
        }
        let mut bytes = [0; 32];
        for (i, pair) in hex.chunks_exact(2).enumerate() {
            bytes[i] = (hex_val(pair[0])? << 4) | hex_val(pair[1])?;
        }
        Some(Hash { kind, bytes })
    }

    /// The hash function that produced this value.
    pub const fn kind(&self) -> HashKind {
        self.kind
    }

    /// The raw bytes.
    pub fn as_bytes(&self) -> &[u8] {
        &self.bytes[..self.kind.output_len()]
    }

    /// The lowercase hex form, as digest computations use it (RFC 7616 §3.4).
    pub fn to_hex(&self) -> HexDigest {
        let mut out = HexDigest {
            buf: [0; 64],
            len: 0,
        };
        for (i, b) in self.as_bytes().iter().enumerate() {
            out.buf[2 * i] = HEX[usize::from(b >> 4)];
            out.buf[2 * i + 1] = HEX[usize::from(b & 0x0f)];
        }
        out.len = 2 * self.kind.output_len() as u8;
        out
    }
}

impl fmt::Debug for Hash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Hashes may be HA1 values, which are password equivalents: never print them.
        write!(f, "Hash({:?}, <redacted>)", self.kind)
    }
}

const HEX: &[u8; 16] = b"0123456789abcdef";

fn hex_val(c: u8) -> Option<u8> {
    match c {
        b'0'..=b'9' => Some(c - b'0'),
        b'a'..=b'f' => Some(c - b'a' + 10),
        b'A'..=b'F' => Some(c - b'A' + 10),
        _ => None,
    }
}

/// A lowercase hex digest of up to 64 characters, on the stack.
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct HexDigest {
    buf: [u8; 64],
    len: u8,
}

impl HexDigest {
    /// The hex text.
    pub fn as_str(&self) -> &str {
        // Only ASCII hex digits are ever written into `buf`.
        std::str::from_utf8(&self.buf[..usize::from(self.len)]).unwrap_or("")
    }

    /// Compares with `other` ignoring ASCII case, in time independent of where they differ.
    pub fn ct_eq_ignore_case(&self, other: &str) -> bool {
        let a = &self.buf[..usize::from(self.len)];
        let b = other.as_bytes();
        if a.len() != b.len() {
            return false;
        }
        let mut diff = 0u8;
        for (x, y) in a.iter().zip(b) {
            diff |= x ^ y.to_ascii_lowercase();
        }
        diff == 0
    }
}

impl fmt::Display for HexDigest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl fmt::Debug for HexDigest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "HexDigest({})", self.as_str())
    }
}

/// `H(username ":" realm ":" password)` (RFC 7616 §3.4.2) for one hash kind.
///
/// This is a password equivalent for its realm: store it like a secret, never log it.
pub fn ha1(kind: HashKind, username: &str, realm: &str, password: &str) -> Hash {
    kind.hash_parts(&[
        username.as_bytes(),
        b":",
        realm.as_bytes(),
        b":",
        password.as_bytes(),
    ])
}

/// The HA1 of one account for every [`HashKind`], so any algorithm a client picks can be
/// verified without the clear password.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct Ha1Set {
    md5: Hash,
    sha256: Hash,
    sha512_256: Hash,
}

impl Ha1Set {
    /// Computes the three HA1 values (three hash computations, no more).
    pub fn compute(username: &str, realm: &str, password: &str) -> Ha1Set {
        Ha1Set {
            md5: ha1(HashKind::Md5, username, realm, password),
            sha256: ha1(HashKind::Sha256, username, realm, password),
            sha512_256: ha1(HashKind::Sha512_256, username, realm, password),
        }
    }

    /// Builds a set from stored values; `None` when a value has the wrong kind.
    pub fn from_parts(md5: Hash, sha256: Hash, sha512_256: Hash) -> Option<Ha1Set> {
        (md5.kind() == HashKind::Md5
            && sha256.kind() == HashKind::Sha256
            && sha512_256.kind() == HashKind::Sha512_256)
            .then_some(Ha1Set {
                md5,
                sha256,
                sha512_256,
            })
    }

    /// The HA1 for one hash kind.
    pub const fn get(&self, kind: HashKind) -> &Hash {
        match kind {
            HashKind::Md5 => &self.md5,
            HashKind::Sha256 => &self.sha256,
            HashKind::Sha512_256 => &self.sha512_256,
        }
    }
}

impl fmt::Debug for Ha1Set {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Ha1Set(<redacted>)")
    }
}
