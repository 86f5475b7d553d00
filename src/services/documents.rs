//! Loads what the documents need; `crate::documents` renders it.

use std::collections::HashMap;

use entity::{chain_node, consignment_item};
use sea_orm::{ColumnTrait, ConnectionTrait, EntityTrait, QueryFilter, QueryOrder};

use crate::documents::pia::{self, PermittedNode, PiaSection};
use crate::error::{ApiError, ErrorCode};
use crate::services::access::Viewer;
use crate::services::chains::{names, HandlerBracket};

/// The consignment section of one PIA file of `municipality`, for its own staff only.
pub async fn pia_section(
    db: &impl ConnectionTrait,
    viewer: &Viewer,
    municipality: &str,
    pia_file: &str,
) -> Result<PiaSection, ApiError> {
    if !viewer.is_municipal(municipality) {
        return Err(ErrorCode::NotFound.into());
    }
    let items = consignment_item::Entity::find()
        .filter(consignment_item::Column::MunicipalityId.eq(municipality))
        .filter(consignment_item::Column::PiaFile.eq(pia_file))
        .order_by_asc(consignment_item::Column::CreatedAt)
        .order_by_asc(consignment_item::Column::Id)
        .all(db)
        .await?;
    let nodes = chain_node::Entity::find()
        .filter(chain_node::Column::ItemId.is_in(items.iter().map(|i| i.id.clone())))
        .all(db)
        .await?;
    let org_names = names(
        db,
        nodes
            .iter()
            .map(|n| n.contractor_id.clone())
            .chain([municipality.to_owned()]),
    )
    .await?;
    let name = |id: &str| org_names.get(id).cloned().unwrap_or_else(|| id.to_owned());
    let by_id: HashMap<&str, &chain_node::Model> =
        nodes.iter().map(|n| (n.id.as_str(), n)).collect();
    let mut out = Vec::new();
    for (ix, item) in items.iter().enumerate() {
        let of_item = nodes.iter().filter(|n| n.item_id == item.id);
        let tier1 = of_item
            .clone()
            .find(|n| n.parent_id.is_none())
            .map_or_else(|| name(&item.contractor_id), |n| name(&n.contractor_id));
        // Permitted tiers below tier 1; a no-access cloud is not a tier (BRIEF 3).
        let below = of_item
            .filter(|n| n.tier >= 2 && n.permission_state == "permitted")
            .filter(|n| n.cloud_classification.as_deref() != Some("no_access"))
            .map(|n| PermittedNode {
                tier: n.tier,
                contractor: name(&n.contractor_id),
                parent_contractor: n
                    .parent_id
                    .as_deref()
                    .and_then(|p| by_id.get(p))
                    .map(|p| name(&p.contractor_id))
                    .unwrap_or_default(),
                scope_of_work: n.scope_of_work.clone(),
                cloud: n.hosts_environment,
            })
            .collect();
        out.push(pia::item(
            ix + 1,
            &item.title,
            &item.content,
            HandlerBracket::parse(&item.handler_bracket).map_or("", HandlerBracket::label_ja),
            &tier1,
            &item.subcontract_policy,
            below,
        ));
    }
    Ok(PiaSection {
        municipality: name(municipality),
        pia_file: pia_file.to_owned(),
        items: out,
    })
}
