//! Test-only crate. Its test `tests/layering.rs` reads the ```` ```toml layering ```` block of
//! `ARCHITECTURE.md` and the output of `cargo metadata`, and fails when a crate's normal
//! dependencies (followed transitively) break its tier's rules. It has no library code.
