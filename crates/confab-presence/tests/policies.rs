//! Stored policies and contact lists: who sees what after a change, as tables (issue 8
//! item 5). Each row is one watcher's subscription before the change (state, level) and
//! what the change must do to it: nothing (no NOTIFY), approve a pending watcher, or
//! re-level an active one (a NOTIFY with the newly filtered document).

use confab_core::contacts::{
    AccessLevel, Contact, GroupName, PresencePolicy, PresenceRule, PresenceSettings, WatcherPattern,
};
use confab_core::{Address, DisplayName};
use confab_presence::access::{self, AccessPolicy};
use confab_presence::aggregate::offline_document;
use confab_presence::policies::{Decision, access_policy, reevaluate};
use confab_presence::subscription::State;
use confab_xml::pidf::{Basic, Person, Presence, Tuple};
use confab_xml::rpid::{Activities, Activity, ActivityKind};

use AccessLevel::{Blocked, Colleague, Personal, Public};

fn a(s: &str) -> Address {
    Address::parse(s).unwrap()
}

fn contact(s: &str) -> Contact {
    Contact {
        address: a(s),
        display_name: Some(DisplayName::parse("A friend").unwrap()),
        groups: vec![GroupName::parse("Friends").unwrap()],
    }
}

fn rule(w: &str, level: AccessLevel) -> PresenceRule {
    PresenceRule {
        watcher: WatcherPattern::parse(w).unwrap(),
        level,
    }
}

fn settings(contacts: &[&str], rules: Vec<PresenceRule>, confirm: bool) -> AccessPolicy {
    access_policy(&PresenceSettings {
        contacts: contacts.iter().map(|c| contact(c)).collect(),
        policy: PresencePolicy {
            rules,
            confirm_strangers: confirm,
        },
    })
}

const ALICE: &str = "alice@example.com";

