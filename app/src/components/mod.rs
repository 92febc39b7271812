//! Reusable pieces of the UI.
pub mod charts;
pub mod common;
pub mod enhance;
pub mod findings;
pub mod layout;
pub mod sortable;
pub mod time;
