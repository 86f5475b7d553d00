//! `chain_nodes`: one contractor's place in a consignment item's chain; tier 1 is the direct
//! contractor, every node below hangs under its parent with no fixed depth.

use sea_orm::entity::prelude::*;

#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "chain_nodes")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false, column_type = "Text")]
    pub id: String,
    #[sea_orm(column_type = "Text")]
    pub item_id: String,
    /// `None` for the tier-1 node.
    #[sea_orm(column_type = "Text", nullable)]
    pub parent_id: Option<String>,
    pub tier: i32,
    #[sea_orm(column_type = "Text")]
    pub contractor_id: String,
    /// 再委託事項.
    #[sea_orm(column_type = "Text")]
    pub scope_of_work: String,
    /// 取り扱う特定個人情報の範囲.
    #[sea_orm(column_type = "Text")]
    pub data_scope: String,
    #[sea_orm(column_type = "Text")]
    pub reason: String,
    /// 履行能力.
    #[sea_orm(column_type = "Text")]
    pub capability: String,
    /// 立ち入り調査に係る要件.
    #[sea_orm(column_type = "Text")]
    pub inspection_requirements: String,
    /// 再委託予定金額 in yen.
    pub planned_amount: Option<i64>,
    /// 履行体制図, as JSON.
    #[sea_orm(column_type = "Text")]
    pub structure_chart: String,
    /// How the parent supervises this node (監督体制).
    #[sea_orm(column_type = "Text")]
    pub supervision: String,
    pub period_start: Date,
    pub period_end: Date,
    /// The contractor hosts the environment as a cloud provider.
    pub hosts_environment: bool,
    /// `handles_data` or `no_access`, decided by the municipality.
    #[sea_orm(column_type = "Text", nullable)]
    pub cloud_classification: Option<String>,
    /// The cloud service used (what ISMAP and certificates must cover).
    #[sea_orm(column_type = "Text", nullable)]
    pub service_name: Option<String>,
    /// Advance permission at contract signing with its three conditions, as JSON.
    #[sea_orm(column_type = "Text", nullable)]
    pub advance_permission: Option<String>,
    /// The PIA handler-count bracket of the node's contractor for this work (`from_10_to_49`, …);
    /// `None` for tier 1 (its item holds it) and for nodes recorded before it was asked.
    #[sea_orm(column_type = "Text", nullable)]
    pub handler_bracket: Option<String>,
    /// 処理させる情報項目の記録媒体 at this node (e.g. AWSクラウド上のサーバ); `None` for tier 1
    /// (its item holds it) and for nodes recorded before it was asked.
    #[sea_orm(column_type = "Text", nullable)]
    pub recording_medium: Option<String>,
    /// 履行体制図: the node's responsible person (責任者).
    #[sea_orm(column_type = "Text", nullable)]
    pub responsible_person: Option<String>,
    /// 履行体制図: its manager (管理者).
    #[sea_orm(column_type = "Text", nullable)]
    pub manager: Option<String>,
    /// 履行体制図: the staff working on it (従事者数).
    pub staff_count: Option<i32>,
    /// 履行体制図: where the work is done (作業場所).
    #[sea_orm(column_type = "Text", nullable)]
    pub work_location: Option<String>,
    /// `applying`, `permitted`, `suspended`, `rejected`, `withdrawn`, `revoked`, `terminated`.
    #[sea_orm(column_type = "Text")]
    pub permission_state: String,
    pub state_changed_at: DateTimeUtc,
    #[sea_orm(column_type = "Text", nullable)]
    pub state_reason: Option<String>,
    pub created_at: DateTimeUtc,
    pub updated_at: DateTimeUtc,
    pub version: i64,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
