//! Confab's durable store (work in progress: the SQLite implementation is being written).
