//! Organisation policy of the filter applications — the Client Version Filter and the
//! Intelligent IM Filter — and the [`PolicyStore`] port that keeps it in the database.
//!
//! What it does: defines the policy records as plain, serde-friendly data (what an admin
//! writes through the CLI or the admin API), the typed pieces they are made of
//! ([`Version`], [`VersionSpec`], [`ProductPattern`]) with their parsers and matching rules,
//! and one validation per policy ([`ClientVersionPolicy::validated`],
//! [`ImFilterPolicy::validated`]) that every store implementation runs before a write, so a
//! stored policy is always one the filters can apply. An invalid rule is refused with a
//! [`PolicyError`] naming the rule (1-based, as `confab client-filter list` numbers them)
//! and the field; it converts to [`StoreError::Invalid`].
//!
//! What it does not do: apply the policy (the `confab-filters` role does), store it (the
//! adapters do), or read any clock.
//!
//! # Why the policy lives in the database
//!
//! Organisation policy is shared by every front end of a pool, so it lives in the database,
//! not in a node's TOML file (ARCHITECTURE.md invariant). Each policy carries a version
//! counter that every write increments; front ends poll [`PolicyStore::policy_versions`]
//! (one tiny read) and reload only what changed.

use std::cmp::Ordering;
use std::fmt;
use std::hash::{Hash, Hasher};

use async_trait::async_trait;
use serde::{Deserialize, Serialize};

use crate::{StoreError, Timestamp};

/// Most rules a client version policy may hold.
pub const MAX_CLIENT_VERSION_RULES: usize = 500;
/// Most file extensions the IM filter's file rule may list.
pub const MAX_BLOCKED_EXTENSIONS: usize = 200;

// ---- errors ------------------------------------------------------------------------------

/// A policy value that cannot be applied. The caller's input is wrong; nothing was written.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{}{field}: {message}", RuleLabel(*rule))]
pub struct PolicyError {
    /// Index (0-based) of the client version rule at fault, if the error is in a rule.
    pub rule: Option<usize>,
    /// The field at fault (`version`, `url`, `urls.prefix`, `files.extensions` ...).
    pub field: &'static str,
    /// What is wrong with it.
    pub message: String,
}

struct RuleLabel(Option<usize>);

impl fmt::Display for RuleLabel {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.0 {
            Some(i) => write!(f, "rule {}: ", i + 1),
            None => Ok(()),
        }
    }
}

impl PolicyError {
    fn new(rule: Option<usize>, field: &'static str, message: impl Into<String>) -> PolicyError {
        PolicyError {
            rule,
            field,
            message: message.into(),
        }
    }
}

impl From<PolicyError> for StoreError {
    /// `Invalid { field, message }` where the message names the rule (`rule 3: ...`).
    fn from(e: PolicyError) -> StoreError {
        StoreError::Invalid {
            field: e.field,
            message: format!("{}{}", RuleLabel(e.rule), e.message),
        }
    }
}

// ---- versions ----------------------------------------------------------------------------

/// A dotted numeric version (`5`, `5.2.1`, `2.10.19.4`), compared component by component as
/// numbers, missing components counting as 0: `5 == 5.0 == 5.0.0`, `4.10 > 4.9`.
///
/// At most [`Version::MAX_PARTS`] components; each saturates at `u32::MAX`. No heap.
#[derive(Clone, Copy)]
pub struct Version {
    parts: [u32; Version::MAX_PARTS],
    len: u8,
}

impl Version {
    /// Most components kept.
    pub const MAX_PARTS: usize = 8;

    /// Parses a version as an admin writes it in a rule: digits separated by single dots
    /// (`4`, `4.2.1`), nothing else.
    ///
    /// # Errors
    /// A message saying what is wrong.
    pub fn parse(s: &str) -> Result<Version, String> {
        if s.is_empty() {
            return Err("empty version".into());
        }
        let mut v = Version {
            parts: [0; Version::MAX_PARTS],
            len: 0,
        };
        for comp in s.split('.') {
            if comp.is_empty() || !comp.bytes().all(|b| b.is_ascii_digit()) {
                return Err(format!(
                    "'{s}' is not a dotted numeric version (digits separated by dots, like 4.2.1)"
                ));
            }
            if usize::from(v.len) == Version::MAX_PARTS {
                return Err(format!(
                    "'{s}' has more than {} components",
                    Version::MAX_PARTS
                ));
            }
            v.parts[usize::from(v.len)] = saturating_number(comp.as_bytes());
            v.len += 1;
        }
        Ok(v)
    }

    /// Finds the version inside a free-form version token from a `User-Agent`: the first run
    /// of digits, with the dot-separated digit runs that follow it (`v1.0.0` → 1.0.0,
    /// `rv2.10.19.4-beta` → 2.10.19.4, `Beta1.5` → 1.5, `5.2.1-rc1` → 5.2.1). Components past
    /// [`Version::MAX_PARTS`] are ignored. `None` when there is no digit.
    pub fn find_in(s: &str) -> Option<Version> {
        let b = s.as_bytes();
        let start = b.iter().position(u8::is_ascii_digit)?;
        let mut v = Version {
            parts: [0; Version::MAX_PARTS],
            len: 0,
        };
        let mut i = start;
        loop {
            let run = b[i..].iter().take_while(|c| c.is_ascii_digit()).count();
            if usize::from(v.len) < Version::MAX_PARTS {
                v.parts[usize::from(v.len)] = saturating_number(&b[i..i + run]);
                v.len += 1;
            }
            i += run;
            if i + 1 < b.len() && b[i] == b'.' && b[i + 1].is_ascii_digit() {
                i += 1;
            } else {
                break;
            }
        }
        Some(v)
    }

    /// The components as written.
    pub fn parts(&self) -> &[u32] {
        &self.parts[..usize::from(self.len)]
    }

    /// Component `i`, 0 past the end.
    fn at(&self, i: usize) -> u32 {
        if i < usize::from(self.len) {
            self.parts[i]
        } else {
            0
        }
    }

    /// Whether the first components are exactly `prefix`'s (missing ones count as 0).
    pub fn starts_with(&self, prefix: &Version) -> bool {
        (0..usize::from(prefix.len)).all(|i| self.at(i) == prefix.parts[i])
    }
}

