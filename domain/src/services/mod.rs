//! Operations on the domain, called by both the UI's server functions and `/api/v1`.
//! Each checks the caller's role itself: authorization never depends on which adapter called.

pub mod accounts;
pub mod auth;
pub mod incidents;
pub mod passwords;
pub mod targets;
