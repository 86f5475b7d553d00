//! Plain indexes, created and dropped by name, for the migrations that add several at once.

use sea_orm_migration::prelude::*;

/// `(name, table, columns)` of an index, its columns in order.
pub type PlainIndex = (&'static str, &'static str, &'static [&'static str]);

/// Creates each index.
pub async fn create(manager: &SchemaManager<'_>, indexes: &[PlainIndex]) -> Result<(), DbErr> {
    for (name, table, columns) in indexes {
        let mut index = Index::create();
        index.name(*name).table(Alias::new(*table));
        for column in *columns {
            index.col(Alias::new(*column));
        }
        manager.create_index(index.to_owned()).await?;
    }
    Ok(())
}

/// Drops each index.
pub async fn drop(manager: &SchemaManager<'_>, indexes: &[PlainIndex]) -> Result<(), DbErr> {
    for (name, table, _) in indexes {
        manager
            .drop_index(
                Index::drop()
                    .name(*name)
                    .table(Alias::new(*table))
                    .to_owned(),
            )
            .await?;
    }
    Ok(())
}