fn saturating_number(digits: &[u8]) -> u32 {
    digits.iter().fold(0u32, |n, d| {
        n.saturating_mul(10).saturating_add(u32::from(d - b'0'))
    })
}

impl Ord for Version {
    fn cmp(&self, other: &Version) -> Ordering {
        let n = usize::from(self.len.max(other.len));
        (0..n)
            .map(|i| self.at(i).cmp(&other.at(i)))
            .find(|o| o.is_ne())
            .unwrap_or(Ordering::Equal)
    }
}

impl PartialOrd for Version {
    fn partial_cmp(&self, other: &Version) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl PartialEq for Version {
    fn eq(&self, other: &Version) -> bool {
        self.cmp(other).is_eq()
    }
}

impl Eq for Version {}

impl Hash for Version {
    /// Consistent with `Eq`: trailing zero components do not count.
    fn hash<H: Hasher>(&self, state: &mut H) {
        let mut n = usize::from(self.len);
        while n > 0 && self.parts[n - 1] == 0 {
            n -= 1;
        }
        self.parts[..n].hash(state);
    }
}

impl fmt::Display for Version {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, p) in self.parts().iter().enumerate() {
            if i > 0 {
                f.write_str(".")?;
            }
            write!(f, "{p}")?;
        }
        Ok(())
    }
}

impl fmt::Debug for Version {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Version({self})")
    }
}

/// A comparison operator of a [`VersionSpec`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Comparison {
    /// `<`
    Lt,
    /// `<=`
    Le,
    /// `=` (also written `==`, or no operator at all)
    Eq,
    /// `!=`
    Ne,
    /// `>=`
    Ge,
    /// `>`
    Gt,
}

impl Comparison {
    /// The operator as written canonically.
    pub const fn as_str(self) -> &'static str {
        match self {
            Comparison::Lt => "<",
            Comparison::Le => "<=",
            Comparison::Eq => "=",
            Comparison::Ne => "!=",
            Comparison::Ge => ">=",
            Comparison::Gt => ">",
        }
    }

    /// Whether `ord` (actual compared with the rule's version) satisfies the operator.
    pub const fn holds(self, ord: Ordering) -> bool {
        match self {
            Comparison::Lt => ord.is_lt(),
            Comparison::Le => ord.is_le(),
            Comparison::Eq => ord.is_eq(),
            Comparison::Ne => ord.is_ne(),
            Comparison::Ge => ord.is_ge(),
            Comparison::Gt => ord.is_gt(),
        }
    }
}

/// Which versions a client version rule matches.
///
/// Syntax (spaces around the operator are optional):
///
/// | written | matches |
/// |---|---|
/// | `*` | every client, also one whose version cannot be read |
/// | `< 5.0`, `<= 5`, `= 4.2.1`, `4.2.1`, `>= 4.2.1`, `> 5`, `!= 5.1` | numeric dotted comparison |
/// | `4.*`, `= 4.2.*` | versions whose first components are these |
/// | `!= 4.*` | versions whose first components are not these |
///
/// Only `*` matches a client whose User-Agent carries no readable version: `!= 5.0` does
/// not match "unknown", so an unreadable version falls through to later rules and the
/// default action.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum VersionSpec {
    /// `*`
    Any,
    /// `op version`
    Compare(Comparison, Version),
    /// `prefix.*` (or `!= prefix.*` when `negated`).
    Prefix {
        /// `!=` rather than `=`.
        negated: bool,
        /// The components before `.*`.
        prefix: Version,
    },
}

impl VersionSpec {
    /// Parses the syntax in the type's documentation.
    ///
    /// # Errors
    /// A message saying what is wrong and what is expected.
    pub fn parse(s: &str) -> Result<VersionSpec, String> {
        let t = s.trim();
        if t.is_empty() {
            return Err("empty version condition (write * to match every version)".into());
        }
        let (op, rest) = [
            ("<=", Comparison::Le),
            (">=", Comparison::Ge),
            ("!=", Comparison::Ne),
            ("==", Comparison::Eq),
            ("<", Comparison::Lt),
            (">", Comparison::Gt),
            ("=", Comparison::Eq),
        ]
        .iter()
        .find_map(|(p, op)| t.strip_prefix(p).map(|r| (*op, r.trim_start())))
        .unwrap_or((Comparison::Eq, t));
        if rest == "*" {
            return match op {
                Comparison::Eq => Ok(VersionSpec::Any),
                _ => Err(format!(
                    "'{t}': the wildcard * alone can only be used without an operator (every version)"
                )),
            };
        }
        if let Some(prefix) = rest.strip_suffix(".*") {
            let negated = match op {
                Comparison::Eq => false,
                Comparison::Ne => true,
                _ => {
                    return Err(format!(
                        "'{t}': a wildcard version (like 4.*) can only be used with = or !="
                    ));
                }
            };
            let prefix = Version::parse(prefix).map_err(|e| format!("'{t}': {e}"))?;
            return Ok(VersionSpec::Prefix { negated, prefix });
        }
        if rest.contains('*') {
            return Err(format!(
                "'{t}': a wildcard must be a whole last component (4.* or *)"
            ));
        }
        let v = Version::parse(rest).map_err(|e| {
            format!("'{t}' is not a version condition ({e}; expected like '< 5.0', '>= 4.2.1', '4.*' or '*')")
        })?;
        Ok(VersionSpec::Compare(op, v))
    }

    /// Whether a client with version `actual` (`None`: none could be read) matches.
    pub fn matches(&self, actual: Option<&Version>) -> bool {
        match (self, actual) {
            (VersionSpec::Any, _) => true,
            (_, None) => false,
            (VersionSpec::Compare(op, v), Some(a)) => op.holds(a.cmp(v)),
            (VersionSpec::Prefix { negated, prefix }, Some(a)) => a.starts_with(prefix) != *negated,
        }
    }
}

impl fmt::Display for VersionSpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            VersionSpec::Any => f.write_str("*"),
            VersionSpec::Compare(op, v) => write!(f, "{} {v}", op.as_str()),
            VersionSpec::Prefix {
                negated: false,
                prefix,
            } => write!(f, "{prefix}.*"),
            VersionSpec::Prefix {
                negated: true,
                prefix,
            } => write!(f, "!= {prefix}.*"),
        }
    }
}

