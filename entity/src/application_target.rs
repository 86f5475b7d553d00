//! `application_targets`: one municipality's decision on an application — the chain node it
//! would create under that municipality's item, and the workflow instance deciding it.

use sea_orm::entity::prelude::*;

#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "application_targets")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false, column_type = "Text")]
    pub id: String,
    #[sea_orm(column_type = "Text")]
    pub application_id: String,
    #[sea_orm(column_type = "Text")]
    pub municipality_id: String,
    #[sea_orm(column_type = "Text")]
    pub item_id: String,
    #[sea_orm(column_type = "Text")]
    pub parent_node_id: String,
    #[sea_orm(column_type = "Text", unique)]
    pub node_id: String,
    #[sea_orm(column_type = "Text", unique)]
    pub instance_id: String,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
