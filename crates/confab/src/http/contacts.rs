//! Contact lists and presence policies over HTTP: the user API (`/api/user/v1/contacts`,
//! `/api/user/v1/presence-policy...`, the user's own only) and the admin API
//! (`/api/admin/v1/users/{address}/contacts`, `.../presence-policy...`, any user). The JSON
//! shapes are the ones `confab contacts list --json` prints.
//!
//! Every write is committed before the answer, and the presence role of this process is told
//! at once ([`confab_presence::server::PresenceServer::policy_changed`]): the watchers whose
//! view changed get a NOTIFY. Other front ends (and this one, for CLI writes) follow the
//! store's change feed within a second.

use axum::Json;
use axum::extract::{FromRequestParts, Query, State};
use axum::http::StatusCode;
use axum::http::request::Parts;
use serde::{Deserialize, Serialize};

use confab_core::contacts::{
    AccessLevel, Contact, GroupName, PresenceRule, PresenceSettings, WatcherPattern,
};
use confab_core::{Address, DisplayName};

use crate::http::AppState;
use crate::http::admin::AdminToken;
use crate::http::error::{ApiError, ApiJson, PathParam};
use crate::http::user::DigestUser;
use crate::http::views;

// ---- shapes ------------------------------------------------------------------------------

/// One contact.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ContactView {
    /// `user@domain`.
    pub address: String,
    /// The name the owner gave, or null.
    pub display_name: Option<String>,
    /// The groups it is in (sorted).
    pub groups: Vec<String>,
}

impl From<&Contact> for ContactView {
    fn from(c: &Contact) -> Self {
        ContactView {
            address: c.address.to_string(),
            display_name: c.display_name.as_ref().map(|n| n.as_str().to_owned()),
            groups: c.groups.iter().map(|g| g.as_str().to_owned()).collect(),
        }
    }
}

/// A contact list.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ContactList {
    /// `user@domain` of the owner.
    pub owner: String,
    /// The list URI to subscribe to (RFC 4662, `Supported: eventlist`).
    pub list_uri: String,
    /// The contacts, sorted by address.
    pub contacts: Vec<ContactView>,
}

/// `POST .../contacts` body.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NewContact {
    /// The contact's address (any domain).
    pub address: String,
    /// A name for them (replaces the stored one).
    #[serde(default)]
    pub display_name: Option<String>,
    /// A group to put them in (added to their groups).
    #[serde(default)]
    pub group: Option<String>,
}

/// One rule.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RuleView {
    /// `user@domain`, or a domain.
    pub watcher: String,
    /// `blocked`, `public`, `colleague` or `personal`.
    pub level: AccessLevel,
}

/// A presence policy.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct PolicyView {
    /// Strangers wait as pending watchers until allowed or blocked.
    pub confirm_strangers: bool,
    /// Rules, address rules first.
    pub rules: Vec<RuleView>,
}

impl From<&PresenceSettings> for PolicyView {
    fn from(s: &PresenceSettings) -> Self {
        PolicyView {
            confirm_strangers: s.policy.confirm_strangers,
            rules: s
                .policy
                .rules
                .iter()
                .map(|r: &PresenceRule| RuleView {
                    watcher: r.watcher.to_string(),
                    level: r.level,
                })
                .collect(),
        }
    }
}

/// `PATCH .../presence-policy` body.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PolicyPatch {
    /// Strangers wait as pending watchers.
    pub confirm_strangers: bool,
}

/// `PUT .../rules/{watcher}` body.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SetRule {
    /// The level.
    pub level: String,
}

/// A pending watcher.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct PendingView {
    /// The watcher.
    pub watcher: String,
    /// When they first asked, RFC 3339 UTC.
    pub since: String,
    /// How many subscriptions wait.
    pub subscriptions: usize,
}

/// The pending watchers.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct PendingList {
    /// Oldest first.
    pub watchers: Vec<PendingView>,
}

/// `POST /api/user/v1/presence-policy/pending/{watcher}` body.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Decide {
    /// `allow` or `block`.
    pub decision: String,
    /// With `allow`: the level (default `public`).
    #[serde(default)]
    pub level: Option<String>,
}

/// `DELETE .../contacts/{contact}` query.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RemoveQuery {
    /// Remove from this group only.
    pub group: Option<String>,
}