// ---- products ----------------------------------------------------------------------------

/// A product-name pattern: a User-Agent product name (`Linphone`, `baresip`), compared
/// without regard to ASCII case, where `*` stands for any run of characters (`Linphone*`
/// matches `Linphone` and `Linphone-Desktop`; `*` matches every product).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct ProductPattern(String);

impl ProductPattern {
    /// Longest pattern accepted.
    pub const MAX_LEN: usize = 64;

    /// Parses a pattern: 1 to 64 characters of the RFC 3261 `token` alphabet (letters,
    /// digits and `-.!%*_+`'~`).
    ///
    /// # Errors
    /// A message naming the offending character.
    pub fn parse(s: &str) -> Result<ProductPattern, String> {
        if s.is_empty() {
            return Err("empty product (write * to match every product)".into());
        }
        if s.len() > ProductPattern::MAX_LEN {
            return Err(format!(
                "product pattern is {} bytes long, at most {} allowed",
                s.len(),
                ProductPattern::MAX_LEN
            ));
        }
        if let Some(c) = s.chars().find(|c| !is_token_char(*c)) {
            return Err(format!(
                "'{s}': character {c:?} cannot appear in a User-Agent product name \
                 (letters, digits and -.!%*_+`'~ only; * is the wildcard)"
            ));
        }
        Ok(ProductPattern(s.to_owned()))
    }

    /// The pattern as written.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// Whether `name` matches (ASCII case-insensitive glob; no allocation).
    pub fn matches(&self, name: &str) -> bool {
        glob_match(self.0.as_bytes(), name.as_bytes())
    }
}

impl fmt::Display for ProductPattern {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// RFC 3261 `token` characters.
fn is_token_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || "-.!%*_+`'~".contains(c)
}

/// `*`-glob, ASCII case-insensitive, linear backtracking on the last star.
fn glob_match(pat: &[u8], s: &[u8]) -> bool {
    let (mut p, mut i) = (0, 0);
    let mut star: Option<(usize, usize)> = None;
    while i < s.len() {
        if p < pat.len() && pat[p] == b'*' {
            star = Some((p, i));
            p += 1;
        } else if p < pat.len() && pat[p].eq_ignore_ascii_case(&s[i]) {
            p += 1;
            i += 1;
        } else if let Some((sp, si)) = star {
            p = sp + 1;
            i = si + 1;
            star = Some((sp, si + 1));
        } else {
            return false;
        }
    }
    pat[p..].iter().all(|&c| c == b'*')
}

// ---- client version policy ---------------------------------------------------------------

/// What the Client Version Filter does with a matching client.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ClientActionKind {
    /// Let the request through.
    Allow,
    /// Refuse it: 403 with the rule's `reason` as reason phrase.
    Block,
    /// Refuse it: 403 with `reason`, and a `Warning: 399` header carrying `url` (where to
    /// get a supported client).
    BlockWithUrl,
    /// Let it through, with an upgrade notice carrying `url` (and `message`) for the client.
    AllowWithNotice,
}

impl ClientActionKind {
    /// Every kind, in documentation order.
    pub const ALL: [ClientActionKind; 4] = [
        ClientActionKind::Allow,
        ClientActionKind::Block,
        ClientActionKind::BlockWithUrl,
        ClientActionKind::AllowWithNotice,
    ];

    /// The name used in the CLI, the API and the database (`block_with_url`).
    pub const fn as_str(self) -> &'static str {
        match self {
            ClientActionKind::Allow => "allow",
            ClientActionKind::Block => "block",
            ClientActionKind::BlockWithUrl => "block_with_url",
            ClientActionKind::AllowWithNotice => "allow_with_notice",
        }
    }

    /// The kind named `s` (as [`ClientActionKind::as_str`] writes it).
    pub fn from_name(s: &str) -> Option<ClientActionKind> {
        ClientActionKind::ALL.into_iter().find(|k| k.as_str() == s)
    }

    /// Block or BlockWithUrl.
    pub const fn is_block(self) -> bool {
        matches!(
            self,
            ClientActionKind::Block | ClientActionKind::BlockWithUrl
        )
    }

    /// BlockWithUrl or AllowWithNotice: the action carries an upgrade URL.
    pub const fn needs_url(self) -> bool {
        matches!(
            self,
            ClientActionKind::BlockWithUrl | ClientActionKind::AllowWithNotice
        )
    }
}

impl fmt::Display for ClientActionKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// An action with its parameters: the policy's default, or a rule's.
///
/// `reason` is allowed with the blocking kinds (default: "Client version not allowed" for
/// `block`, "Client upgrade required" for `block_with_url`), `url` is required with
/// `block_with_url` and `allow_with_notice` and refused otherwise, `message` only with
/// `allow_with_notice`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ClientAction {
    /// What to do.
    pub action: ClientActionKind,
    /// Reason phrase of the 403 (blocking kinds).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// Where to get a supported client (`http://` or `https://`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub url: Option<String>,
    /// Text of the upgrade notice (`allow_with_notice`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
}

impl ClientAction {
    /// `allow` without parameters.
    pub const fn allow() -> ClientAction {
        ClientAction {
            action: ClientActionKind::Allow,
            reason: None,
            url: None,
            message: None,
        }
    }

    /// `block` with an optional reason phrase.
    pub fn block(reason: Option<&str>) -> ClientAction {
        ClientAction {
            action: ClientActionKind::Block,
            reason: reason.map(str::to_owned),
            ..ClientAction::allow()
        }
    }

    /// `block_with_url`.
    pub fn block_with_url(url: &str, reason: Option<&str>) -> ClientAction {
        ClientAction {
            action: ClientActionKind::BlockWithUrl,
            reason: reason.map(str::to_owned),
            url: Some(url.to_owned()),
            message: None,
        }
    }

    /// `allow_with_notice`.
    pub fn allow_with_notice(url: &str, message: Option<&str>) -> ClientAction {
        ClientAction {
            action: ClientActionKind::AllowWithNotice,
            reason: None,
            url: Some(url.to_owned()),
            message: message.map(str::to_owned),
        }
    }

    /// The reason phrase a blocking action answers with.
    pub fn reason_phrase(&self) -> &str {
        match (&self.reason, self.action) {
            (Some(r), _) => r,
            (None, ClientActionKind::BlockWithUrl) => "Client upgrade required",
            (None, _) => "Client version not allowed",
        }
    }

