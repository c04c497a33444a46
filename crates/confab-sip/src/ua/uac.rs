//! The UAC core (RFC 3261 §8.1, §12.2.1, §13.2.2.4, §22.2).

use crate::dialog::{Dialog, DialogError};
use crate::message::Message;
use crate::method::Method;
use crate::name::HeaderName;
use crate::{BuildError, RequestBuilder};

use super::auth::{self, AuthError, Credential, NonceCounts};
use super::{Entropy, apply_route_set};

/// Who the UAC is and how it is reached.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UacConfig {
    /// The address of record used in From, e.g. `sip:alice@example.com`.
    pub local_uri: String,
    /// Display name for From (written quoted), if any.
    pub display_name: Option<String>,
    /// The Contact value, e.g. `<sip:alice@192.0.2.1:5060;transport=udp>`.
    pub contact: String,
    /// Via transport token: `UDP`, `TCP`, `TLS`, `WS`, `WSS`.
    pub transport: String,
    /// Via sent-by, e.g. `192.0.2.1:5060`.
    pub sent_by: String,
    /// Pre-existing route set (outbound proxy), e.g. `["<sip:proxy.example.com;lr>"]`.
    pub outbound_route: Vec<String>,
    /// Max-Forwards for new requests (70, §8.1.1.6).
    pub max_forwards: u8,
    /// Digest credentials.
    pub credentials: Vec<Credential>,
}

impl UacConfig {
    /// A configuration with defaults for everything but identity and transport.
    #[must_use]
    pub fn new(local_uri: &str, contact: &str, transport: &str, sent_by: &str) -> UacConfig {
        UacConfig {
            local_uri: local_uri.to_owned(),
            display_name: None,
            contact: contact.to_owned(),
            transport: transport.to_owned(),
            sent_by: sent_by.to_owned(),
            outbound_route: Vec::new(),
            max_forwards: 70,
            credentials: Vec::new(),
        }
    }
}

/// Builds the requests of a user agent client. Holds only configuration and the digest
/// nonce counts.
#[derive(Debug, Clone)]
pub struct UacCore {
    config: UacConfig,
    nonce_counts: NonceCounts,
}

fn needs_contact(m: &Method) -> bool {
    matches!(
        m,
        Method::Invite
            | Method::Subscribe
            | Method::Refer
            | Method::Register
            | Method::Notify
            | Method::Update
    )
}

impl UacCore {
    /// A UAC core.
    #[must_use]
    pub fn new(config: UacConfig) -> UacCore {
        UacCore {
            config,
            nonce_counts: NonceCounts::default(),
        }
    }

    /// The configuration.
    #[must_use]
    pub fn config(&self) -> &UacConfig {
        &self.config
    }

    /// A Via value with a fresh branch.
    #[must_use]
    pub fn via(&self, rand: &Entropy) -> String {
        format!(
            "SIP/2.0/{} {};branch={};rport",
            self.config.transport,
            self.config.sent_by,
            rand.branch()
        )
    }

    fn local_from(&self, tag: &str) -> String {
        match &self.config.display_name {
            Some(d) => format!("\"{d}\" <{}>;tag={tag}", self.config.local_uri),
            None => format!("<{}>;tag={tag}", self.config.local_uri),
        }
    }

    /// A request outside any dialog (§8.1.1): Request-URI `target` (after the outbound
    /// route set is applied), To `to` (a name-addr without tag, e.g. `<sip:bob@b.com>`),
    /// From with a fresh tag, a fresh Call-ID `<random>@<sent-by host>`, CSeq 1, Via with a
    /// fresh branch, Max-Forwards, Contact for methods that establish a target. Add a body
    /// or extra headers to the returned builder, then `build()`.
    #[must_use]
    pub fn request(
        &self,
        method: Method,
        target: &str,
        to: &str,
        rand: &Entropy,
    ) -> RequestBuilder {
        let host = self.config.sent_by.split(':').next().unwrap_or("invalid");
        let call_id = format!("{}@{host}", rand.call_id());
        self.request_in_call(method, target, to, &call_id, &rand.tag(), 1, rand)
    }

