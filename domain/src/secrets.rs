//! Encryption of target credentials at rest: ChaCha20-Poly1305 (authenticated) with a
//! 256-bit key from LOOKOUT_SECRET_KEY. A stored secret is `nonce (12 bytes) || ciphertext
//! || tag`; a wrong key or a tampered value fails to decrypt instead of yielding garbage.

use base64::Engine;
use chacha20poly1305::aead::{Aead, AeadCore, KeyInit, OsRng, Payload};
use chacha20poly1305::{ChaCha20Poly1305, Key, Nonce};

/// Binds ciphertexts to their purpose, so one cannot be replayed as another kind of secret.
const AAD: &[u8] = b"lookout.target.secret.v1";

#[derive(Clone)]
pub struct SecretBox {
    cipher: ChaCha20Poly1305,
}

impl std::fmt::Debug for SecretBox {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SecretBox(…)")
    }
}

impl SecretBox {
    /// Parses a key: 64 hex characters or the base64 of 32 bytes.
    pub fn from_config(raw: &str) -> Result<Self, String> {
        let raw = raw.trim();
        let bytes = if raw.len() == 64 && raw.chars().all(|c| c.is_ascii_hexdigit()) {
            hex::decode(raw).map_err(|e| e.to_string())?
        } else {
            base64::engine::general_purpose::STANDARD
                .decode(raw)
                .map_err(|_| "LOOKOUT_SECRET_KEY must be 64 hex characters or the base64 of 32 bytes (e.g. `openssl rand -hex 32`)".to_string())?
        };
        if bytes.len() != 32 {
            return Err(format!(
                "LOOKOUT_SECRET_KEY must hold 32 bytes, not {}",
                bytes.len()
            ));
        }
        Ok(SecretBox {
            cipher: ChaCha20Poly1305::new(Key::from_slice(&bytes)),
        })
    }

    pub fn seal(&self, plaintext: &str) -> Result<Vec<u8>, String> {
        let nonce = ChaCha20Poly1305::generate_nonce(&mut OsRng);
        let ct = self
            .cipher
            .encrypt(
                &nonce,
                Payload {
                    msg: plaintext.as_bytes(),
                    aad: AAD,
                },
            )
            .map_err(|_| "encryption failed".to_string())?;
        let mut out = nonce.to_vec();
        out.extend_from_slice(&ct);
        Ok(out)
    }

    pub fn open(&self, sealed: &[u8]) -> Result<String, String> {
        if sealed.len() < 12 + 16 {
            return Err("the stored secret is truncated".into());
        }
        let (nonce, ct) = sealed.split_at(12);
        let pt = self
            .cipher
            .decrypt(Nonce::from_slice(nonce), Payload { msg: ct, aad: AAD })
            .map_err(|_| {
                "the stored secret cannot be decrypted with LOOKOUT_SECRET_KEY (wrong key?)"
                    .to_string()
            })?;
        String::from_utf8(pt).map_err(|_| "the stored secret is not text".into())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const KEY: &str = "000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f";

    #[test]
    fn round_trip_and_tamper_detection() {
        let b = SecretBox::from_config(KEY).unwrap();
        let sealed = b.seal("hunter2-very-secret").unwrap();
        assert!(
            !sealed.windows(7).any(|w| w == b"hunter2"),
            "no plaintext in the sealed bytes"
        );
        assert_eq!(b.open(&sealed).unwrap(), "hunter2-very-secret");
        assert_ne!(
            b.seal("hunter2-very-secret").unwrap(),
            sealed,
            "a fresh nonce each time"
        );
        let mut bad = sealed.clone();
        let last = bad.len() - 1;
        bad[last] ^= 1;
        assert!(b.open(&bad).is_err());
        let other = SecretBox::from_config(&"ff".repeat(32)).unwrap();
        assert!(other.open(&sealed).is_err());
    }

    #[test]
    fn key_formats() {
        assert!(SecretBox::from_config(KEY).is_ok());
        let b64 = base64::engine::general_purpose::STANDARD.encode([7u8; 32]);
        assert!(SecretBox::from_config(&b64).is_ok());
        assert!(SecretBox::from_config("short").is_err());
        let b64_16 = base64::engine::general_purpose::STANDARD.encode([7u8; 16]);
        assert!(
            SecretBox::from_config(&b64_16)
                .unwrap_err()
                .contains("32 bytes")
        );
    }
}
