//! Password hashing with argon2id (the crate's default parameters) and a random salt.

use argon2::password_hash::rand_core::OsRng;
use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use argon2::Argon2;
use secrecy::{ExposeSecret, SecretString};

use crate::error::ApiError;

/// Shortest password accepted for a new account.
pub const MIN_PASSWORD_CHARS: usize = 12;

/// Hashes a password into a PHC string (`$argon2id$v=19$…`). CPU-heavy: call off the async
/// executor ([`hash_blocking`]) in request paths.
pub fn hash(password: &SecretString) -> Result<String, argon2::password_hash::Error> {
    let salt = SaltString::generate(&mut OsRng);
    Ok(Argon2::default()
        .hash_password(password.expose_secret().as_bytes(), &salt)?
        .to_string())
}

/// Whether `password` matches the PHC string. A malformed stored hash never matches.
pub fn verify(password: &SecretString, phc: &str) -> bool {
    match PasswordHash::new(phc) {
        Ok(parsed) => Argon2::default()
            .verify_password(password.expose_secret().as_bytes(), &parsed)
            .is_ok(),
        Err(error) => {
            tracing::error!(%error, "a stored password hash does not parse");
            false
        }
    }
}

/// Whether `phc` is an argon2 PHC string (without checking any password against it).
pub fn is_phc(phc: &str) -> bool {
    PasswordHash::new(phc).is_ok_and(|parsed| parsed.algorithm.as_str().starts_with("argon2"))
}

/// [`hash`] on the blocking thread pool.
pub async fn hash_blocking(password: SecretString) -> Result<String, ApiError> {
    tokio::task::spawn_blocking(move || hash(&password))
        .await
        .map_err(ApiError::internal)?
        .map_err(|error| ApiError::internal(error.to_string()))
}

/// [`verify`] on the blocking thread pool.
pub async fn verify_blocking(password: SecretString, phc: String) -> Result<bool, ApiError> {
    tokio::task::spawn_blocking(move || verify(&password, &phc))
        .await
        .map_err(ApiError::internal)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_hash_verifies_its_password_and_no_other() {
        let password = SecretString::from("correct horse battery staple");
        let phc = hash(&password).unwrap();
        assert!(phc.starts_with("$argon2id$"), "{phc}");
        assert!(verify(&password, &phc));
        assert!(!verify(
            &SecretString::from("correct horse battery stapler"),
            &phc
        ));
    }

    #[test]
    fn two_hashes_of_one_password_differ_by_salt() {
        let password = SecretString::from("correct horse battery staple");
        assert_ne!(hash(&password).unwrap(), hash(&password).unwrap());
    }

    #[test]
    fn only_argon2_phc_strings_are_taken_for_hashes() {
        let phc = hash(&SecretString::from("correct horse battery staple")).unwrap();
        assert!(is_phc(&phc));
        assert!(!is_phc("not-a-phc-string"));
        assert!(!is_phc("$pbkdf2-sha256$i=1000$c2FsdA$aGFzaA"));
    }

    #[test]
    fn a_malformed_stored_hash_never_matches() {
        assert!(!verify(&SecretString::from("anything"), "not-a-phc-string"));
    }
}
