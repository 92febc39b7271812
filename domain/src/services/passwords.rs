//! argon2id password hashing, run on the blocking pool so it never stalls the async workers.

use crate::error::{DomainError, DomainResult};
use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use argon2::{Algorithm, Argon2, Params, Version};
use rand::rngs::OsRng;

/// OWASP's argon2id baseline: 19 MiB, 2 iterations, 1 lane.
fn hasher() -> Argon2<'static> {
    let params = Params::new(19 * 1024, 2, 1, None).unwrap_or_default();
    Argon2::new(Algorithm::Argon2id, Version::V0x13, params)
}

pub async fn hash(password: String) -> DomainResult<String> {
    tokio::task::spawn_blocking(move || {
        let salt = SaltString::generate(&mut OsRng);
        hasher()
            .hash_password(password.as_bytes(), &salt)
            .map(|h| h.to_string())
            .map_err(DomainError::internal)
    })
    .await
    .map_err(DomainError::internal)?
}

/// Verifies `password` against a PHC string. A malformed stored hash counts as a mismatch.
pub async fn verify(password: String, phc: String) -> DomainResult<bool> {
    tokio::task::spawn_blocking(move || {
        let Ok(parsed) = PasswordHash::new(&phc) else {
            return false;
        };
        hasher()
            .verify_password(password.as_bytes(), &parsed)
            .is_ok()
    })
    .await
    .map_err(DomainError::internal)
}

/// A hash of a random password, verified against when the username does not exist so that
/// a wrong username and a wrong password take the same time.
pub async fn decoy_hash() -> String {
    static DECOY: tokio::sync::OnceCell<String> = tokio::sync::OnceCell::const_new();
    DECOY
        .get_or_init(|| async { hash(random_secret(24)).await.unwrap_or_default() })
        .await
        .clone()
}

/// A random URL-safe secret of `bytes` random bytes (hex-encoded).
pub fn random_secret(bytes: usize) -> String {
    use rand::RngCore;
    let mut buf = vec![0u8; bytes];
    OsRng.fill_bytes(&mut buf);
    hex::encode(buf)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn hash_then_verify() {
        let h = hash("correct horse battery".into()).await.unwrap();
        assert!(h.starts_with("$argon2id$"), "{h}");
        assert!(
            verify("correct horse battery".into(), h.clone())
                .await
                .unwrap()
        );
        assert!(!verify("wrong horse battery".into(), h).await.unwrap());
        assert!(!verify("x".into(), "not a phc string".into()).await.unwrap());
    }

    #[test]
    fn secrets_are_random() {
        let a = random_secret(32);
        assert_eq!(a.len(), 64);
        assert_ne!(a, random_secret(32));
    }
}
