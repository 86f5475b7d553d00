//! Mail: templates, the transport (SMTP or files) and the dispatcher that drains the outbox.
//!
//! Delivery is at least once. On PostgreSQL a dispatcher locks one due row
//! (`FOR UPDATE SKIP LOCKED`), sends it, and marks it sent in that same transaction only after
//! the server accepted it, so any number of replicas never send a row twice while they run. A
//! crash (or a lost database connection) between the server's acceptance and the commit leaves
//! that one row pending, and it is sent again: its `Message-ID` is derived from the row, so
//! receivers can tell the copy. SQLite has no row locks, and its single connection serves every
//! request, so no transaction stays open while sending: a dispatcher leases the row instead
//! (moves its next attempt past the longest possible send, with a compare-and-set) and other
//! dispatchers on the same file skip it; a sender that dies leaves it due when the lease ends.

pub mod dispatcher;
pub mod settings;
pub mod templates;
pub mod transport;

pub use dispatcher::{DispatchReport, Dispatcher};
pub use settings::{MailSettings, SmtpSecurity};
pub use templates::{MailTemplates, RenderedMail};
pub use transport::MailTransport;
