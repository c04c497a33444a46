//! The Client Version Filter: ordered rules over the User-Agent's products and versions.

use confab_core::chain::Reply;
use confab_core::policy::{
    ClientAction, ClientActionKind, ClientVersionPolicy, PolicyError, ProductPattern, Version,
    VersionSpec,
};
use confab_sip::{Message, Method};

use crate::useragent::{Product, products};

/// Products of one User-Agent that rules look at (real headers have one to four).
const MAX_PRODUCTS: usize = 16;

/// Which part of the policy decided.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RuleMatch {
    /// The rule at this index (0-based; `confab client-filter list` shows index + 1).
    Rule(usize),
    /// No rule matched: the default action.
    Default,
}

/// The product a rule matched on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MatchedProduct<'u> {
    /// The product name as the User-Agent writes it.
    pub name: &'u str,
    /// Its version text as written (`v1.0.0`), if any.
    pub version_text: Option<&'u str>,
    /// The numeric version read from it, if any.
    pub version: Option<Version>,
}

/// What [`ClientVersionFilter::test`] found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TestResult<'f, 'u> {
    /// The deciding rule, or the default.
    pub matched: RuleMatch,
    /// The action it takes.
    pub action: &'f ClientAction,
    /// For a rule: the product of the User-Agent it matched.
    pub product: Option<MatchedProduct<'u>>,
    /// What the server answers such a client (on a filtered method outside a dialog): the
    /// exact 403 response, or the Warning value of an upgrade notice.
    pub decision: ClientDecision<'f>,
}

/// What the filter does with a request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ClientDecision<'f> {
    /// Not a filtered method, in a dialog, or an `allow` action.
    Pass,
    /// Answer with this response (403, reason, maybe a Warning with the upgrade URL).
    Refuse(&'f Reply),
    /// Let it through; this `Warning` header value is the upgrade notice for the client.
    PassWithNotice(&'f str),
}

#[derive(Debug)]
struct Compiled {
    action: ClientAction,
    reply: Option<Reply>,
    notice: Option<String>,
}

#[derive(Debug)]
struct Rule {
    product: ProductPattern,
    version: VersionSpec,
    then: Compiled,
}

/// A compiled client version policy. Immutable: a policy change builds a new one (see
/// [`crate::Snapshot`]).
///
/// # Matching
///
/// Rules are tried in order; the first that matches decides, else the default action does
/// (also for requests without a User-Agent). A rule matches when the User-Agent has a
/// product whose name matches the rule's [`ProductPattern`] and the **first** such product's
/// version satisfies the rule's [`VersionSpec`] (so `Linphone* < 5.0` looks at
/// `Linphone-Desktop/5.2.1`, not at a later `LinphoneCore/4.0` of the same header). Only
/// the first 16 products of a header are looked at. How products and versions are read:
/// [`crate::useragent`].
///
/// # Which requests
///
/// REGISTER, SUBSCRIBE, INVITE, MESSAGE and PUBLISH outside a dialog (the requests with
/// which a client signs in or starts something). Requests inside a dialog pass: the dialog
/// was admitted when it started, and cutting it mid-way would only break the call.
///
/// # Responses
///
/// * `block`: `403` with the rule's reason phrase.
/// * `block_with_url`: `403` with the reason phrase and
///   `Warning: 399 <agent> "Client upgrade required: get a supported client at <url>"`.
/// * `allow_with_notice`: the request passes; the notice is the `Warning` value
///   `399 <agent> "<message>: <url>"`, meant for the final response to the client (see
///   [`crate::ClientVersionHandler`] for how far that delivery goes today).
///
/// Why warn-code 399: RFC 3261 §20.43 reserves 3xx warn-codes for SIP, 300–379 are session
/// description and network problems, and 399 is "miscellaneous warning: ... arbitrary
/// information to be presented to a human user or logged. A system receiving this warning
/// MUST NOT take any automated action" — exactly a human-readable upgrade hint. 1xx/2xx
/// codes belong to HTTP and no SIP code means "upgrade". The warn-agent is the configured
/// host name of this server.
#[derive(Debug)]
pub struct ClientVersionFilter {
    rules: Vec<Rule>,
    default: Compiled,
}

/// `"` and `\` escaped as quoted-pairs (RFC 3261 §25.1) for a warn-text.
fn quoted(text: &str) -> String {
    let mut q = String::with_capacity(text.len() + 2);
    q.push('"');
    for c in text.chars() {
        if c == '"' || c == '\\' {
            q.push('\\');
        }
        q.push(c);
    }
    q.push('"');
    q
}

/// Checks a warn-agent: a host[:port] or a token (RFC 3261 §20.43).
pub(crate) fn check_warn_agent(agent: &str) -> Result<(), PolicyError> {
    let ok = !agent.is_empty()
        && agent.len() <= 255
        && agent
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "-.!%*_+`'~:[]".contains(c));
    if ok {
        Ok(())
    } else {
        Err(PolicyError {
            rule: None,
            field: "warn_agent",
            message: format!("'{agent}' is not a host name or token usable as a SIP warn-agent"),
        })
    }
}