// ---- validation (shared with the CLI) ---------------------------------------------------

/// Parses a contact address: `user@domain` of any domain, not the owner.
pub fn parse_contact(owner: &Address, text: &str) -> Result<Address, ApiError> {
    let a = Address::parse(text.trim()).map_err(|e| ApiError::invalid("address", e.to_string()))?;
    if &a == owner {
        return Err(ApiError::invalid(
            "address",
            format!("{owner} cannot be their own contact"),
        ));
    }
    Ok(a)
}

/// Parses a group name.
pub fn parse_group(text: &str) -> Result<GroupName, ApiError> {
    GroupName::parse(text).map_err(|e| ApiError::invalid("group", e.message))
}

/// Parses a display name.
pub fn parse_name(text: &str) -> Result<DisplayName, ApiError> {
    DisplayName::parse(text).map_err(|e| ApiError::invalid("display_name", e.to_string()))
}

/// Parses a watcher (`user@domain` or a domain).
pub fn parse_watcher(text: &str) -> Result<WatcherPattern, ApiError> {
    WatcherPattern::parse(text).map_err(|e| ApiError::invalid("watcher", e.message))
}

/// Parses a level.
pub fn parse_level(text: &str) -> Result<AccessLevel, ApiError> {
    text.parse::<AccessLevel>()
        .map_err(|e| ApiError::invalid("level", e.message))
}

// ---- operations, by owner ---------------------------------------------------------------

async fn changed(s: &AppState, owner: &Address) {
    if let Some(p) = s.presence.get() {
        p.policy_changed(owner).await;
    }
}

async fn list(s: &AppState, owner: &Address) -> Result<Json<ContactList>, ApiError> {
    let contacts = s.contacts.list_contacts(owner).await?;
    Ok(Json(ContactList {
        owner: owner.to_string(),
        list_uri: format!("sip:{}", confab_presence::rls::list_uri(owner)),
        contacts: contacts.iter().map(ContactView::from).collect(),
    }))
}

async fn add(
    s: &AppState,
    owner: &Address,
    body: NewContact,
) -> Result<(StatusCode, Json<ContactView>), ApiError> {
    let contact = parse_contact(owner, &body.address)?;
    let name = body.display_name.as_deref().map(parse_name).transpose()?;
    let group = body.group.as_deref().map(parse_group).transpose()?;
    let c = s.contacts.add_contact(owner, &contact, name, group).await?;
    changed(s, owner).await;
    Ok((StatusCode::CREATED, Json(ContactView::from(&c))))
}

async fn remove(
    s: &AppState,
    owner: &Address,
    contact: &str,
    query: Result<Query<RemoveQuery>, axum::extract::rejection::QueryRejection>,
) -> Result<StatusCode, ApiError> {
    let Query(q) = query.map_err(|e| ApiError::invalid("query", e.body_text()))?;
    let contact = parse_contact(owner, contact)?;
    let group = q.group.as_deref().map(parse_group).transpose()?;
    if s.contacts
        .remove_contact(owner, &contact, group.as_ref())
        .await?
    {
        changed(s, owner).await;
        Ok(StatusCode::NO_CONTENT)
    } else {
        Err(ApiError::not_found(match group {
            Some(g) => format!("{contact} is not in group `{g}` of {owner}'s contacts"),
            None => format!("{contact} is not one of {owner}'s contacts"),
        }))
    }
}

async fn policy(s: &AppState, owner: &Address) -> Result<Json<PolicyView>, ApiError> {
    let settings = s.contacts.presence_settings(owner).await?;
    Ok(Json(PolicyView::from(&settings)))
}

async fn patch_policy(
    s: &AppState,
    owner: &Address,
    body: PolicyPatch,
) -> Result<Json<PolicyView>, ApiError> {
    s.contacts
        .set_confirm_strangers(owner, body.confirm_strangers)
        .await?;
    changed(s, owner).await;
    policy(s, owner).await
}

async fn put_rule(
    s: &AppState,
    owner: &Address,
    watcher: &str,
    level: AccessLevel,
) -> Result<Json<RuleView>, ApiError> {
    let w = parse_watcher(watcher)?;
    if matches!(&w, WatcherPattern::Address(a) if a == owner) {
        return Err(ApiError::invalid(
            "watcher",
            format!("{owner} always sees their own presence"),
        ));
    }
    s.contacts.set_presence_rule(owner, &w, Some(level)).await?;
    changed(s, owner).await;
    Ok(Json(RuleView {
        watcher: w.to_string(),
        level,
    }))
}

