//! `deputies`: a registered deputy who may decide for a principal (代決) in one role and
//! organisation, for a period of days.

use sea_orm::entity::prelude::*;

#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "deputies")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false, column_type = "Text")]
    pub id: String,
    /// The approver who is absent.
    #[sea_orm(column_type = "Text")]
    pub principal_user_id: String,
    /// The user who may act instead.
    #[sea_orm(column_type = "Text")]
    pub deputy_user_id: String,
    #[sea_orm(column_type = "Text")]
    pub role: String,
    #[sea_orm(column_type = "Text")]
    pub organisation_id: String,
    pub valid_from: Date,
    pub valid_until: Option<Date>,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {
    #[sea_orm(
        belongs_to = "super::user::Entity",
        from = "Column::PrincipalUserId",
        to = "super::user::Column::Id",
        on_delete = "Cascade"
    )]
    Principal,
    #[sea_orm(
        belongs_to = "super::user::Entity",
        from = "Column::DeputyUserId",
        to = "super::user::Column::Id",
        on_delete = "Cascade"
    )]
    Deputy,
    #[sea_orm(
        belongs_to = "super::organisation::Entity",
        from = "Column::OrganisationId",
        to = "super::organisation::Column::Id",
        on_delete = "Restrict"
    )]
    Organisation,
}

impl ActiveModelBehavior for ActiveModel {}
