//! Significant changes (重要な変更): which changes a subcontract permission would make to a PIA
//! file count as significant is each municipality's choice; a significant change must be
//! assessed before it takes effect (事前; さいたま市 seed: 「重要な変更に該当するため」 事前). Pure.

use chrono::NaiveDate;
use serde::{Deserialize, Serialize};

use crate::error::Msg;
use crate::workflow::registry::Unmet;

/// A kind of change a subcontract permission makes to a PIA file.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize, utoipa::ToSchema,
)]
#[serde(rename_all = "snake_case")]
pub enum ChangeItem {
    /// ④再委託の有無 turns to 再委託する: the item's first subcontract.
    SubcontractIntroduced,
    /// ③委託先名 / ⑥再委託事項 name a new subcontractor (every permission).
    NewSubcontractor,
    /// A cloud provider that handles the data joins the chain.
    CloudProviderAdded,
    /// The file's handlers (しきい値判断 II 2) reach 500 or more.
    #[serde(rename = "handlers_reach_500")]
    HandlersReach500,
}

impl ChangeItem {
    pub const ALL: [Self; 4] = [
        Self::SubcontractIntroduced,
        Self::NewSubcontractor,
        Self::CloudProviderAdded,
        Self::HandlersReach500,
    ];

    /// The default set (unconfirmed: no primary text lists the significant changes of a
    /// consignment; each municipality sets its own): a cloud provider handling the data joins
    /// the chain (相模原市 seed: moving to the cloud triggered a re-evaluation) and the handlers
    /// reach 500 (BRIEF 5: it can change the required assessment).
    pub const DEFAULT: [Self; 2] = [Self::CloudProviderAdded, Self::HandlersReach500];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::SubcontractIntroduced => "subcontract_introduced",
            Self::NewSubcontractor => "new_subcontractor",
            Self::CloudProviderAdded => "cloud_provider_added",
            Self::HandlersReach500 => "handlers_reach_500",
        }
    }

    /// The item of the PIA report it changes, as the change history names it.
    pub fn label(self) -> Msg {
        match self {
            Self::SubcontractIntroduced => Msg::new(
                "4. 特定個人情報ファイルの取扱いの委託 ④再委託の有無",
                "4. Consignment, ④ subcontracting",
            ),
            Self::NewSubcontractor => Msg::new(
                "4. 特定個人情報ファイルの取扱いの委託 ⑥再委託事項",
                "4. Consignment, ⑥ subcontracted work",
            ),
            Self::CloudProviderAdded => Msg::new(
                "4. 特定個人情報ファイルの取扱いの委託 ⑤再委託の許諾方法(クラウドサービスの利用)",
                "4. Consignment, ⑤ permission method (a cloud service)",
            ),
            Self::HandlersReach500 => Msg::new(
                "II しきい値判断項目 2. 取扱者数",
                "II Threshold items, 2. handlers",
            ),
        }
    }
}

/// What a pending node would change.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct ChangeFacts {
    /// No other subcontract of the item is permitted or suspended.
    pub first_subcontract: bool,
    /// The node's contractor hosts the environment and is not classified `no_access`.
    pub cloud_handling_data: bool,
    /// Permitting it takes the file's handlers from under 500 to 500 or more.
    pub handlers_reach_500: bool,
}

/// The significant changes the node would make, among the `enabled` kinds, in their order.
pub fn changes(enabled: &[ChangeItem], facts: ChangeFacts) -> Vec<ChangeItem> {
    ChangeItem::ALL
        .into_iter()
        .filter(|i| enabled.contains(i))
        .filter(|i| match i {
            ChangeItem::SubcontractIntroduced => facts.first_subcontract,
            ChangeItem::NewSubcontractor => true,
            ChangeItem::CloudProviderAdded => facts.cloud_handling_data,
            ChangeItem::HandlersReach500 => facts.handlers_reach_500,
        })
        .collect()
}

/// The refusal reason for a significant change not assessed in advance.
pub fn not_assessed(item: ChangeItem, pia_file: &str, node_id: &str) -> Unmet {
    let label = item.label();
    Unmet::new(
        "significant_change_not_assessed",
        format!(
            "特定個人情報ファイル「{pia_file}」の重要な変更({})に当たるため、許諾の前に特定個人情報保護評価(事前)の実施を記録してください",
            label.ja
        ),
        format!(
            "This is a significant change to the PIA file \"{pia_file}\" ({}); record the assessment, made in advance, before permitting it",
            label.en
        ),
    )
    .with_detail(serde_json::json!({
        "item": item,
        "pia_file": pia_file,
        "node_id": node_id,
    }))
}

/// The refusal reason when the assessment that covered the change was withdrawn: the
/// withdrawal and its reason are named, so the officer sees why the permission is blocked again.
pub fn withdrawn(
    mut unmet: Unmet,
    assessment_id: &str,
    assessed_on: NaiveDate,
    reason: &str,
) -> Unmet {
    unmet.message.ja.push_str(&format!(
        "(記録されていた評価({assessed_on}実施)は取り下げられています。理由: {reason})"
    ));
    unmet.message.en.push_str(&format!(
        " (the assessment recorded as made on {assessed_on} was withdrawn: {reason})"
    ));
    if let Some(serde_json::Value::Object(detail)) = unmet.detail.as_mut() {
        detail.insert(
            "withdrawn_assessment".to_owned(),
            serde_json::json!({ "id": assessment_id, "reason": reason }),
        );
    }
    unmet
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_enabled_kinds_that_apply_are_significant() {
        let facts = ChangeFacts {
            first_subcontract: true,
            cloud_handling_data: false,
            handlers_reach_500: true,
        };
        assert_eq!(
            changes(&ChangeItem::DEFAULT, facts),
            [ChangeItem::HandlersReach500]
        );
        assert_eq!(
            changes(&ChangeItem::ALL, facts),
            [
                ChangeItem::SubcontractIntroduced,
                ChangeItem::NewSubcontractor,
                ChangeItem::HandlersReach500
            ]
        );
        assert_eq!(
            changes(&[ChangeItem::NewSubcontractor], ChangeFacts::default()),
            [ChangeItem::NewSubcontractor],
            "every permission names a new subcontractor"
        );
        assert!(
            changes(&[], facts).is_empty(),
            "a municipality may switch the gate off"
        );
        assert!(changes(&ChangeItem::DEFAULT, ChangeFacts::default()).is_empty());
    }

    #[test]
    fn the_refusal_names_the_item_and_the_file() {
        let u = not_assessed(ChangeItem::HandlersReach500, "国保ファイル", "n1");
        assert_eq!(u.code, "significant_change_not_assessed");
        assert!(u.message.ja.contains("II しきい値判断項目 2. 取扱者数"));
        assert!(u.message.ja.contains("事前"));
        assert_eq!(u.detail.unwrap()["item"], "handlers_reach_500");
    }
}
