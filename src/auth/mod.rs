//! Authentication: argon2id passwords, HS256 session tokens, the sign-in rate limit and the
//! [`AuthUser`] extractor that resolves a request's user and what they may do today.

mod extractor;
pub mod password;
pub mod rate_limit;
pub mod session;
pub mod token;

pub use extractor::{AuthUser, Authenticating};
pub use token::{Claims, IssuedToken, JwtKeys, TOKEN_COOKIE};

pub use crate::workflow::model::{Deputyship, Grant};