    /// Checks the parameters against the kind. `rule` is for the error only.
    ///
    /// # Errors
    /// [`PolicyError`] naming `reason`, `url` or `message`.
    pub fn validate(&self, rule: Option<usize>) -> Result<(), PolicyError> {
        let err = |field, msg: String| Err(PolicyError::new(rule, field, msg));
        let kind = self.action;
        match &self.reason {
            Some(_) if !kind.is_block() => {
                return err(
                    "reason",
                    format!("a reason is only used with block and block_with_url, not {kind}"),
                );
            }
            Some(r) => {
                check_reason_phrase(r).map_err(|m| PolicyError::new(rule, "reason", m))?;
            }
            None => {}
        }
        match (&self.url, kind.needs_url()) {
            (None, true) => return err("url", format!("{kind} needs a url")),
            (Some(_), false) => {
                return err(
                    "url",
                    format!(
                        "a url is only used with block_with_url and allow_with_notice, not {kind}"
                    ),
                );
            }
            (Some(u), true) => check_url(u).map_err(|m| PolicyError::new(rule, "url", m))?,
            (None, false) => {}
        }
        match &self.message {
            Some(_) if kind != ClientActionKind::AllowWithNotice => err(
                "message",
                format!("a message is only used with allow_with_notice, not {kind}"),
            ),
            Some(m) => check_notice(m).map_err(|e| PolicyError::new(rule, "message", e)),
            None => Ok(()),
        }
    }
}

impl Default for ClientAction {
    fn default() -> ClientAction {
        ClientAction::allow()
    }
}

/// One rule of the Client Version Filter: clients whose User-Agent names a product matching
/// `product` with a version matching `version` get `action`.
///
/// In JSON the action's fields sit beside `product` and `version`:
/// `{"product": "Linphone*", "version": "< 5.0", "action": "block", "reason": "Too old"}`;
/// an unknown key is an error.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(from = "RawRule", into = "RawRule")]
pub struct ClientVersionRule {
    /// A [`ProductPattern`] (`Linphone*`, `baresip`, `*`).
    pub product: String,
    /// A [`VersionSpec`] (`< 5.0`, `4.*`, `*`).
    pub version: String,
    /// What to do with a matching client.
    pub then: ClientAction,
}

/// The flat serde form of a rule (`#[serde(flatten)]` cannot deny unknown fields).
#[derive(Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawRule {
    product: String,
    version: String,
    action: ClientActionKind,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    reason: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    url: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    message: Option<String>,
}

impl From<RawRule> for ClientVersionRule {
    fn from(r: RawRule) -> ClientVersionRule {
        ClientVersionRule {
            product: r.product,
            version: r.version,
            then: ClientAction {
                action: r.action,
                reason: r.reason,
                url: r.url,
                message: r.message,
            },
        }
    }
}

impl From<ClientVersionRule> for RawRule {
    fn from(r: ClientVersionRule) -> RawRule {
        RawRule {
            product: r.product,
            version: r.version,
            action: r.then.action,
            reason: r.then.reason,
            url: r.then.url,
            message: r.then.message,
        }
    }
}

impl ClientVersionRule {
    /// A rule from its parts (not yet validated).
    pub fn new(product: &str, version: &str, then: ClientAction) -> ClientVersionRule {
        ClientVersionRule {
            product: product.to_owned(),
            version: version.to_owned(),
            then,
        }
    }

    /// The parsed product pattern and version condition, after checking the action.
    /// `index` (0-based) is for the error only.
    ///
    /// # Errors
    /// [`PolicyError`] naming the rule and the field.
    pub fn parse(&self, index: usize) -> Result<(ProductPattern, VersionSpec), PolicyError> {
        let product = ProductPattern::parse(&self.product)
            .map_err(|m| PolicyError::new(Some(index), "product", m))?;
        let version = VersionSpec::parse(&self.version)
            .map_err(|m| PolicyError::new(Some(index), "version", m))?;
        self.then.validate(Some(index))?;
        Ok((product, version))
    }
}

/// The Client Version Filter's policy: rules tried in order, the first match decides; no
/// match gets `default`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ClientVersionPolicy {
    /// Rules in order.
    #[serde(default)]
    pub rules: Vec<ClientVersionRule>,
    /// For clients no rule matches (including requests without a User-Agent).
    #[serde(default)]
    pub default: ClientAction,
}

impl ClientVersionPolicy {
    /// The policy if every rule and the default action are valid (version conditions are
    /// kept as the admin wrote them, trimmed).
    ///
    /// # Errors
    /// [`PolicyError`] naming the first invalid rule and field.
    pub fn validated(mut self) -> Result<ClientVersionPolicy, PolicyError> {
        if self.rules.len() > MAX_CLIENT_VERSION_RULES {
            return Err(PolicyError::new(
                None,
                "rules",
                format!(
                    "{} rules, at most {MAX_CLIENT_VERSION_RULES} allowed",
                    self.rules.len()
                ),
            ));
        }
        for (i, r) in self.rules.iter_mut().enumerate() {
            r.product = r.product.trim().to_owned();
            r.version = r.version.trim().to_owned();
            r.parse(i)?;
        }
        self.default
            .validate(None)
            .map_err(|e| PolicyError::new(None, prefixed_default(e.field), e.message))?;
        Ok(self)
    }
}

fn prefixed_default(field: &'static str) -> &'static str {
    match field {
        "reason" => "default.reason",
        "url" => "default.url",
        "message" => "default.message",
        other => other,
    }
}

// ---- IM filter policy --------------------------------------------------------------------

/// Which senders a rule of the IM filter applies to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FilterScope {
    /// Every sender.
    #[default]
    All,
    /// Only senders outside the served domains (see `confab-filters` for how a sender is
    /// classified).
    External,
}

impl FilterScope {
    /// `all` or `external`.
    pub const fn as_str(self) -> &'static str {
        match self {
            FilterScope::All => "all",
            FilterScope::External => "external",
        }
    }

    /// The scope named `s`.
    pub fn from_name(s: &str) -> Option<FilterScope> {
        match s {
            "all" => Some(FilterScope::All),
            "external" => Some(FilterScope::External),
            _ => None,
        }
    }

    /// Whether a rule with this scope applies to a sender (`external`: from outside the
    /// served domains).
    pub const fn applies(self, external: bool) -> bool {
        match self {
            FilterScope::All => true,
            FilterScope::External => external,
        }
    }
}