impl Compiled {
    fn new(action: &ClientAction, agent: &str) -> Compiled {
        let warning = |text: String| format!("399 {agent} {}", quoted(&text));
        let url = action.url.as_deref().unwrap_or_default();
        let (reply, notice) = match action.action {
            ClientActionKind::Allow => (None, None),
            ClientActionKind::Block => {
                (Some(Reply::with_reason(403, action.reason_phrase())), None)
            }
            ClientActionKind::BlockWithUrl => (
                Some(Reply::with_reason(403, action.reason_phrase()).header(
                    "Warning",
                    warning(format!(
                        "Client upgrade required: get a supported client at {url}"
                    )),
                )),
                None,
            ),
            ClientActionKind::AllowWithNotice => {
                let msg = action
                    .message
                    .as_deref()
                    .unwrap_or("A newer version of your client is available");
                (None, Some(warning(format!("{msg}: {url}"))))
            }
        };
        Compiled {
            action: action.clone(),
            reply,
            notice,
        }
    }

    fn decision(&self) -> ClientDecision<'_> {
        match (&self.reply, &self.notice) {
            (Some(r), _) => ClientDecision::Refuse(r),
            (None, Some(n)) => ClientDecision::PassWithNotice(n),
            (None, None) => ClientDecision::Pass,
        }
    }
}

impl ClientVersionFilter {
    /// Compiles a policy. `warn_agent` is the host name put in Warning headers.
    ///
    /// # Errors
    /// [`PolicyError`] for an invalid rule (a store only hands out validated policies, so
    /// this means a caller built one by hand) or an invalid `warn_agent`.
    pub fn compile(
        policy: &ClientVersionPolicy,
        warn_agent: &str,
    ) -> Result<ClientVersionFilter, PolicyError> {
        check_warn_agent(warn_agent)?;
        let rules = policy
            .rules
            .iter()
            .enumerate()
            .map(|(i, r)| {
                let (product, version) = r.parse(i)?;
                Ok(Rule {
                    product,
                    version,
                    then: Compiled::new(&r.then, warn_agent),
                })
            })
            .collect::<Result<Vec<_>, PolicyError>>()?;
        policy.default.validate(None)?;
        Ok(ClientVersionFilter {
            rules,
            default: Compiled::new(&policy.default, warn_agent),
        })
    }

    /// A filter that lets everything through (the default policy).
    pub fn allow_all() -> ClientVersionFilter {
        ClientVersionFilter {
            rules: Vec::new(),
            default: Compiled::new(&ClientAction::allow(), "-"),
        }
    }

    /// Number of rules.
    pub fn rule_count(&self) -> usize {
        self.rules.len()
    }

    /// Whether the filter looks at requests of this method.
    pub fn applies_to(method: &Method) -> bool {
        matches!(
            method,
            Method::Register
                | Method::Subscribe
                | Method::Invite
                | Method::Message
                | Method::Publish
        )
    }