    /// A request outside any dialog that reuses a Call-ID and From tag (REGISTER refreshes
    /// keep both, §10.2.4) with the given CSeq.
    #[must_use]
    #[allow(clippy::too_many_arguments)]
    pub fn request_in_call(
        &self,
        method: Method,
        target: &str,
        to: &str,
        call_id: &str,
        from_tag: &str,
        cseq: u32,
        rand: &Entropy,
    ) -> RequestBuilder {
        let (ruri, routes) = apply_route_set(target, &self.config.outbound_route);
        let contact = needs_contact(&method);
        let mut b = RequestBuilder::new(method, &ruri)
            .via(&self.via(rand))
            .max_forwards(self.config.max_forwards)
            .from(&self.local_from(from_tag))
            .to(to)
            .call_id(call_id)
            .cseq(cseq);
        for r in &routes {
            b = b.route(r);
        }
        if contact {
            b = b.contact(&self.config.contact);
        }
        b
    }

    /// A request inside `dialog` (§12.2.1.1): its route set, remote target, tags and next
    /// CSeq, a fresh Via branch, our Contact for target refresh requests.
    ///
    /// # Errors
    /// [`DialogError::Terminated`].
    pub fn in_dialog(
        &self,
        dialog: &mut Dialog,
        method: Method,
        rand: &Entropy,
    ) -> Result<RequestBuilder, DialogError> {
        let contact = needs_contact(&method);
        let mut b = dialog
            .request(method, None)?
            .via(&self.via(rand))
            .max_forwards(self.config.max_forwards);
        if contact {
            b = b.contact(&self.config.contact);
        }
        Ok(b)
    }

    /// The ACK for a 2xx to INVITE (§13.2.2.4): built like an in-dialog request, CSeq
    /// number of the INVITE, a fresh branch. Send it with
    /// [`crate::transaction::TransactionLayer::send_stateless`], and again for every
    /// retransmission of the 2xx.
    ///
    /// # Errors
    /// [`DialogError::Build`].
    pub fn ack_for_2xx(
        &self,
        dialog: &mut Dialog,
        invite_cseq: u32,
        rand: &Entropy,
    ) -> Result<Message, DialogError> {
        Ok(dialog
            .request(Method::Ack, Some(invite_cseq))?
            .via(&self.via(rand))
            .max_forwards(self.config.max_forwards)
            .build()?)
    }

    /// Answer a 401/407 (§22.2, RFC 8760): a copy of `request` with a new branch, CSeq + 1
    /// and one Authorization / Proxy-Authorization per challenged realm, each answering the
    /// strongest algorithm offered for that realm that this core supports (SHA-512-256,
    /// then SHA-256, then MD5; `-sess` variants after their base). Send it on a new client
    /// transaction.
    ///
    /// # Errors
    /// [`AuthError`]: no usable challenge, no credentials for the realm, or the same nonce
    /// rejected our credentials already (wrong password: do not loop).
    pub fn authorize(
        &mut self,
        request: &Message,
        challenge: &Message,
        rand: &Entropy,
    ) -> Result<Message, AuthError> {
        let status = challenge.status().unwrap_or(0);
        let (challenge_header, answer_header) = match status {
            401 => (HeaderName::WwwAuthenticate, HeaderName::Authorization),
            407 => (
                HeaderName::ProxyAuthenticate,
                HeaderName::ProxyAuthorization,
            ),
            s => return Err(AuthError::NotAChallenge(s)),
        };
        let answers = auth::answer(
            request,
            challenge,
            challenge_header,
            answer_header,
            &self.config.credentials,
            &mut self.nonce_counts,
            rand,
        )?;
        let mut out = request.clone();
        out.remove_header(answer_header);
        for a in &answers {
            out.push_header(answer_header, a)
                .map_err(AuthError::Build)?;
        }
        let cseq = request
            .cseq()
            .and_then(Result::ok)
            .ok_or(AuthError::Build(BuildError::Missing(HeaderName::CSeq)))?;
        let cseq_value = format!("{} {}", cseq.seq.wrapping_add(1), cseq.method);
        out.set_header(HeaderName::CSeq, &cseq_value)
            .map_err(AuthError::Build)?;
        out.replace_top_via(&self.via(rand))
            .map_err(AuthError::Build)?;
        Ok(out)
    }
}