/// What the IM filter does with a message whose text contains a link.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum UrlAction {
    /// Deliver it unchanged.
    #[default]
    Allow,
    /// Refuse it: 403 with the rule's reason phrase.
    Block,
    /// Deliver it with the prefix inserted before each link, so clients no longer make it
    /// clickable.
    DisableLinks,
}

impl UrlAction {
    /// `allow`, `block` or `disable_links`.
    pub const fn as_str(self) -> &'static str {
        match self {
            UrlAction::Allow => "allow",
            UrlAction::Block => "block",
            UrlAction::DisableLinks => "disable_links",
        }
    }

    /// The action named `s`.
    pub fn from_name(s: &str) -> Option<UrlAction> {
        [UrlAction::Allow, UrlAction::Block, UrlAction::DisableLinks]
            .into_iter()
            .find(|a| a.as_str() == s)
    }
}

/// The URL rule of the IM filter.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct UrlFilter {
    /// What to do with a message containing a link.
    pub action: UrlAction,
    /// Whose messages.
    pub scope: FilterScope,
    /// Inserted before each link by `disable_links`. 1 to 32 bytes, must end with a letter,
    /// a digit or `_` (so the link no longer starts at a word boundary, which is what
    /// clients' link detection looks for), no control characters and none of `<>&"'\`
    /// (it is inserted into HTML too). Default `_`.
    pub prefix: String,
    /// Reason phrase of the 403 answering a blocked message.
    pub reason: String,
}

impl Default for UrlFilter {
    fn default() -> UrlFilter {
        UrlFilter {
            action: UrlAction::Allow,
            scope: FilterScope::All,
            prefix: "_".to_owned(),
            reason: "Message blocked: links are not allowed".to_owned(),
        }
    }
}

/// The file-transfer rule of the IM filter.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct FileFilter {
    /// Blocked file extensions without the dot (`exe`, `tar.gz`), lowercase once validated;
    /// `*` blocks every file transfer, including offers that name no file. Empty: no file
    /// transfer is blocked.
    pub extensions: Vec<String>,
    /// Whose file transfers.
    pub scope: FilterScope,
    /// Reason phrase of the 403 answering a blocked offer.
    pub reason: String,
}

impl Default for FileFilter {
    fn default() -> FileFilter {
        FileFilter {
            extensions: Vec::new(),
            scope: FilterScope::All,
            reason: "File transfer blocked: file type not allowed".to_owned(),
        }
    }
}

/// The Intelligent IM Filter's policy. The default lets everything through.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ImFilterPolicy {
    /// Links in message text.
    pub urls: UrlFilter,
    /// File transfers.
    pub files: FileFilter,
}

impl ImFilterPolicy {
    /// Longest prefix accepted.
    pub const MAX_PREFIX_LEN: usize = 32;
    /// Longest file extension accepted.
    pub const MAX_EXTENSION_LEN: usize = 16;

    /// The policy with extensions normalised (leading dot removed, lowercase, sorted,
    /// duplicates removed), if every field is valid.
    ///
    /// # Errors
    /// [`PolicyError`] naming the field (`urls.prefix`, `files.extensions` ...).
    pub fn validated(mut self) -> Result<ImFilterPolicy, PolicyError> {
        check_prefix(&self.urls.prefix).map_err(|m| PolicyError::new(None, "urls.prefix", m))?;
        check_reason_phrase(&self.urls.reason)
            .map_err(|m| PolicyError::new(None, "urls.reason", m))?;
        check_reason_phrase(&self.files.reason)
            .map_err(|m| PolicyError::new(None, "files.reason", m))?;
        if self.files.extensions.len() > MAX_BLOCKED_EXTENSIONS {
            return Err(PolicyError::new(
                None,
                "files.extensions",
                format!(
                    "{} extensions, at most {MAX_BLOCKED_EXTENSIONS} allowed",
                    self.files.extensions.len()
                ),
            ));
        }
        let mut exts = Vec::with_capacity(self.files.extensions.len());
        for e in &self.files.extensions {
            exts.push(
                normalize_extension(e)
                    .map_err(|m| PolicyError::new(None, "files.extensions", m))?,
            );
        }
        exts.sort();
        exts.dedup();
        self.files.extensions = exts;
        Ok(self)
    }

    /// Whether the policy can change any message (a cheap test the filter runs first).
    pub fn is_active(&self) -> bool {
        self.urls.action != UrlAction::Allow || !self.files.extensions.is_empty()
    }
}

/// `.EXE` → `exe`; `*` stays `*`.
fn normalize_extension(e: &str) -> Result<String, String> {
    let t = e.trim();
    if t == "*" {
        return Ok("*".to_owned());
    }
    let t = t.strip_prefix('.').unwrap_or(t);
    if t.is_empty() {
        return Err(format!("'{e}' is not a file extension"));
    }
    if t.len() > ImFilterPolicy::MAX_EXTENSION_LEN {
        return Err(format!(
            "'{e}' is longer than {} characters",
            ImFilterPolicy::MAX_EXTENSION_LEN
        ));
    }
    if t.starts_with('.') || t.ends_with('.') || t.contains("..") {
        return Err(format!("'{e}': dots only between parts (like tar.gz)"));
    }
    if let Some(c) = t
        .chars()
        .find(|c| !(c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '_' | '~' | '$')))
    {
        return Err(format!(
            "'{e}': character {c:?} is not allowed in an extension (letters, digits, .-_~$)"
        ));
    }
    Ok(t.to_ascii_lowercase())
}

// ---- text checks -------------------------------------------------------------------------

/// Longest reason phrase accepted.
pub const MAX_REASON_LEN: usize = 128;