    fn find<'u>(&self, user_agent: Option<&'u str>) -> (RuleMatch, Option<MatchedProduct<'u>>) {
        let Some(ua) = user_agent else {
            return (RuleMatch::Default, None);
        };
        // Read the products once (on the stack); rules look at the first MAX_PRODUCTS.
        let mut seen = [Product {
            name: "",
            version: None,
        }; MAX_PRODUCTS];
        let mut n = 0;
        for p in products(ua).take(MAX_PRODUCTS) {
            seen[n] = p;
            n += 1;
        }
        let seen = &seen[..n];
        for (i, rule) in self.rules.iter().enumerate() {
            let Some(p) = seen.iter().find(|p| rule.product.matches(p.name)) else {
                continue;
            };
            let version = p.version.and_then(Version::find_in);
            if rule.version.matches(version.as_ref()) {
                return (
                    RuleMatch::Rule(i),
                    Some(MatchedProduct {
                        name: p.name,
                        version_text: p.version,
                        version,
                    }),
                );
            }
        }
        (RuleMatch::Default, None)
    }

    fn compiled(&self, m: RuleMatch) -> &Compiled {
        match m {
            RuleMatch::Rule(i) => &self.rules[i].then,
            RuleMatch::Default => &self.default,
        }
    }

    /// Which rule decides for this User-Agent (`None`: no header) and its action. This is
    /// `confab client-filter test "User-Agent"`.
    pub fn test<'f, 'u>(&'f self, user_agent: Option<&'u str>) -> TestResult<'f, 'u> {
        let (matched, product) = self.find(user_agent);
        let compiled = self.compiled(matched);
        TestResult {
            matched,
            action: &compiled.action,
            product,
            decision: compiled.decision(),
        }
    }

    /// The decision for a request (see the type's documentation for which requests are
    /// looked at). A User-Agent header that is not text counts as absent.
    pub fn check(&self, request: &Message) -> ClientDecision<'_> {
        let filtered = request
            .method()
            .is_some_and(ClientVersionFilter::applies_to);
        let in_dialog = request
            .to()
            .and_then(Result::ok)
            .is_some_and(|t| t.tag().is_some());
        if !filtered || in_dialog {
            return ClientDecision::Pass;
        }
        let ua = request.user_agent().and_then(Result::ok);
        let (matched, _) = self.find(ua);
        self.compiled(matched).decision()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use confab_core::policy::ClientVersionRule;

    const URL: &str = "https://example.com/clients";

    fn filter() -> ClientVersionFilter {
        let rules = vec![
            ClientVersionRule::new(
                "Linphone*",
                "< 5.0",
                ClientAction::block(Some("Linphone too old")),
            ),
            ClientVersionRule::new("baresip", "<= 1.0", ClientAction::block_with_url(URL, None)),
            ClientVersionRule::new(
                "Zoiper",
                "2.*",
                ClientAction::allow_with_notice(URL, Some("Zoiper 3 is \"out\"")),
            ),
            ClientVersionRule::new("MicroSIP", "!= 3.21.3", ClientAction::block(None)),
            ClientVersionRule::new("sipp", "*", ClientAction::allow()),
            ClientVersionRule::new("Evil*", "*", ClientAction::block(None)),
        ];
        ClientVersionFilter::compile(
            &ClientVersionPolicy {
                rules,
                default: ClientAction::block(Some("Unknown client")),
            },
            "sip.example.com",
        )
        .unwrap()
    }

    #[track_caller]
    fn check(ua: Option<&str>, rule: Option<usize>, kind: ClientActionKind) {
        let f = filter();
        let t = f.test(ua);
        let want = rule.map_or(RuleMatch::Default, RuleMatch::Rule);
        assert_eq!((t.matched, t.action.action), (want, kind), "{ua:?}");
        assert_eq!(t.product.is_some(), rule.is_some());
    }

    #[test]
    fn rules_decide_in_order_with_default() {
        use ClientActionKind::*;
        for (ua, rule, kind) in [
            (Some("Linphone-Desktop/4.4.0 (Windows)"), Some(0), Block),
            (Some("Linphone/4.99"), Some(0), Block),
            (Some("Linphone-Desktop/5.2.1 LinphoneCore/4.0"), None, Block), // first Linphone* is 5.2.1
            (Some("linphone/5.0"), None, Block),
            (Some("baresip v1.0.0"), Some(1), BlockWithUrl),
            (Some("baresip v0.9"), Some(1), BlockWithUrl),
            (Some("baresip v2.0.0 (x86_64/linux)"), None, Block),
            (Some("Zoiper rv2.10.19.4"), Some(2), AllowWithNotice),
            (Some("Zoiper rv3.0"), None, Block),
            (Some("MicroSIP/3.21.3"), None, Block),
            (Some("MicroSIP/3.21.4"), Some(3), Block),
            (Some("MicroSIP"), None, Block), // no version: != does not match unknown
            (Some("sipp"), Some(4), Allow),
            (Some("EvilPhone/1"), Some(5), Block),
            (Some(""), None, Block),
            (None, None, Block),
        ] {
            check(ua, rule, kind);
        }
        let f = filter();
        let t = f.test(Some("Zoiper rv2.10.19.4"));
        let p = t.product.unwrap();
        assert_eq!((p.name, p.version_text), ("Zoiper", Some("rv2.10.19.4")));
        assert_eq!(p.version.unwrap().to_string(), "2.10.19.4");
    }

    fn request(method: &str, ua: Option<&str>, to_tag: bool) -> Message {
        let ua = ua
            .map(|u| format!("User-Agent: {u}\r\n"))
            .unwrap_or_default();
        let tag = if to_tag { ";tag=t" } else { "" };
        let text = format!(
            "{method} sip:bob@example.com SIP/2.0\r\nVia: SIP/2.0/UDP 192.0.2.1;branch=z9hG4bK1\r\n\
             From: <sip:alice@example.com>;tag=a\r\nTo: <sip:bob@example.com>{tag}\r\nCall-ID: c\r\n\
             CSeq: 1 {method}\r\nMax-Forwards: 70\r\n{ua}Content-Length: 0\r\n\r\n"
        );
        confab_sip::parse_datagram(text.into(), &confab_sip::Limits::DEFAULT).unwrap()
    }

    #[test]
    fn responses_and_notices() {
        let f = filter();
        let ClientDecision::Refuse(r) = f.check(&request("REGISTER", Some("Linphone/4.0"), false))
        else {
            panic!()
        };
        assert_eq!(
            (r.status, r.reason.as_deref()),
            (403, Some("Linphone too old"))
        );
        assert!(r.headers.is_empty());

        let ClientDecision::Refuse(r) = f.check(&request("INVITE", Some("baresip v1.0.0"), false))
        else {
            panic!()
        };
        assert_eq!(
            (r.status, r.reason.as_deref()),
            (403, Some("Client upgrade required"))
        );
        assert_eq!(
            r.headers,
            [(
                "Warning".to_owned(),
                format!(
                    "399 sip.example.com \"Client upgrade required: get a supported client at {URL}\""
                )
            )]
        );

        let d = f.check(&request("MESSAGE", Some("Zoiper rv2.1"), false));
        assert_eq!(
            d,
            ClientDecision::PassWithNotice(&format!(
                "399 sip.example.com \"Zoiper 3 is \\\"out\\\": {URL}\""
            ))
        );
        assert_eq!(
            f.check(&request("SUBSCRIBE", Some("sipp"), false)),
            ClientDecision::Pass
        );
        // Default action for PUBLISH without a User-Agent.
        assert!(matches!(
            f.check(&request("PUBLISH", None, false)),
            ClientDecision::Refuse(r) if r.reason.as_deref() == Some("Unknown client")
        ));
        // Methods outside the list and in-dialog requests pass.
        for (m, tag) in [
            ("OPTIONS", false),
            ("BYE", true),
            ("NOTIFY", false),
            ("INVITE", true),
        ] {
            assert_eq!(
                f.check(&request(m, Some("Linphone/1.0"), tag)),
                ClientDecision::Pass,
                "{m}"
            );
        }
    }

    #[test]
    fn compile_refuses_bad_input() {
        let p = ClientVersionPolicy::default();
        assert_eq!(
            ClientVersionFilter::compile(&p, "bad agent")
                .unwrap_err()
                .field,
            "warn_agent"
        );
        let bad = ClientVersionPolicy {
            rules: vec![ClientVersionRule::new("x", ">> 1", ClientAction::allow())],
            default: ClientAction::allow(),
        };
        let e = ClientVersionFilter::compile(&bad, "h").unwrap_err();
        assert_eq!((e.rule, e.field), (Some(0), "version"));
        let f = ClientVersionFilter::allow_all();
        assert_eq!(
            f.check(&request("REGISTER", None, false)),
            ClientDecision::Pass
        );
        assert_eq!(f.rule_count(), 0);
    }
}
