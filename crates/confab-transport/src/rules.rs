//! RFC 3261 §18 rules that need a parsed message (filled in below).