/// A SIP Reason-Phrase (RFC 3261 §25.1: reserved, unreserved, escaped, UTF-8, SP, HTAB).
fn check_reason_phrase(r: &str) -> Result<(), String> {
    if r.trim().is_empty() {
        return Err("empty reason phrase".into());
    }
    if r.len() > MAX_REASON_LEN {
        return Err(format!(
            "reason phrase is {} bytes long, at most {MAX_REASON_LEN} allowed",
            r.len()
        ));
    }
    let b = r.as_bytes();
    for (i, c) in r.char_indices() {
        let ok = match c {
            '%' => b.len() > i + 2 && b[i + 1].is_ascii_hexdigit() && b[i + 2].is_ascii_hexdigit(),
            c if c.is_ascii_alphanumeric() => true,
            ' ' | '\t' => true,
            ';' | '/' | '?' | ':' | '@' | '&' | '=' | '+' | '$' | ',' => true,
            '-' | '_' | '.' | '!' | '~' | '*' | '\'' | '(' | ')' => true,
            c => !c.is_ascii() && !c.is_control(),
        };
        if !ok {
            return Err(format!(
                "character {c:?} cannot appear in a SIP reason phrase \
                 (letters, digits, spaces, non-ASCII text and ;/?:@&=+$,-_.!~*'() only)"
            ));
        }
    }
    Ok(())
}

/// Longest URL accepted.
pub const MAX_URL_LEN: usize = 512;

/// An absolute `http`/`https` URL carried in a Warning header's quoted text.
fn check_url(u: &str) -> Result<(), String> {
    if u.len() > MAX_URL_LEN {
        return Err(format!(
            "url is {} bytes long, at most {MAX_URL_LEN} allowed",
            u.len()
        ));
    }
    let lower = u.get(..8).map(str::to_ascii_lowercase).unwrap_or_default();
    let rest = if lower.starts_with("https://") {
        &u[8..]
    } else if lower.starts_with("http://") {
        &u[7..]
    } else {
        return Err(format!("'{u}' is not an http:// or https:// URL"));
    };
    if !rest.starts_with(|c: char| c.is_ascii_alphanumeric() || c == '[') {
        return Err(format!("'{u}' has no host"));
    }
    if let Some(c) = u
        .chars()
        .find(|c| !c.is_ascii_graphic() || matches!(c, '"' | '\\' | '<' | '>'))
    {
        return Err(format!(
            "'{u}': character {c:?} is not allowed in the URL (percent-encode it)"
        ));
    }
    Ok(())
}

/// Longest notice text accepted.
pub const MAX_NOTICE_LEN: usize = 200;

fn check_notice(m: &str) -> Result<(), String> {
    if m.trim().is_empty() {
        return Err("empty message".into());
    }
    if m.len() > MAX_NOTICE_LEN {
        return Err(format!(
            "message is {} bytes long, at most {MAX_NOTICE_LEN} allowed",
            m.len()
        ));
    }
    if let Some(c) = m.chars().find(|c| c.is_control()) {
        return Err(format!("control character {c:?} in the message"));
    }
    Ok(())
}

fn check_prefix(p: &str) -> Result<(), String> {
    if p.is_empty() {
        return Err("empty prefix".into());
    }
    if p.len() > ImFilterPolicy::MAX_PREFIX_LEN {
        return Err(format!(
            "prefix is {} bytes long, at most {} allowed",
            p.len(),
            ImFilterPolicy::MAX_PREFIX_LEN
        ));
    }
    if let Some(c) = p
        .chars()
        .find(|c| c.is_control() || matches!(c, '<' | '>' | '&' | '"' | '\'' | '\\'))
    {
        return Err(format!(
            "character {c:?} is not allowed in the prefix (no control characters, none of <>&\"'\\)"
        ));
    }
    let last = p.chars().next_back().unwrap_or(' ');
    if !(last.is_alphanumeric() || last == '_') {
        return Err(format!(
            "'{p}' must end with a letter, a digit or _ (clients only turn text into a link at \
             a word boundary; a prefix ending in {last:?} leaves the link clickable)"
        ));
    }
    Ok(())
}

// ---- the port ----------------------------------------------------------------------------

/// A policy with the version it was stored under.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Versioned<T> {
    /// Incremented by every write of this policy; 0 means never written (`value` is then
    /// the default policy).
    pub version: u64,
    /// When it was last written (`None` if never).
    pub updated_at: Option<Timestamp>,
    /// The policy.
    pub value: T,
}

/// The current version of each policy, for front ends polling for changes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct PolicyVersions {
    /// Version of the IM filter policy.
    pub im_filter: u64,
    /// Version of the client version policy.
    pub client_version: u64,
}

/// Organisation policy of the filter roles.
///
/// Contract for every implementation:
/// - every write validates first ([`ClientVersionPolicy::validated`],
///   [`ImFilterPolicy::validated`]) and refuses an invalid policy with
///   [`StoreError::Invalid`] naming the rule and field; nothing is written then;
/// - a write that returns `Ok` is durable and has incremented that policy's version by
///   exactly one (the returned number);
/// - rule edits ([`PolicyStore::insert_client_version_rule`],
///   [`PolicyStore::remove_client_version_rule`]) are atomic read-modify-writes;
/// - a policy never written reads as the default with version 0;
/// - versions only tell "changed or not": after a database restore a version can go down,
///   so pollers reload on any difference, not only on an increase.
#[async_trait]
pub trait PolicyStore: Send + Sync {
    /// The current versions (a cheap read for polling).
    async fn policy_versions(&self) -> Result<PolicyVersions, StoreError>;

    /// The IM filter policy.
    async fn im_filter_policy(&self) -> Result<Versioned<ImFilterPolicy>, StoreError>;

    /// Replaces the IM filter policy (validated and normalised first); returns the new
    /// version.
    async fn set_im_filter_policy(&self, policy: ImFilterPolicy) -> Result<u64, StoreError>;

    /// The client version policy.
    async fn client_version_policy(&self) -> Result<Versioned<ClientVersionPolicy>, StoreError>;

    /// Replaces the client version policy (rules and default); returns the new version.
    async fn set_client_version_policy(
        &self,
        policy: ClientVersionPolicy,
    ) -> Result<u64, StoreError>;

    /// Inserts a rule at `position` (0-based; `None` or the rule count: at the end);
    /// returns the new version. [`StoreError::Invalid`] (`position`) past the end.
    async fn insert_client_version_rule(
        &self,
        position: Option<usize>,
        rule: ClientVersionRule,
    ) -> Result<u64, StoreError>;

