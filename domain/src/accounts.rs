//! Accounts: users, roles, API tokens, the audit log, the caller (`Principal`) — plain data types shared by the server and the browser.

use serde::{Deserialize, Serialize};
use std::fmt;
use std::str::FromStr;
use time::OffsetDateTime;

/// Roles are ordered: every role can do what the roles before it can.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "server", derive(sqlx::Type))]
#[cfg_attr(
    feature = "server",
    sqlx(type_name = "user_role", rename_all = "lowercase")
)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    Viewer,
    Responder,
    Approver,
    Admin,
}

impl Role {
    pub const ALL: [Role; 4] = [Role::Viewer, Role::Responder, Role::Approver, Role::Admin];

    pub fn as_str(self) -> &'static str {
        match self {
            Role::Viewer => "viewer",
            Role::Responder => "responder",
            Role::Approver => "approver",
            Role::Admin => "admin",
        }
    }

    /// True when this role includes `needed`.
    pub fn allows(self, needed: Role) -> bool {
        self >= needed
    }
}

impl fmt::Display for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Role {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.trim().to_ascii_lowercase().as_str() {
            "viewer" => Ok(Role::Viewer),
            "responder" => Ok(Role::Responder),
            "approver" => Ok(Role::Approver),
            "admin" => Ok(Role::Admin),
            other => Err(format!(
                "unknown role {other:?}: expected viewer, responder, approver or admin"
            )),
        }
    }
}

/// How the caller proved who they are.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum AuthMethod {
    Session,
    Token,
    /// The operator's `lookout` subcommands (create-user, create-token) on the server host.
    Cli,
}

/// The authenticated caller of a request, set by the auth layer for every protected route.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Principal {
    /// The user, for sessions; the creating admin is not the caller for tokens, so `None`.
    pub user_id: Option<i64>,
    /// Username for sessions, `token:<name>` for API tokens.
    pub name: String,
    pub role: Role,
    pub method: AuthMethod,
    pub token_id: Option<i64>,
    /// A CI token limited to deployments of these services: the deployments API only, and
    /// only their deployments.
    pub deploy_services: Option<Vec<String>>,
    /// An ingest token: it may send OTLP traces and nothing else (and only it may).
    #[serde(default)]
    pub ingest: bool,
}

impl Principal {
    pub fn require(&self, needed: Role) -> Result<(), crate::DomainError> {
        if self.role.allows(needed) {
            Ok(())
        } else {
            Err(crate::DomainError::forbidden(format!(
                "this needs the {needed} role; you are signed in as {} with the {} role",
                self.name, self.role
            )))
        }
    }

    /// Whether this caller may act on deployments of `service` (every caller may, but a CI
    /// token scoped to deployments only for its services).
    pub fn may_deploy(&self, service: &str) -> Result<(), crate::DomainError> {
        match &self.deploy_services {
            Some(list) if !list.iter().any(|s| s == service) => {
                Err(crate::DomainError::forbidden(format!(
                    "{} is limited to deployments of {}: not {service}",
                    self.name,
                    list.join(", ")
                )))
            }
            _ => Ok(()),
        }
    }
}

