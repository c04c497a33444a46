//! Sans-IO SIP for Confab.
//!
//! What it does: parses and serializes SIP messages losslessly, gives typed access to the
//! headers a server needs, enforces size limits before allocating, and frames messages on
//! streams. What it does not do: sockets, clocks, randomness (the caller passes those in).