    /// Removes the rule at `position` (0-based); returns it and the new version.
    /// [`StoreError::Invalid`] (`position`) if there is no such rule.
    async fn remove_client_version_rule(
        &self,
        position: usize,
    ) -> Result<(ClientVersionRule, u64), StoreError>;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[track_caller]
    fn spec(s: &str, version: Option<&str>, expected: bool) {
        let spec = VersionSpec::parse(s).unwrap_or_else(|e| panic!("{s}: {e}"));
        let v = version.map(|v| Version::parse(v).unwrap());
        assert_eq!(spec.matches(v.as_ref()), expected, "{s} vs {version:?}");
    }

    #[test]
    fn version_conditions() {
        for (s, v, m) in [
            ("< 5.0", Some("4.9.9"), true),
            ("< 5.0", Some("5"), false),
            ("<5", Some("4.10"), true),
            ("<= 5", Some("5.0.0"), true),
            ("<= 5", Some("5.0.1"), false),
            ("= 4.2.1", Some("4.2.1.0"), true),
            ("4.2.1", Some("4.2.10"), false),
            ("== 4.2", Some("4.2"), true),
            (">= 4.2.1", Some("4.10"), true),
            (">= 4.2.1", Some("4.2"), false),
            ("> 5", Some("5.0.1"), true),
            ("> 5", Some("5"), false),
            ("!= 5.1", Some("5.1.0"), false),
            ("!= 5.1", Some("5.2"), true),
            ("4.*", Some("4"), true),
            ("4.*", Some("4.99.1"), true),
            ("4.*", Some("40.1"), false),
            ("= 4.2.*", Some("4.2.7"), true),
            ("= 4.2.*", Some("4.3"), false),
            ("!= 4.*", Some("5.0"), true),
            ("!= 4.*", Some("4.1"), false),
            ("*", Some("1"), true),
            ("*", None, true),
            ("< 5", None, false),
            ("!= 5", None, false),
            ("4.*", None, false),
        ] {
            spec(s, v, m);
        }
    }

    #[track_caller]
    fn bad_spec(s: &str, needle: &str) {
        let e = VersionSpec::parse(s).unwrap_err();
        assert!(e.contains(needle), "{s}: {e}");
    }

    #[test]
    fn version_condition_errors() {
        bad_spec("", "empty");
        bad_spec("<< 5", "not a version condition");
        bad_spec("< 5.*", "only be used with = or !=");
        bad_spec("> *", "wildcard * alone");
        bad_spec("4.*.1", "whole last component");
        bad_spec("5..1", "not a dotted numeric version");
        bad_spec("v5", "not a dotted numeric version");
        bad_spec("1.2.3.4.5.6.7.8.9", "more than 8");
    }

    #[test]
    fn version_display_and_equality() {
        for (s, shown) in [
            ("<5.0", "< 5.0"),
            ("4.*", "4.*"),
            ("!=4.2.*", "!= 4.2.*"),
            ("*", "*"),
            ("3", "= 3"),
        ] {
            let spec = VersionSpec::parse(s).unwrap();
            assert_eq!(spec.to_string(), shown);
            assert_eq!(VersionSpec::parse(shown).unwrap(), spec);
        }
        let a = Version::parse("5").unwrap();
        let b = Version::parse("5.0.0").unwrap();
        assert_eq!(a, b);
        let hash = |v: &Version| {
            let mut h = std::collections::hash_map::DefaultHasher::new();
            v.hash(&mut h);
            h.finish()
        };
        assert_eq!(hash(&a), hash(&b));
        assert_eq!(b.to_string(), "5.0.0");
        assert!(Version::parse("99999999999").unwrap().parts() == [u32::MAX]);
    }

    #[test]
    fn versions_found_in_free_text() {
        for (s, v) in [
            ("5.2.1", Some("5.2.1")),
            ("v1.0.0", Some("1.0.0")),
            ("rv2.10.19.4-beta", Some("2.10.19.4")),
            ("Beta1.5", Some("1.5")),
            ("5.2.1-rc1", Some("5.2.1")),
            ("4.", Some("4")),
            ("1.2.3.4.5.6.7.8.9.10", Some("1.2.3.4.5.6.7.8")),
            ("beta", None),
            ("", None),
        ] {
            let found = Version::find_in(s).map(|v| v.parts().to_vec());
            let want = v.map(|v| Version::parse(v).unwrap().parts().to_vec());
            assert_eq!(found, want, "{s}");
        }
    }

    #[test]
    fn product_patterns() {
        for (p, name, m) in [
            ("Linphone", "linphone", true),
            ("Linphone", "Linphone-Desktop", false),
            ("Linphone*", "Linphone-Desktop", true),
            ("Linphone*", "Linphone", true),
            ("*phone*", "MicroSIP-phone-x", true),
            ("*", "anything", true),
            ("a*b*c", "aXXbYYc", true),
            ("a*b*c", "aXXbYY", false),
            ("baresip", "bare", false),
        ] {
            assert_eq!(
                ProductPattern::parse(p).unwrap().matches(name),
                m,
                "{p} {name}"
            );
        }
        assert!(ProductPattern::parse("Bria 5").unwrap_err().contains("' '"));
        assert!(ProductPattern::parse("").is_err());
        assert!(ProductPattern::parse(&"x".repeat(65)).is_err());
    }

