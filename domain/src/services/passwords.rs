//! argon2id password hashing, run on the blocking pool so it never stalls the async workers.
//!
//! Each hash or verification holds 19 MiB for about a tenth of a second, so the number that
//! run at once is bounded by a process-wide set of slots (twice the CPU count, at least 2):
//! a caller that cannot get a slot within [`SLOT_WAIT`] gets `DomainError::Unavailable`
//! (503 with `Retry-After`) instead of queueing without end. Memory for hashing is thereby
//! bounded at slots × 19 MiB whatever arrives.

use crate::error::{DomainError, DomainResult};
use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use argon2::{Algorithm, Argon2, Params, Version};
use rand::rngs::OsRng;

/// OWASP's argon2id baseline: 19 MiB, 2 iterations, 1 lane.
fn hasher() -> Argon2<'static> {
    let params = Params::new(19 * 1024, 2, 1, None).unwrap_or_default();
    Argon2::new(Algorithm::Argon2id, Version::V0x13, params)
}

/// How long a caller waits for a hashing slot before it is told to come back.
pub const SLOT_WAIT: std::time::Duration = std::time::Duration::from_secs(2);

fn total_slots() -> usize {
    static N: std::sync::OnceLock<usize> = std::sync::OnceLock::new();
    *N.get_or_init(|| {
        let cpus = std::thread::available_parallelism().map_or(2, |n| n.get());
        (cpus * 2).max(2)
    })
}

fn slots() -> std::sync::Arc<tokio::sync::Semaphore> {
    static SLOTS: std::sync::OnceLock<std::sync::Arc<tokio::sync::Semaphore>> =
        std::sync::OnceLock::new();
    SLOTS
        .get_or_init(|| std::sync::Arc::new(tokio::sync::Semaphore::new(total_slots())))
        .clone()
}

static RUNS: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
static REFUSED: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);

/// Hashes and verifications started so far, and callers refused for want of a slot.
pub fn counters() -> (u64, u64) {
    use std::sync::atomic::Ordering::Relaxed;
    (RUNS.load(Relaxed), REFUSED.load(Relaxed))
}

/// The most argon2 computations that run at once.
pub fn slot_count() -> usize {
    total_slots()
}

/// A slot, held by the blocking computation itself (moved into it), so a caller that goes
/// away mid-hash does not free the slot before the memory is.
async fn slot() -> DomainResult<tokio::sync::OwnedSemaphorePermit> {
    match tokio::time::timeout(SLOT_WAIT, slots().acquire_owned()).await {
        Ok(Ok(p)) => {
            RUNS.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            Ok(p)
        }
        _ => {
            REFUSED.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            Err(DomainError::Unavailable {
                message: "Lookout is busy checking other sign-ins. Try again in a few seconds."
                    .into(),
                retry_after_secs: 2,
            })
        }
    }
}

pub async fn hash(password: String) -> DomainResult<String> {
    let slot = slot().await?;
    tokio::task::spawn_blocking(move || {
        let _slot = slot;
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
    let slot = slot().await?;
    tokio::task::spawn_blocking(move || {
        let _slot = slot;
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
pub async fn decoy_hash() -> DomainResult<String> {
    static DECOY: tokio::sync::OnceCell<String> = tokio::sync::OnceCell::const_new();
    // A failure (no hashing slot) is not cached: the next caller tries again.
    DECOY
        .get_or_try_init(|| hash(random_secret(24)))
        .await
        .cloned()
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