async fn delete_rule(s: &AppState, owner: &Address, watcher: &str) -> Result<StatusCode, ApiError> {
    let w = parse_watcher(watcher)?;
    if s.contacts.set_presence_rule(owner, &w, None).await? {
        changed(s, owner).await;
        Ok(StatusCode::NO_CONTENT)
    } else {
        Err(ApiError::not_found(format!(
            "{owner} has no presence rule for {w}"
        )))
    }
}

// ---- user API ----------------------------------------------------------------------------

/// `GET /api/user/v1/contacts`.
pub async fn user_list(
    user: DigestUser,
    State(s): State<AppState>,
) -> Result<Json<ContactList>, ApiError> {
    list(&s, &user.address).await
}

/// `POST /api/user/v1/contacts`.
pub async fn user_add(
    user: DigestUser,
    State(s): State<AppState>,
    ApiJson(body): ApiJson<NewContact>,
) -> Result<(StatusCode, Json<ContactView>), ApiError> {
    add(&s, &user.address, body).await
}

/// `DELETE /api/user/v1/contacts/{contact}`.
pub async fn user_remove(
    user: DigestUser,
    State(s): State<AppState>,
    PathParam(contact): PathParam,
    query: Result<Query<RemoveQuery>, axum::extract::rejection::QueryRejection>,
) -> Result<StatusCode, ApiError> {
    remove(&s, &user.address, &contact, query).await
}

/// `GET /api/user/v1/presence-policy`.
pub async fn user_policy(
    user: DigestUser,
    State(s): State<AppState>,
) -> Result<Json<PolicyView>, ApiError> {
    policy(&s, &user.address).await
}

/// `PATCH /api/user/v1/presence-policy`.
pub async fn user_patch_policy(
    user: DigestUser,
    State(s): State<AppState>,
    ApiJson(body): ApiJson<PolicyPatch>,
) -> Result<Json<PolicyView>, ApiError> {
    patch_policy(&s, &user.address, body).await
}

/// `PUT /api/user/v1/presence-policy/rules/{watcher}`.
pub async fn user_put_rule(
    user: DigestUser,
    State(s): State<AppState>,
    PathParam(watcher): PathParam,
    ApiJson(body): ApiJson<SetRule>,
) -> Result<Json<RuleView>, ApiError> {
    let level = parse_level(&body.level)?;
    put_rule(&s, &user.address, &watcher, level).await
}

/// `DELETE /api/user/v1/presence-policy/rules/{watcher}`.
pub async fn user_delete_rule(
    user: DigestUser,
    State(s): State<AppState>,
    PathParam(watcher): PathParam,
) -> Result<StatusCode, ApiError> {
    delete_rule(&s, &user.address, &watcher).await
}

/// `GET /api/user/v1/presence-policy/pending`.
pub async fn user_pending(
    user: DigestUser,
    State(s): State<AppState>,
) -> Result<Json<PendingList>, ApiError> {
    let Some(p) = s.presence.get() else {
        return Err(ApiError::unavailable(
            "the presence role is not running in this process",
            5,
        ));
    };
    Ok(Json(PendingList {
        watchers: p
            .pending_watchers(&user.address)
            .into_iter()
            .map(|w| PendingView {
                watcher: w.watcher,
                since: w.since.to_string(),
                subscriptions: w.subscriptions,
            })
            .collect(),
    }))
}

/// `POST /api/user/v1/presence-policy/pending/{watcher}`: allow (at a level, default
/// public) or block a watcher; stored as a rule for that address.
pub async fn user_decide(
    user: DigestUser,
    State(s): State<AppState>,
    PathParam(watcher): PathParam,
    ApiJson(body): ApiJson<Decide>,
) -> Result<Json<RuleView>, ApiError> {
    let level = match body.decision.as_str() {
        "allow" => match body.level.as_deref() {
            None => AccessLevel::Public,
            Some(l) => match parse_level(l)? {
                AccessLevel::Blocked => {
                    return Err(ApiError::invalid(
                        "level",
                        "`allow` needs a level that is not `blocked` (use decision `block`)",
                    ));
                }
                l => l,
            },
        },
        "block" => {
            if body.level.is_some() {
                return Err(ApiError::invalid("level", "`block` takes no level"));
            }
            AccessLevel::Blocked
        }
        other => {
            return Err(ApiError::invalid(
                "decision",
                format!("`{other}` is not a decision (allow, block)"),
            ));
        }
    };
    let w = parse_watcher(&watcher)?;
    if w.is_domain() {
        return Err(ApiError::invalid(
            "watcher",
            "a pending watcher is one address (user@domain); use the rules for a domain",
        ));
    }
    put_rule(&s, &user.address, &watcher, level).await
}

