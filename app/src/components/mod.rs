//! Reusable pieces of the UI.
pub mod common;
pub mod layout;
pub mod time;
