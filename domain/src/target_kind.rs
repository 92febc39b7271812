//! The kind of a target (shared with the browser): a short name such as `redis`. Which kinds
//! a server supports, and everything a kind means (its connection string, its credentials,
//! its connection check, its probes), is registered in one place on the server:
//! `domain::kinds`. This type only carries the name, checked for shape; a well-shaped name
//! the server does not support is refused there, by name (`kinds::get`). Its own module so
//! that `targets` and `probe_runs` do not import each other.

use serde::{Deserialize, Serialize};
use std::borrow::Cow;
use std::fmt;
use std::str::FromStr;

#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct TargetKind(Cow<'static, str>);

impl TargetKind {
    pub const REDIS: TargetKind = TargetKind(Cow::Borrowed("redis"));
    pub const POSTGRES: TargetKind = TargetKind(Cow::Borrowed("postgres"));
    pub const KAFKA: TargetKind = TargetKind(Cow::Borrowed("kafka"));

    /// A kind name: 1–32 of `a-z`, `0-9`, `_`, `-`, starting with a letter (case and
    /// surrounding blanks are forgiven).
    pub fn new(name: &str) -> Result<Self, String> {
        let n = name.trim().to_ascii_lowercase();
        let ok = (1..=32).contains(&n.len())
            && n.starts_with(|c: char| c.is_ascii_lowercase())
            && n.chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || matches!(c, '_' | '-'));
        if ok {
            Ok(TargetKind(Cow::Owned(n)))
        } else {
            Err(format!(
                "invalid target kind {:?}: 1–32 of a–z, 0–9, '_', '-', starting with a letter",
                name.chars().take(40).collect::<String>()
            ))
        }
    }

    /// For kinds defined in code (`Kind::name`).
    pub const fn from_static(name: &'static str) -> Self {
        TargetKind(Cow::Borrowed(name))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for TargetKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl FromStr for TargetKind {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        TargetKind::new(s)
    }
}

impl TryFrom<String> for TargetKind {
    type Error = String;
    fn try_from(s: String) -> Result<Self, Self::Error> {
        TargetKind::new(&s)
    }
}

impl From<TargetKind> for String {
    fn from(k: TargetKind) -> String {
        k.0.into_owned()
    }
}

impl PartialEq<&str> for TargetKind {
    fn eq(&self, other: &&str) -> bool {
        self.0 == *other
    }
}

/// Stored as text (the column holds the name; the registry decides what it means).
#[cfg(feature = "server")]
mod sql {
    use super::TargetKind;
    use sqlx::postgres::{PgArgumentBuffer, PgTypeInfo, PgValueRef};
    use sqlx::{Decode, Encode, Postgres, Type};

    impl Type<Postgres> for TargetKind {
        fn type_info() -> PgTypeInfo {
            <String as Type<Postgres>>::type_info()
        }
        fn compatible(ty: &PgTypeInfo) -> bool {
            <String as Type<Postgres>>::compatible(ty)
        }
    }

    impl<'r> Decode<'r, Postgres> for TargetKind {
        fn decode(value: PgValueRef<'r>) -> Result<Self, sqlx::error::BoxDynError> {
            let s = <&str as Decode<Postgres>>::decode(value)?;
            Ok(TargetKind::new(s)?)
        }
    }

    impl Encode<'_, Postgres> for TargetKind {
        fn encode_by_ref(
            &self,
            buf: &mut PgArgumentBuffer,
        ) -> Result<sqlx::encode::IsNull, sqlx::error::BoxDynError> {
            <&str as Encode<Postgres>>::encode_by_ref(&self.as_str(), buf)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_checked_for_shape_only() {
        for (raw, ok) in [
            ("redis", Some("redis")),
            (" REDIS ", Some("redis")),
            ("object-store_2", Some("object-store_2")),
            ("", None),
            ("2redis", None),
            ("red is", None),
            ("redis;drop", None),
            ("é", None),
            (&"x".repeat(33), None),
        ] {
            assert_eq!(
                TargetKind::new(raw).ok().map(|k| k.to_string()),
                ok.map(str::to_string),
                "{raw:?}"
            );
        }
        let k: TargetKind = serde_json::from_str("\"Kafka\"").unwrap();
        assert_eq!(k, TargetKind::KAFKA);
        assert_eq!(serde_json::to_string(&k).unwrap(), "\"kafka\"");
        assert!(serde_json::from_str::<TargetKind>("\"no such\"").is_err());
    }
}
