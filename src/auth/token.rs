//! Session tokens: JWT signed with HS256 only, `exp` required and checked against the
//! application [`Clock`](crate::clock::Clock) rather than the system clock.

use std::fmt;

use chrono::{DateTime, Duration, Utc};
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::error::ApiError;

/// Name of the HttpOnly cookie that carries the token for browsers.
pub const TOKEN_COOKIE: &str = "itaku_token";

/// The claims of a session token.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Claims {
    /// User id.
    pub sub: String,
    /// Token id, so that one token can be revoked.
    pub jti: String,
    /// Issued at (seconds since the epoch).
    pub iat: i64,
    /// Expires at (seconds since the epoch).
    pub exp: i64,
}

/// A freshly signed token.
#[derive(Debug, Clone)]
pub struct IssuedToken {
    pub token: String,
    pub jti: String,
    pub expires_at: DateTime<Utc>,
}

/// Why a presented token was refused (logged, never shown to clients).
#[derive(Debug, thiserror::Error)]
pub enum TokenError {
    #[error("token rejected: {0}")]
    Invalid(#[from] jsonwebtoken::errors::Error),
    #[error("token expired at {0}")]
    Expired(i64),
}

/// Signing and verification keys derived from `jwt_secret`.
#[derive(Clone)]
pub struct JwtKeys {
    encoding: EncodingKey,
    decoding: DecodingKey,
    validation: Validation,
}

impl fmt::Debug for JwtKeys {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("JwtKeys(<redacted>)")
    }
}

impl JwtKeys {
    /// Keys for HS256 with the given secret.
    pub fn from_secret(secret: &[u8]) -> Self {
        // Only HS256 is accepted: `alg: none` and every other algorithm fail to validate.
        let mut validation = Validation::new(Algorithm::HS256);
        validation.set_required_spec_claims(&["exp", "sub"]);
        // Expiry is checked in `verify` against the injected clock, with no leeway.
        validation.validate_exp = false;
        validation.leeway = 0;
        Self {
            encoding: EncodingKey::from_secret(secret),
            decoding: DecodingKey::from_secret(secret),
            validation,
        }
    }

    /// Signs a token for `user_id`, valid for `ttl` from `now`.
    pub fn issue(
        &self,
        user_id: &str,
        now: DateTime<Utc>,
        ttl: Duration,
    ) -> Result<IssuedToken, ApiError> {
        let expires_at = now + ttl;
        let claims = Claims {
            sub: user_id.to_owned(),
            jti: Uuid::new_v4().to_string(),
            iat: now.timestamp(),
            exp: expires_at.timestamp(),
        };
        let token = jsonwebtoken::encode(&Header::new(Algorithm::HS256), &claims, &self.encoding)
            .map_err(ApiError::internal)?;
        Ok(IssuedToken {
            token,
            jti: claims.jti,
            expires_at,
        })
    }

    /// Checks signature, algorithm and expiry at `now`; returns the claims.
    pub fn verify(&self, token: &str, now: DateTime<Utc>) -> Result<Claims, TokenError> {
        let claims =
            jsonwebtoken::decode::<Claims>(token, &self.decoding, &self.validation)?.claims;
        if claims.exp <= now.timestamp() {
            return Err(TokenError::Expired(claims.exp));
        }
        Ok(claims)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn keys() -> JwtKeys {
        JwtKeys::from_secret(b"0123456789abcdef0123456789abcdef")
    }

    fn t0() -> DateTime<Utc> {
        DateTime::from_timestamp(1_800_000_000, 0).unwrap()
    }

    #[test]
    fn an_issued_token_verifies_until_it_expires() {
        let issued = keys().issue("user-1", t0(), Duration::minutes(15)).unwrap();
        let claims = keys()
            .verify(&issued.token, t0() + Duration::minutes(14))
            .unwrap();
        assert_eq!(claims.sub, "user-1");
        assert_eq!(claims.jti, issued.jti);
        assert_eq!(claims.exp - claims.iat, 15 * 60);
        assert!(matches!(
            keys().verify(&issued.token, t0() + Duration::minutes(15)),
            Err(TokenError::Expired(_))
        ));
    }

    #[test]
    fn a_token_signed_with_another_secret_is_refused() {
        let other = JwtKeys::from_secret(b"another secret of thirty-two byt");
        let issued = other.issue("user-1", t0(), Duration::minutes(15)).unwrap();
        assert!(matches!(
            keys().verify(&issued.token, t0()),
            Err(TokenError::Invalid(_))
        ));
    }
}
