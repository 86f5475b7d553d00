//! `pia_files`: a municipality's PIA file (特定個人情報ファイル) with the inputs of its threshold
//! test (しきい値判断) that the chains cannot tell: the people in the file and the
//! municipality's own staff handling it, as the form's brackets.

use sea_orm::entity::prelude::*;

#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "pia_files")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false, column_type = "Text")]
    pub id: String,
    #[sea_orm(column_type = "Text")]
    pub municipality_id: String,
    /// The file's name, as recorded on the consignment items (`pia_file`).
    #[sea_orm(column_type = "Text")]
    pub name: String,
    /// 対象人数 bracket (`under_1000`, …).
    #[sea_orm(column_type = "Text")]
    pub people_bracket: String,
    /// The municipality's own staff handling the file, as a handler bracket (`from_100_to_499`, …).
    #[sea_orm(column_type = "Text")]
    pub own_staff_bracket: String,
    /// いつ時点の計数か.
    pub counted_on: Date,
    #[sea_orm(column_type = "Text")]
    pub updated_by: String,
    pub created_at: DateTimeUtc,
    pub updated_at: DateTimeUtc,
    pub version: i64,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