/// (watcher, state before, level notified before, expected decision)
type Row = (&'static str, State, AccessLevel, Decision);

#[track_caller]
fn check(policy: &AccessPolicy, rows: &[Row]) {
    for (w, state, level, want) in rows {
        let got = reevaluate(*state, *level, Some(&a(w)), &a(ALICE), policy);
        assert_eq!(got, *want, "watcher {w} ({state:?} at {level:?})");
    }
}

#[test]
fn the_default_policy_changes_nothing() {
    // What every watcher got before stored policies: the domain defaults.
    check(
        &settings(&[], vec![], false),
        &[
            (
                "bob@example.com",
                State::Active,
                Colleague,
                Decision::Unchanged,
            ),
            ("eve@other.org", State::Active, Public, Decision::Unchanged),
            (ALICE, State::Active, Personal, Decision::Unchanged),
        ],
    );
}

#[test]
fn contacts_are_personal_and_rules_win() {
    let p = settings(
        &["bob@example.com", "carol@other.org"],
        vec![
            rule("dave@example.com", Blocked),
            rule("other.org", Colleague),
            rule("carol@other.org", Public),
        ],
        false,
    );
    check(
        &p,
        &[
            // A colleague who became a contact: personal now.
            (
                "bob@example.com",
                State::Active,
                Colleague,
                Decision::Relevel(Personal),
            ),
            // A contact with an explicit lower rule: the rule wins.
            (
                "carol@other.org",
                State::Active,
                Public,
                Decision::Unchanged,
            ),
            // Blocked: sees offline from now on.
            (
                "dave@example.com",
                State::Active,
                Colleague,
                Decision::Relevel(Blocked),
            ),
            // A whole domain raised to colleague.
            (
                "eve@other.org",
                State::Active,
                Public,
                Decision::Relevel(Colleague),
            ),
            // Untouched watchers are not notified.
            (
                "frank@example.com",
                State::Active,
                Colleague,
                Decision::Unchanged,
            ),
            ("gina@third.net", State::Active, Public, Decision::Unchanged),
            // The user always sees everything.
            (ALICE, State::Active, Personal, Decision::Unchanged),
        ],
    );
    // Removing the contact and the rules: back to the defaults, only the changed re-level.
    let p2 = settings(&[], vec![], false);
    check(
        &p2,
        &[
            (
                "bob@example.com",
                State::Active,
                Personal,
                Decision::Relevel(Colleague),
            ),
            (
                "dave@example.com",
                State::Active,
                Blocked,
                Decision::Relevel(Colleague),
            ),
            (
                "eve@other.org",
                State::Active,
                Colleague,
                Decision::Relevel(Public),
            ),
            (
                "carol@other.org",
                State::Active,
                Public,
                Decision::Unchanged,
            ),
        ],
    );
}

#[test]
fn pending_watchers_wait_until_placed() {
    // confirm_strangers: a stranger waits; colleagues and contacts do not.
    let p = settings(&["carol@other.org"], vec![], true);
    assert_eq!(
        access::authorize(Some(&a("eve@other.org")), &a(ALICE), &p),
        access::Authorization::Pending
    );
    assert_eq!(
        access::authorize(Some(&a("carol@other.org")), &a(ALICE), &p),
        access::Authorization::Accept(Personal)
    );
    assert_eq!(
        access::authorize(Some(&a("bob@example.com")), &a(ALICE), &p),
        access::Authorization::Accept(Colleague)
    );
    check(
        &p,
        &[
            // Still nobody placed eve: nothing happens, she sees no state.
            ("eve@other.org", State::Pending, Public, Decision::Unchanged),
        ],
    );
    // The user allows eve (a rule at public), blocks mallory, adds zoe as a contact.
    let p = settings(
        &["carol@other.org", "zoe@other.org"],
        vec![
            rule("eve@other.org", Public),
            rule("mallory@other.org", Blocked),
        ],
        true,
    );
    check(
        &p,
        &[
            (
                "eve@other.org",
                State::Pending,
                Public,
                Decision::Approve(Public),
            ),
            // Polite blocking: active, sees offline, cannot tell.
            (
                "mallory@other.org",
                State::Pending,
                Public,
                Decision::Approve(Blocked),
            ),
            (
                "zoe@other.org",
                State::Pending,
                Public,
                Decision::Approve(Personal),
            ),
            (
                "yann@other.org",
                State::Pending,
                Public,
                Decision::Unchanged,
            ),
        ],
    );
    // Turning confirmation on never sends an active watcher back to pending.
    check(
        &settings(&[], vec![], true),
        &[("eve@other.org", State::Active, Public, Decision::Unchanged)],
    );
}

/// What each level sees of one document, after a change of level: the filter every NOTIFY
/// body goes through.
#[test]
fn what_a_relevelled_watcher_sees() {
    let mut doc = Presence::new("sip:alice@example.com");
    doc.tuples.push(Tuple::new("t1", Basic::Open));
    doc.notes.push(confab_xml::Text::new("in Paris"));
    doc.persons.push(Person {
        id: "p".into(),
        activities: Some(Activities {
            values: vec![Activity::Known(ActivityKind::Meeting)],
            ..Activities::default()
        }),
        notes: vec![confab_xml::Text::new("quarterly review")],
        ..Person::default()
    });
    let blocked = access::filter(&doc, Blocked);
    assert_eq!(blocked, offline_document("sip:alice@example.com"));
    let public = access::filter(&doc, Public).to_bytes();
    let public = String::from_utf8(public).unwrap();
    assert!(public.contains("<basic>open</basic>"), "{public}");
    assert!(
        !public.contains("quarterly review") && !public.contains("meeting"),
        "{public}"
    );
    let colleague = String::from_utf8(access::filter(&doc, Colleague).to_bytes()).unwrap();
    assert!(
        colleague.contains("quarterly review") && colleague.contains("meeting"),
        "{colleague}"
    );
    assert_eq!(access::filter(&doc, Personal), doc);
}