    #[track_caller]
    fn bad_rule(rule: ClientVersionRule, field: &str, needle: &str) {
        let p = ClientVersionPolicy {
            rules: vec![
                ClientVersionRule::new("ok", "*", ClientAction::allow()),
                rule,
            ],
            default: ClientAction::allow(),
        };
        let e = p.validated().unwrap_err();
        assert_eq!(e.rule, Some(1));
        assert_eq!(e.field, field);
        assert!(e.to_string().starts_with("rule 2: "), "{e}");
        assert!(e.message.contains(needle), "{e}");
        let store: StoreError = e.into();
        match store {
            StoreError::Invalid { field: f, message } => {
                assert_eq!(f, field);
                assert!(message.starts_with("rule 2: "), "{message}");
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn invalid_rules_name_rule_and_field() {
        let url = "https://example.com/get";
        bad_rule(
            ClientVersionRule::new("Bad Name", "*", ClientAction::allow()),
            "product",
            "cannot appear",
        );
        bad_rule(
            ClientVersionRule::new("x", "<< 5", ClientAction::allow()),
            "version",
            "not a version condition",
        );
        bad_rule(
            ClientVersionRule::new("x", "*", ClientAction::block(Some("bad\r\nheader"))),
            "reason",
            "cannot appear in a SIP reason phrase",
        );
        bad_rule(
            ClientVersionRule::new("x", "*", ClientAction::block(Some("50% off"))),
            "reason",
            "'%'",
        );
        bad_rule(
            ClientVersionRule::new(
                "x",
                "*",
                ClientAction {
                    action: ClientActionKind::BlockWithUrl,
                    ..ClientAction::allow()
                },
            ),
            "url",
            "needs a url",
        );
        bad_rule(
            ClientVersionRule::new("x", "*", ClientAction::block_with_url("ftp://x", None)),
            "url",
            "not an http",
        );
        bad_rule(
            ClientVersionRule::new(
                "x",
                "*",
                ClientAction::block_with_url("https://x/a\"b", None),
            ),
            "url",
            "percent-encode",
        );
        bad_rule(
            ClientVersionRule::new(
                "x",
                "*",
                ClientAction {
                    url: Some(url.into()),
                    ..ClientAction::block(None)
                },
            ),
            "url",
            "only used with",
        );
        bad_rule(
            ClientVersionRule::new(
                "x",
                "*",
                ClientAction {
                    reason: Some("No".into()),
                    ..ClientAction::allow_with_notice(url, None)
                },
            ),
            "reason",
            "only used with block",
        );
        bad_rule(
            ClientVersionRule::new(
                "x",
                "*",
                ClientAction::allow_with_notice(url, Some("line\nbreak")),
            ),
            "message",
            "control character",
        );
        bad_rule(
            ClientVersionRule::new(
                "x",
                "*",
                ClientAction {
                    message: Some("hi".into()),
                    ..ClientAction::block(None)
                },
            ),
            "message",
            "only used with allow_with_notice",
        );
    }

    #[test]
    fn valid_policy_round_trips_through_json() {
        let p = ClientVersionPolicy {
            rules: vec![
                ClientVersionRule::new(" Linphone* ", "< 5.0", ClientAction::block(None)),
                ClientVersionRule::new(
                    "baresip",
                    "4.*",
                    ClientAction::block_with_url("https://example.com/baresip", Some("Upgrade")),
                ),
                ClientVersionRule::new(
                    "Zoiper",
                    "*",
                    ClientAction::allow_with_notice(
                        "https://example.com/z",
                        Some("Please \"upgrade\""),
                    ),
                ),
            ],
            default: ClientAction::allow(),
        }
        .validated()
        .unwrap();
        assert_eq!(p.rules[0].product, "Linphone*");
        let json = serde_json::to_string(&p).unwrap();
        assert!(json.contains(r#""action":"block_with_url""#), "{json}");
        let back: ClientVersionPolicy = serde_json::from_str(&json).unwrap();
        assert_eq!(back, p);
        let typo = r#"{"rules":[{"product":"x","version":"*","action":"block","reasn":"x"}]}"#;
        assert!(serde_json::from_str::<ClientVersionPolicy>(typo).is_err());
        let bad_default = ClientVersionPolicy {
            rules: vec![],
            default: ClientAction {
                action: ClientActionKind::AllowWithNotice,
                ..ClientAction::allow()
            },
        };
        let e = bad_default.validated().unwrap_err();
        assert_eq!((e.rule, e.field), (None, "default.url"));
        let too_many = ClientVersionPolicy {
            rules: vec![
                ClientVersionRule::new("x", "*", ClientAction::allow());
                MAX_CLIENT_VERSION_RULES + 1
            ],
            default: ClientAction::allow(),
        };
        assert_eq!(too_many.validated().unwrap_err().field, "rules");
    }

    #[test]
    fn im_policy_validation_and_normalisation() {
        let mut p = ImFilterPolicy::default();
        assert!(!p.is_active());
        p.files.extensions = vec![".EXE".into(), "exe".into(), "Tar.GZ".into(), "*".into()];
        let v = p.clone().validated().unwrap();
        assert_eq!(v.files.extensions, ["*", "exe", "tar.gz"]);
        assert!(v.is_active());

        #[track_caller]
        fn bad(edit: impl FnOnce(&mut ImFilterPolicy), field: &str, needle: &str) {
            let mut p = ImFilterPolicy::default();
            edit(&mut p);
            let e = p.validated().unwrap_err();
            assert_eq!((e.rule, e.field), (None, field));
            assert!(e.message.contains(needle), "{e}");
        }
        bad(|p| p.urls.prefix = String::new(), "urls.prefix", "empty");
        bad(
            |p| p.urls.prefix = "[link] ".into(),
            "urls.prefix",
            "must end with",
        );
        bad(|p| p.urls.prefix = "<b>x".into(), "urls.prefix", "'<'");
        bad(
            |p| p.urls.prefix = "x".repeat(33),
            "urls.prefix",
            "at most 32",
        );
        bad(
            |p| p.urls.reason = "a\"b".into(),
            "urls.reason",
            "reason phrase",
        );
        bad(|p| p.files.reason = String::new(), "files.reason", "empty");
        bad(
            |p| p.files.extensions = vec!["e x e".into()],
            "files.extensions",
            "not allowed",
        );
        bad(
            |p| p.files.extensions = vec![".".into()],
            "files.extensions",
            "not a file extension",
        );
        bad(
            |p| p.files.extensions = vec!["tar..gz".into()],
            "files.extensions",
            "dots only",
        );
        bad(
            |p| p.files.extensions = vec!["x".into(); MAX_BLOCKED_EXTENSIONS + 1],
            "files.extensions",
            "at most",
        );
        let json = r#"{"urls":{"action":"disable_links","scope":"external","prefix":"nolink_"}}"#;
        let p: ImFilterPolicy = serde_json::from_str(json).unwrap();
        assert_eq!(p.urls.action, UrlAction::DisableLinks);
        assert_eq!(p.urls.scope, FilterScope::External);
        assert_eq!(p.files, FileFilter::default());
        assert!(serde_json::from_str::<ImFilterPolicy>(r#"{"url":{}}"#).is_err());
    }
}