/// Where a request came from, recorded in the audit log.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct RequestMeta {
    pub client_ip: String,
    pub request_id: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct UserView {
    pub id: i64,
    pub username: String,
    pub display_name: String,
    pub role: Role,
    pub disabled: bool,
    #[serde(with = "time::serde::rfc3339")]
    pub created_at: OffsetDateTime,
    #[serde(with = "time::serde::rfc3339::option")]
    pub last_login_at: Option<OffsetDateTime>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TokenView {
    pub id: i64,
    pub name: String,
    pub prefix: String,
    pub role: Role,
    pub created_by: Option<String>,
    #[serde(with = "time::serde::rfc3339")]
    pub created_at: OffsetDateTime,
    #[serde(with = "time::serde::rfc3339::option")]
    pub last_used_at: Option<OffsetDateTime>,
    #[serde(with = "time::serde::rfc3339::option")]
    pub revoked_at: Option<OffsetDateTime>,
    /// A CI token limited to deployments of these services (responder role; never approves).
    #[serde(default)]
    pub deploy_services: Option<Vec<String>>,
    /// `ingest` for a token that may only send OTLP traces; `None` for an ordinary token.
    #[serde(default)]
    pub scope: Option<String>,
}

/// A token as returned once, at creation. The secret is never stored or shown again.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NewToken {
    pub token: TokenView,
    pub secret: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AuditEntry {
    pub id: i64,
    #[serde(with = "time::serde::rfc3339")]
    pub at: OffsetDateTime,
    pub actor_name: String,
    pub action: String,
    pub target: String,
    pub details: String,
    pub client_ip: String,
    pub request_id: String,
}

/// Filters for the audit log; all optional, combined with AND.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct AuditFilter {
    pub actor: Option<String>,
    pub action: Option<String>,
    /// Keyset cursor: show entries with an id below this one.
    pub before_id: Option<i64>,
    pub limit: Option<u32>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AuditPage {
    pub entries: Vec<AuditEntry>,
    /// Pass as `before_id` to get the next (older) page; `None` on the last page.
    pub next_before_id: Option<i64>,
}

/// Validation rules shared by the form (for early feedback) and the server (the authority).
pub mod rules {
    pub const USERNAME_HELP: &str = "2–63 characters: lowercase letters, digits, '.', '_' or '-', starting with a letter or digit";
    pub const MIN_PASSWORD_LEN: usize = 12;
    pub const MAX_PASSWORD_LEN: usize = 256;

    pub fn check_username(name: &str) -> Result<(), String> {
        let ok = name.len() >= 2
            && name.len() <= 63
            && name
                .chars()
                .next()
                .is_some_and(|c| c.is_ascii_lowercase() || c.is_ascii_digit())
            && name.chars().all(|c| {
                c.is_ascii_lowercase() || c.is_ascii_digit() || matches!(c, '.' | '_' | '-')
            });
        if ok {
            Ok(())
        } else {
            Err(format!("invalid username {name:?}: {USERNAME_HELP}"))
        }
    }

    pub fn check_password(pw: &str) -> Result<(), String> {
        let n = pw.chars().count();
        if n < MIN_PASSWORD_LEN {
            return Err(format!(
                "the password is too short: at least {MIN_PASSWORD_LEN} characters"
            ));
        }
        if pw.len() > MAX_PASSWORD_LEN {
            return Err(format!(
                "the password is too long: at most {MAX_PASSWORD_LEN} bytes"
            ));
        }
        Ok(())
    }

    pub fn check_token_name(name: &str) -> Result<(), String> {
        let n = name.trim().chars().count();
        if (1..=100).contains(&n) && !name.chars().any(char::is_control) {
            Ok(())
        } else {
            Err("a token name is 1–100 printable characters".into())
        }
    }

    /// A person's display name: at most 100 characters (after trimming), none of them a
    /// control character (a name is shown in pages, exports and the audit log).
    pub fn check_display_name(name: &str) -> Result<(), String> {
        if name.trim().chars().count() <= 100 && !name.chars().any(char::is_control) {
            Ok(())
        } else {
            Err("a display name is at most 100 printable characters".into())
        }
    }

    #[cfg(test)]
    mod tests {
        use super::*;

        #[test]
        fn display_names() {
            for ok in ["", "Ada Lovelace", "Zoë Ng", &"x".repeat(100), "  padded  "] {
                assert!(check_display_name(ok).is_ok(), "{ok:?}");
            }
            for bad in [
                "bell\u{7}",
                "new\nline",
                "tab\there",
                "c1\u{85}",
                &"x".repeat(101),
            ] {
                assert!(check_display_name(bad).is_err(), "{bad:?}");
            }
        }

        #[test]
        fn usernames() {
            for ok in ["ab", "alice", "bob.smith", "x_1-2", "9lives"] {
                assert!(check_username(ok).is_ok(), "{ok}");
            }
            for bad in [
                "",
                "a",
                "Alice",
                "-x",
                ".x",
                "a b",
                "é",
                &"a".repeat(64),
                "a/b",
            ] {
                assert!(check_username(bad).is_err(), "{bad}");
            }
        }

        #[test]
        fn passwords() {
            assert!(check_password("short").is_err());
            assert!(check_password("exactly12chr").is_ok());
            assert!(check_password(&"x".repeat(257)).is_err());
        }

        #[test]
        fn token_names() {
            assert!(check_token_name("ci gate").is_ok());
            assert!(check_token_name("").is_err());
            assert!(check_token_name("   ").is_err());
            assert!(check_token_name("a\nb").is_err());
            assert!(check_token_name(&"n".repeat(101)).is_err());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn roles_are_ordered() {
        assert!(Role::Admin.allows(Role::Viewer));
        assert!(Role::Approver.allows(Role::Responder));
        assert!(!Role::Responder.allows(Role::Approver));
        assert!(!Role::Viewer.allows(Role::Responder));
        for r in Role::ALL {
            assert!(r.allows(r));
            assert_eq!(r.as_str().parse::<Role>(), Ok(r));
        }
        assert!("root".parse::<Role>().is_err());
    }
}