// ---- admin API ---------------------------------------------------------------------------

/// `{address}` and a second path parameter.
#[derive(Debug)]
pub struct TwoParams(pub String, pub String);

impl<S: Send + Sync> FromRequestParts<S> for TwoParams {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, ApiError> {
        axum::extract::Path::<(String, String)>::from_request_parts(parts, state)
            .await
            .map(|p| TwoParams(p.0.0, p.0.1))
            .map_err(|e| ApiError::invalid("path", e.body_text()))
    }
}

fn owner(s: &AppState, text: &str) -> Result<Address, ApiError> {
    views::parse_address(text, &s.domains).map_err(|e| ApiError::invalid("address", e.message))
}

/// `GET /api/admin/v1/users/{address}/contacts`.
pub async fn admin_list(
    _auth: AdminToken,
    State(s): State<AppState>,
    PathParam(address): PathParam,
) -> Result<Json<ContactList>, ApiError> {
    list(&s, &owner(&s, &address)?).await
}

/// `POST /api/admin/v1/users/{address}/contacts`.
pub async fn admin_add(
    auth: AdminToken,
    State(s): State<AppState>,
    PathParam(address): PathParam,
    ApiJson(body): ApiJson<NewContact>,
) -> Result<(StatusCode, Json<ContactView>), ApiError> {
    let o = owner(&s, &address)?;
    let r = add(&s, &o, body).await?;
    tracing::info!(token = %auth.name, owner = %o, contact = %r.1.address, "contact added");
    Ok(r)
}

/// `DELETE /api/admin/v1/users/{address}/contacts/{contact}`.
pub async fn admin_remove(
    auth: AdminToken,
    State(s): State<AppState>,
    TwoParams(address, contact): TwoParams,
    query: Result<Query<RemoveQuery>, axum::extract::rejection::QueryRejection>,
) -> Result<StatusCode, ApiError> {
    let o = owner(&s, &address)?;
    let r = remove(&s, &o, &contact, query).await?;
    tracing::info!(token = %auth.name, owner = %o, contact, "contact removed");
    Ok(r)
}

/// `GET /api/admin/v1/users/{address}/presence-policy`.
pub async fn admin_policy(
    _auth: AdminToken,
    State(s): State<AppState>,
    PathParam(address): PathParam,
) -> Result<Json<PolicyView>, ApiError> {
    policy(&s, &owner(&s, &address)?).await
}

/// `PATCH /api/admin/v1/users/{address}/presence-policy`.
pub async fn admin_patch_policy(
    _auth: AdminToken,
    State(s): State<AppState>,
    PathParam(address): PathParam,
    ApiJson(body): ApiJson<PolicyPatch>,
) -> Result<Json<PolicyView>, ApiError> {
    patch_policy(&s, &owner(&s, &address)?, body).await
}

/// `PUT /api/admin/v1/users/{address}/presence-policy/rules/{watcher}`.
pub async fn admin_put_rule(
    _auth: AdminToken,
    State(s): State<AppState>,
    TwoParams(address, watcher): TwoParams,
    ApiJson(body): ApiJson<SetRule>,
) -> Result<Json<RuleView>, ApiError> {
    let o = owner(&s, &address)?;
    let level = parse_level(&body.level)?;
    put_rule(&s, &o, &watcher, level).await
}

/// `DELETE /api/admin/v1/users/{address}/presence-policy/rules/{watcher}`.
pub async fn admin_delete_rule(
    _auth: AdminToken,
    State(s): State<AppState>,
    TwoParams(address, watcher): TwoParams,
) -> Result<StatusCode, ApiError> {
    delete_rule(&s, &owner(&s, &address)?, &watcher).await
}
