//! One module per page (or family of pages).
pub mod account;
pub mod costs;
pub mod deployments;
pub mod home;
pub mod incidents;
pub mod kafka;
pub mod login;
pub mod manifests;
pub mod not_found;
pub mod probe_runs;
pub mod settings;
pub mod targets;
