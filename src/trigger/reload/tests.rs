//! Reloader tests.
