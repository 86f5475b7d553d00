//! Authentication: argon2id passwords, HS256 session tokens, the sign-in rate limit and the
//! [`AuthUser`] extractor that resolves a request's user and what they may do today.

mod extractor;
pub mod password;
pub mod rate_limit;
pub mod session;
pub mod token;

use serde::{Deserialize, Serialize};

pub use extractor::AuthUser;
pub use token::{Claims, IssuedToken, JwtKeys, TOKEN_COOKIE};

/// A role held in an organisation (`org` is `None` for product-wide roles).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct Grant {
    pub role: String,
    pub org: Option<String>,
}

/// The user may act as registered deputy (代決) for `principal`, in the principal's `grants`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Deputyship {
    /// The principal's user id.
    pub principal: String,
    pub grants: Vec<Grant>,
}
