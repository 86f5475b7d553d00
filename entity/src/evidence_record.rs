//! `evidence_records`: one piece of evidence (certificate, contract, statement, record) of an
//! organisation, counted only once an officer has verified it and while it is valid.

use sea_orm::entity::prelude::*;

#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "evidence_records")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false, column_type = "Text")]
    pub id: String,
    #[sea_orm(column_type = "Text")]
    pub organisation_id: String,
    /// Set when the record applies to one node only (e.g. its structure chart).
    #[sea_orm(column_type = "Text", nullable)]
    pub node_id: Option<String>,
    #[sea_orm(column_type = "Text")]
    pub kind: String,
    #[sea_orm(column_type = "Text", nullable)]
    pub service_name: Option<String>,
    /// The kind's typed fields, as JSON.
    #[sea_orm(column_type = "Text")]
    pub fields: String,
    pub valid_from: Option<Date>,
    pub valid_until: Option<Date>,
    /// ISMAP: a renewal application is pending (更新申請中).
    pub renewal_pending: bool,
    #[sea_orm(column_type = "Text", nullable)]
    pub verified_by: Option<String>,
    pub verified_at: Option<DateTimeUtc>,
    #[sea_orm(column_type = "Text", nullable)]
    pub revoked_by: Option<String>,
    pub revoked_at: Option<DateTimeUtc>,
    #[sea_orm(column_type = "Text", nullable)]
    pub revoked_reason: Option<String>,
    /// The day its lapse (expiry) was cascaded, so the sweep runs once per record.
    pub lapse_handled_on: Option<Date>,
    #[sea_orm(column_type = "Text")]
    pub created_by: String,
    pub created_at: DateTimeUtc,
    pub updated_at: DateTimeUtc,
    pub version: i64,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
