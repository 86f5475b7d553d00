//! The only code that touches sea-orm. Every function takes a connection or a transaction
//! (`&impl ConnectionTrait`) so that a transition's writes commit together, and takes the time
//! as a parameter instead of reading the clock.

pub mod audit;
pub mod db_time;
pub mod idempotency;
pub mod outbox;
pub mod timers;

#[cfg(test)]
pub(crate) mod test_db;
