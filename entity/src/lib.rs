//! sea-orm entities: the tables' shape only; behaviour lives in `itaku::services`.

pub mod deputy;
pub mod membership;
pub mod organisation;
pub mod revoked_token;
pub mod user;

pub mod prelude {
    pub use super::deputy::Entity as Deputy;
    pub use super::membership::Entity as Membership;
    pub use super::organisation::Entity as Organisation;
    pub use super::revoked_token::Entity as RevokedToken;
    pub use super::user::Entity as User;
}
