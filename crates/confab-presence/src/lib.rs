//! Presence role (work in progress).
