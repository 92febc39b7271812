//! Reusable pieces of the UI.
pub mod charts;
pub mod common;
pub mod findings;
pub mod layout;
pub mod live;
pub mod sortable;
pub mod time;
