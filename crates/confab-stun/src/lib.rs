//! Sans-IO STUN and TURN for Confab.
//!
//! What it does:
//! - [`message`]: STUN messages per RFC 8489: zero-copy decoding over a byte slice,
//!   an encoder appending to a caller buffer, MESSAGE-INTEGRITY, MESSAGE-INTEGRITY-SHA256,
//!   FINGERPRINT, detection of unknown comprehension-required attributes (for 420).
//! - [`attr`]: attribute types of RFC 8489 and RFC 8656 with typed value codecs whose
//!   errors name the attribute.
//! - [`framing`]: TURN ChannelData framing (with stream padding), demultiplexing STUN vs
//!   ChannelData vs other traffic on one port, and cutting messages from TCP/TLS streams.
//! - [`turn`]: a sans-IO TURN server: allocations, permissions, channels, long-term
//!   credential checks, quotas, peer policy, usage records; driven by `now`.
//! - [`credentials`]: long-term keys (MD5, SHA-256), USERHASH, the nonce cookie, TURN REST
//!   API credentials (mint and check) and RFC 7065 TURN URIs.
//!
//! What it does not do: sockets, clocks, randomness. Time and random bytes are inputs.
//! SASLprep/OpaqueString preparation of user-supplied strings is not implemented (inputs
//! are used byte for byte, which is exact for ASCII credentials).

pub mod attr;
pub mod credentials;
pub mod framing;
pub mod message;
pub mod turn;

#[doc(hidden)]
pub mod fuzz_support;

pub use attr::{AttrType, AttributeError, ErrorCode, PasswordAlgorithm};
pub use credentials::{
    LongTermKey, RestCredentials, SecurityFeatures, UriTransport, mint_rest_credentials, turn_uri,
};
pub use framing::{ChannelDataError, Frame, PacketKind, classify, decode_channel_data, frame_len};
pub use message::{
    Class, DecodeError, EncodeError, Encoder, IntegrityError, Message, Method, TransactionId,
};
