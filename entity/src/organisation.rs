//! `organisations`: municipalities, contractors and other parties of a chain.

use sea_orm::entity::prelude::*;

#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "organisations")]
pub struct Model {
    /// A stable identifier chosen on creation (for example the corporate number).
    #[sea_orm(primary_key, auto_increment = false, column_type = "Text")]
    pub id: String,
    /// What kind of party this is (municipality, contractor, …).
    #[sea_orm(column_type = "Text")]
    pub kind: String,
    #[sea_orm(column_type = "Text")]
    pub name_ja: String,
    #[sea_orm(column_type = "Text", nullable)]
    pub name_en: Option<String>,
    pub created_at: DateTimeUtc,
    #[sea_orm(column_type = "Text", nullable)]
    pub address: Option<String>,
    /// 代表者.
    #[sea_orm(column_type = "Text", nullable)]
    pub representative: Option<String>,
    /// 法人番号: 13 digits with a check digit; unique when present.
    #[sea_orm(column_type = "Text", nullable)]
    pub corporate_number: Option<String>,
    /// Notification addresses, as a JSON array of strings.
    #[sea_orm(column_type = "Text")]
    pub contacts: String,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {
    #[sea_orm(has_many = "super::membership::Entity")]
    Membership,
}

impl Related<super::membership::Entity> for Entity {
    fn to() -> RelationDef {
        Relation::Membership.def()
    }
}

impl ActiveModelBehavior for ActiveModel {}
