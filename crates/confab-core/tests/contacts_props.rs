//! Property tests of the contact-list and presence-policy parsers: any input is either
//! refused with an error naming its field or accepted, never a panic; what is accepted
//! prints back to a text that parses to the same value.

use confab_core::contacts::{AccessLevel, GroupName, WatcherPattern};
use proptest::prelude::*;

proptest! {
    #[test]
    fn watcher_patterns_never_panic_and_round_trip(s in "\\PC{0,80}") {
        match WatcherPattern::parse(&s) {
            Ok(w) => prop_assert_eq!(WatcherPattern::parse(w.as_str()).unwrap(), w),
            Err(e) => prop_assert_eq!(e.field, "watcher"),
        }
    }

    #[test]
    fn watcher_patterns_of_address_shapes(user in "[a-z0-9._-]{0,12}", domain in "[a-zA-Z0-9.-]{0,20}") {
        let text = format!("{user}@{domain}");
        if let Ok(w) = WatcherPattern::parse(&text) {
            prop_assert!(!w.is_domain());
            prop_assert_eq!(WatcherPattern::parse(&w.to_string()).unwrap(), w);
        }
        if let Ok(w) = WatcherPattern::parse(&domain) {
            prop_assert!(w.is_domain());
            prop_assert_eq!(WatcherPattern::parse(w.as_str()).unwrap(), w);
        }
    }

    #[test]
    fn group_names_never_panic_and_round_trip(s in "\\PC{0,80}|[\\x00-\\x1f ]{0,5}") {
        match GroupName::parse(&s) {
            Ok(g) => {
                prop_assert!(!g.as_str().is_empty() && g.as_str().chars().count() <= 64);
                prop_assert_eq!(GroupName::parse(g.as_str()).unwrap(), g);
            }
            Err(e) => prop_assert_eq!(e.field, "group"),
        }
    }

    #[test]
    fn levels_never_panic(s in "\\PC{0,20}") {
        match s.parse::<AccessLevel>() {
            Ok(l) => prop_assert_eq!(l.as_str().parse::<AccessLevel>().unwrap(), l),
            Err(e) => prop_assert_eq!(e.field, "level"),
        }
    }
}
