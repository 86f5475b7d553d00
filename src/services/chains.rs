//! Organisations, consignment items (委託事項) and their chains of nodes.
//!
//! An item belongs to a municipality and has one tier-1 node, its direct contractor, in force by
//! the consignment contract. Every node below hangs under its parent, with no fixed depth, and is
//! created by a subcontract application (see `applications`).

use std::collections::{BTreeMap, BTreeSet, HashMap};

use chrono::{DateTime, NaiveDate, Utc};
use entity::{chain_node, consignment_item, organisation};
use sea_orm::sea_query::Expr;
use sea_orm::{
    ActiveModelTrait, ColumnTrait, ConnectionTrait, EntityTrait, PaginatorTrait, QueryFilter,
    QueryOrder, QuerySelect, Set,
};
use serde::{Deserialize, Serialize};
use validator::{Validate, ValidateEmail, ValidationError};

use crate::error::{ApiError, ErrorCode, FieldError};
use crate::services::access::Viewer;
use crate::services::new_id;
use crate::validation::{self, invalid, not_blank};

/// What kind of party an organisation is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum OrganisationKind {
    Municipality,
    NhiFederation,
    CentralAssociation,
    PaymentFund,
    Vendor,
    CloudProvider,
}

impl OrganisationKind {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Municipality => "municipality",
            Self::NhiFederation => "nhi_federation",
            Self::CentralAssociation => "central_association",
            Self::PaymentFund => "payment_fund",
            Self::Vendor => "vendor",
            Self::CloudProvider => "cloud_provider",
        }
    }
}

/// The PIA form's brackets for the number of handlers at the contractor.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum HandlerBracket {
    /// 10人未満
    #[serde(rename = "under_10")]
    Under10,
    /// 10人以上50人未満
    #[serde(rename = "from_10_to_49")]
    From10To49,
    /// 50人以上100人未満
    #[serde(rename = "from_50_to_99")]
    From50To99,
    /// 100人以上500人未満
    #[serde(rename = "from_100_to_499")]
    From100To499,
    /// 500人以上1,000人未満
    #[serde(rename = "from_500_to_999")]
    From500To999,
    /// 1,000人以上
    #[serde(rename = "from_1000")]
    From1000,
}

impl HandlerBracket {
    pub const ALL: [Self; 6] = [
        Self::Under10,
        Self::From10To49,
        Self::From50To99,
        Self::From100To499,
        Self::From500To999,
        Self::From1000,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Under10 => "under_10",
            Self::From10To49 => "from_10_to_49",
            Self::From50To99 => "from_50_to_99",
            Self::From100To499 => "from_100_to_499",
            Self::From500To999 => "from_500_to_999",
            Self::From1000 => "from_1000",
        }
    }

    /// The label the PIA form prints.
    pub fn label_ja(self) -> &'static str {
        match self {
            Self::Under10 => "10人未満",
            Self::From10To49 => "10人以上50人未満",
            Self::From50To99 => "50人以上100人未満",
            Self::From100To499 => "100人以上500人未満",
            Self::From500To999 => "500人以上1,000人未満",
            Self::From1000 => "1,000人以上",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|b| b.as_str() == s)
    }

    /// The fewest people the bracket allows (what the threshold test counts).
    pub fn lower_bound(self) -> u32 {
        match self {
            Self::Under10 => 0,
            Self::From10To49 => 10,
            Self::From50To99 => 50,
            Self::From100To499 => 100,
            Self::From500To999 => 500,
            Self::From1000 => 1000,
        }
    }
}

fn valid_corporate_number(value: &str) -> Result<(), ValidationError> {
    crate::domain::numbers::validate_corporate_number(value).map_err(|_| {
        invalid(
            "corporate_number",
            "法人番号は検査用数字を含む13桁の数字で入力してください。",
            "A corporate number is 13 digits with a valid check digit.",
        )
    })
}

fn emails(list: &[String]) -> Result<(), ValidationError> {
    if list.iter().all(|e| e.validate_email()) {
        return Ok(());
    }
    Err(invalid(
        "email",
        "メールアドレスの形式が正しくありません。",
        "Every contact must be a valid e-mail address.",
    ))
}

fn identifier(value: &str) -> Result<(), ValidationError> {
    let ok = !value.is_empty()
        && value.len() <= 64
        && value
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-');
    if ok {
        return Ok(());
    }
    Err(invalid(
        "identifier",
        "IDは半角英数字・「_」「-」の64文字以内で入力してください。",
        "An id is 1 to 64 ASCII letters, digits, '_' or '-'.",
    ))
}

/// An organisation to register or update.
#[derive(Debug, Clone, Serialize, Deserialize, Validate, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct OrganisationInput {
    /// Stable id; generated when omitted.
    #[validate(custom(function = "identifier"))]
    pub id: Option<String>,
    pub kind: OrganisationKind,
    #[validate(length(min = 1, max = 200), custom(function = "not_blank"))]
    pub name_ja: String,
    #[validate(length(max = 200))]
    pub name_en: Option<String>,
    #[validate(length(max = 300))]
    pub address: Option<String>,
    #[validate(length(max = 100))]
    pub representative: Option<String>,
    #[validate(custom(function = "valid_corporate_number"))]
    pub corporate_number: Option<String>,
    /// E-mail addresses for notifications.
    #[serde(default)]
    #[validate(length(max = 20), custom(function = "emails"))]
    pub contacts: Vec<String>,
}

/// An organisation as the API shows it. Contacts are shown to the organisation's own members
/// and to municipal staff only.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct OrganisationView {
    pub id: String,
    pub kind: String,
    pub name_ja: String,
    pub name_en: Option<String>,
    pub address: Option<String>,
    pub representative: Option<String>,
    pub corporate_number: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub contacts: Option<Vec<String>>,
}

impl OrganisationView {
    fn of(m: organisation::Model, viewer: &Viewer) -> Self {
        let show_contacts = viewer.is_member(&m.id) || !viewer.municipal.is_empty();
        Self {
            contacts: show_contacts.then(|| serde_json::from_str(&m.contacts).unwrap_or_default()),
            id: m.id,
            kind: m.kind,
            name_ja: m.name_ja,
            name_en: m.name_en,
            address: m.address,
            representative: m.representative,
            corporate_number: m.corporate_number,
        }
    }
}

fn conflict(field: &str, ja: &str, en: &str) -> ApiError {
    ApiError::new(ErrorCode::Conflict).with_details(vec![FieldError::new(field, ja, en)])
}

/// Registers an organisation (municipal staff and contractors may; a contractor registers the
/// subcontractors it proposes).
pub async fn create_organisation(
    db: &impl ConnectionTrait,
    viewer: &Viewer,
    input: OrganisationInput,
    now: DateTime<Utc>,
) -> Result<OrganisationView, ApiError> {
    if viewer.municipal_writer.is_empty() && viewer.contractor.is_empty() {
        return Err(ErrorCode::Forbidden.into());
    }
    let model = insert_organisation(db, input, now).await?;
    Ok(OrganisationView::of(model, viewer))
}

/// A `conflict` on `corporate_number` when another organisation than `id` has the number.
async fn corporate_number_free(
    db: &impl ConnectionTrait,
    number: Option<&str>,
    id: &str,
) -> Result<(), ApiError> {
    let Some(number) = number else {
        return Ok(());
    };
    let taken = organisation::Entity::find()
        .filter(organisation::Column::CorporateNumber.eq(number))
        .filter(organisation::Column::Id.ne(id))
        .count(db)
        .await?;
    if taken > 0 {
        return Err(conflict(
            "corporate_number",
            "その法人番号の組織は既に登録されています。",
            "An organisation with this corporate number exists.",
        ));
    }
    Ok(())
}

/// Checks and inserts an organisation, whoever asks (the callers decide who may).
pub async fn insert_organisation(
    db: &impl ConnectionTrait,
    input: OrganisationInput,
    now: DateTime<Utc>,
) -> Result<organisation::Model, ApiError> {
    validation::check(&input)?;
    let id = input.id.clone().unwrap_or_else(|| new_id(now));
    if organisation::Entity::find_by_id(&id)
        .one(db)
        .await?
        .is_some()
    {
        return Err(conflict(
            "id",
            "そのIDの組織は既に登録されています。",
            "An organisation with this id exists.",
        ));
    }
    corporate_number_free(db, input.corporate_number.as_deref(), &id).await?;
    organisation::ActiveModel {
        id: Set(id),
        kind: Set(input.kind.as_str().to_owned()),
        name_ja: Set(input.name_ja.trim().to_owned()),
        name_en: Set(input.name_en.filter(|n| !n.trim().is_empty())),
        created_at: Set(now),
        address: Set(input.address),
        representative: Set(input.representative),
        corporate_number: Set(input.corporate_number),
        contacts: Set(serde_json::to_string(&input.contacts).unwrap_or_else(|_| "[]".into())),
    }
    .insert(db)
    .await
    .map_err(Into::into)
}

/// Checks and applies new details of an organisation (its id and kind stay), whoever asks
/// (the callers decide who may).
pub async fn update_organisation(
    db: &impl ConnectionTrait,
    id: &str,
    input: OrganisationInput,
) -> Result<organisation::Model, ApiError> {
    validation::check(&input)?;
    let current = organisation::Entity::find_by_id(id)
        .one(db)
        .await?
        .ok_or(ErrorCode::NotFound)?;
    corporate_number_free(db, input.corporate_number.as_deref(), id).await?;
    let mut model: organisation::ActiveModel = current.into();
    model.name_ja = Set(input.name_ja.trim().to_owned());
    model.name_en = Set(input.name_en.filter(|n| !n.trim().is_empty()));
    model.address = Set(input.address);
    model.representative = Set(input.representative);
    model.corporate_number = Set(input.corporate_number);
    model.contacts = Set(serde_json::to_string(&input.contacts).unwrap_or_else(|_| "[]".into()));
    Ok(model.update(db).await?)
}

/// The organisation directory: names, addresses and corporate numbers are public registry
/// facts (国税庁 法人番号公表サイト), so every signed-in user may read them.
pub async fn list_organisations(
    db: &impl ConnectionTrait,
    viewer: &Viewer,
    kind: Option<&str>,
    page: Page,
) -> Result<Paged<OrganisationView>, ApiError> {
    let mut q = organisation::Entity::find().order_by_asc(organisation::Column::Id);
    if let Some(kind) = kind {
        q = q.filter(organisation::Column::Kind.eq(kind));
    }
    let total = q.clone().count(db).await?;
    let rows = q.offset(page.offset()).limit(page.limit()).all(db).await?;
    Ok(Paged::new(
        rows.into_iter()
            .map(|m| OrganisationView::of(m, viewer))
            .collect(),
        total,
        page,
    ))
}

pub async fn get_organisation(
    db: &impl ConnectionTrait,
    viewer: &Viewer,
    id: &str,
) -> Result<OrganisationView, ApiError> {
    let m = organisation::Entity::find_by_id(id)
        .one(db)
        .await?
        .ok_or(ErrorCode::NotFound)?;
    Ok(OrganisationView::of(m, viewer))
}

/// Paging parameters: `page` from 1, `per_page` up to 200.
#[derive(Debug, Clone, Copy, Deserialize, utoipa::IntoParams)]
pub struct Page {
    pub page: Option<u64>,
    pub per_page: Option<u64>,
}

impl Page {
    pub fn limit(self) -> u64 {
        self.per_page.unwrap_or(50).clamp(1, 200)
    }
    pub fn number(self) -> u64 {
        self.page.unwrap_or(1).max(1)
    }
    pub fn offset(self) -> u64 {
        (self.number() - 1) * self.limit()
    }
}

/// One page of a list.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct Paged<T> {
    pub items: Vec<T>,
    pub total: u64,
    pub page: u64,
    pub per_page: u64,
}

impl<T> Paged<T> {
    pub fn new(items: Vec<T>, total: u64, page: Page) -> Self {
        Self {
            items,
            total,
            page: page.number(),
            per_page: page.limit(),
        }
    }

    /// Pages a list already filtered in memory.
    pub fn slice(all: Vec<T>, page: Page) -> Self {
        let total = all.len() as u64;
        let items = all
            .into_iter()
            .skip(usize::try_from(page.offset()).unwrap_or(usize::MAX))
            .take(usize::try_from(page.limit()).unwrap_or(usize::MAX))
            .collect();
        Self::new(items, total, page)
    }
}

fn period_in_order(start: NaiveDate, end: NaiveDate, field: &str) -> Option<FieldError> {
    (end < start).then(|| {
        FieldError::new(
            field,
            "終了日は開始日以降の日付にしてください。",
            "The end date must not be before the start date.",
        )
    })
}

/// A consignment item to register, with its tier-1 contractor.
#[derive(Debug, Clone, Serialize, Deserialize, Validate, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ItemInput {
    /// The consigning municipality (the root consignor).
    #[validate(length(min = 1, max = 64))]
    pub municipality_id: String,
    /// 保有課.
    #[validate(length(max = 100))]
    pub owning_section: Option<String>,
    #[validate(length(min = 1, max = 200), custom(function = "not_blank"))]
    pub title: String,
    #[validate(length(min = 1, max = 4000), custom(function = "not_blank"))]
    pub content: String,
    pub handler_bracket: HandlerBracket,
    /// Personal-data items handled.
    #[validate(length(min = 1, max = 100))]
    pub data_items: Vec<String>,
    /// The PIA file (特定個人情報ファイル) the item belongs to.
    #[validate(length(min = 1, max = 200), custom(function = "not_blank"))]
    pub pia_file: String,
    /// 記録媒体, e.g. クラウドサーバー.
    #[validate(length(min = 1, max = 200), custom(function = "not_blank"))]
    pub recording_medium: String,
    pub period_start: NaiveDate,
    pub period_end: NaiveDate,
    /// The tier-1 contractor.
    #[validate(length(min = 1, max = 64))]
    pub contractor_id: String,
    /// 再委託の許諾方法 (the municipality's policy text).
    #[validate(length(min = 1, max = 4000), custom(function = "not_blank"))]
    pub subcontract_policy: String,
    /// 登録業務の名称 (the registered work the committee submission names, e.g. 国民健康保険).
    #[serde(default)]
    #[validate(length(min = 1, max = 200), custom(function = "not_blank"))]
    pub registered_work: Option<String>,
    /// 委託理由 (why the work is consigned, as the committee submission states it).
    #[serde(default)]
    #[validate(length(min = 1, max = 4000), custom(function = "not_blank"))]
    pub consignment_reason: Option<String>,
}

/// A consignment item as the API shows it.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct ItemView {
    pub id: String,
    pub municipality_id: String,
    pub owning_section: Option<String>,
    pub title: String,
    pub content: String,
    pub handler_bracket: String,
    pub handler_bracket_label: &'static str,
    pub data_items: Vec<String>,
    pub pia_file: String,
    pub recording_medium: String,
    pub period_start: NaiveDate,
    pub period_end: NaiveDate,
    pub contractor_id: String,
    pub subcontract_policy: String,
    pub registered_work: Option<String>,
    pub consignment_reason: Option<String>,
    pub version: i64,
}

impl From<consignment_item::Model> for ItemView {
    fn from(m: consignment_item::Model) -> Self {
        Self {
            handler_bracket_label: HandlerBracket::parse(&m.handler_bracket)
                .map_or("", HandlerBracket::label_ja),
            data_items: serde_json::from_str(&m.data_items).unwrap_or_default(),
            id: m.id,
            municipality_id: m.municipality_id,
            owning_section: m.owning_section,
            title: m.title,
            content: m.content,
            handler_bracket: m.handler_bracket,
            pia_file: m.pia_file,
            recording_medium: m.recording_medium,
            period_start: m.period_start,
            period_end: m.period_end,
            contractor_id: m.contractor_id,
            subcontract_policy: m.subcontract_policy,
            registered_work: m.registered_work,
            consignment_reason: m.consignment_reason,
            version: m.version,
        }
    }
}

async fn org_of_kind(
    db: &impl ConnectionTrait,
    id: &str,
    field: &str,
    want: Option<&str>,
) -> Result<Option<FieldError>, ApiError> {
    let Some(org) = organisation::Entity::find_by_id(id).one(db).await? else {
        return Ok(Some(FieldError::new(
            field,
            "その組織は登録されていません。",
            "No such organisation.",
        )));
    };
    Ok(match want {
        Some(kind) if org.kind != kind => Some(FieldError::new(
            field,
            format!("{}は地方公共団体ではありません。", org.name_ja),
            format!("{} is not a municipality.", org.name_ja),
        )),
        _ => None,
    })
}

/// Registers an item and its tier-1 node (in force by the consignment contract).
pub async fn create_item(
    db: &impl ConnectionTrait,
    viewer: &Viewer,
    input: ItemInput,
    now: DateTime<Utc>,
) -> Result<ItemView, ApiError> {
    if !viewer.writes_for(&input.municipality_id) {
        return Err(ErrorCode::Forbidden.into());
    }
    let mut errors = validation::errors_of(&input);
    errors.extend(period_in_order(
        input.period_start,
        input.period_end,
        "period_end",
    ));
    errors.extend(
        org_of_kind(
            db,
            &input.municipality_id,
            "municipality_id",
            Some("municipality"),
        )
        .await?,
    );
    errors.extend(org_of_kind(db, &input.contractor_id, "contractor_id", None).await?);
    validation::finish(errors)?;
    let id = new_id(now);
    let item = consignment_item::ActiveModel {
        id: Set(id.clone()),
        municipality_id: Set(input.municipality_id),
        owning_section: Set(input.owning_section),
        title: Set(input.title.trim().to_owned()),
        content: Set(input.content.clone()),
        handler_bracket: Set(input.handler_bracket.as_str().to_owned()),
        data_items: Set(serde_json::to_string(&input.data_items).unwrap_or_default()),
        pia_file: Set(input.pia_file),
        recording_medium: Set(input.recording_medium),
        period_start: Set(input.period_start),
        period_end: Set(input.period_end),
        contractor_id: Set(input.contractor_id.clone()),
        subcontract_policy: Set(input.subcontract_policy),
        registered_work: Set(input.registered_work.map(|s| s.trim().to_owned())),
        consignment_reason: Set(input.consignment_reason),
        created_at: Set(now),
        updated_at: Set(now),
        version: Set(1),
    }
    .insert(db)
    .await?;
    chain_node::ActiveModel {
        id: Set(new_id(now)),
        item_id: Set(id),
        parent_id: Set(None),
        tier: Set(1),
        contractor_id: Set(input.contractor_id),
        scope_of_work: Set(input.content),
        data_scope: Set(input.data_items.join("、")),
        reason: Set("委託契約による / By the consignment contract".to_owned()),
        capability: Set(String::new()),
        inspection_requirements: Set(String::new()),
        planned_amount: Set(None),
        structure_chart: Set("{\"tiers\":[]}".to_owned()),
        supervision: Set(String::new()),
        period_start: Set(input.period_start),
        period_end: Set(input.period_end),
        hosts_environment: Set(false),
        cloud_classification: Set(None),
        service_name: Set(None),
        advance_permission: Set(None),
        handler_bracket: Set(None),
        recording_medium: Set(None),
        responsible_person: Set(None),
        manager: Set(None),
        staff_count: Set(None),
        work_location: Set(None),
        permission_state: Set("permitted".to_owned()),
        state_changed_at: Set(now),
        state_reason: Set(Some("委託契約 / Consignment contract".to_owned())),
        created_at: Set(now),
        updated_at: Set(now),
        version: Set(1),
    }
    .insert(db)
    .await?;
    Ok(item.into())
}

/// Items the viewer may see: its municipalities' items, and items in whose chain its
/// organisation holds a node.
pub async fn list_items(
    db: &impl ConnectionTrait,
    viewer: &Viewer,
    page: Page,
) -> Result<Paged<ItemView>, ApiError> {
    let by_contractor: Vec<String> = chain_node::Entity::find()
        .select_only()
        .column(chain_node::Column::ItemId)
        .filter(chain_node::Column::ContractorId.is_in(viewer.contractor.iter().cloned()))
        .into_tuple()
        .all(db)
        .await?;
    let q = consignment_item::Entity::find()
        .filter(crate::services::sql::any_in([
            (
                consignment_item::Column::MunicipalityId,
                viewer.municipal.iter().cloned().collect(),
            ),
            (consignment_item::Column::Id, by_contractor),
        ]))
        .order_by_asc(consignment_item::Column::Id);
    let total = q.clone().count(db).await?;
    let rows = q.offset(page.offset()).limit(page.limit()).all(db).await?;
    Ok(Paged::new(
        rows.into_iter().map(ItemView::from).collect(),
        total,
        page,
    ))
}

/// An item, if the viewer may see it.
pub async fn get_item(
    db: &impl ConnectionTrait,
    viewer: &Viewer,
    id: &str,
) -> Result<consignment_item::Model, ApiError> {
    let item = consignment_item::Entity::find_by_id(id)
        .one(db)
        .await?
        .ok_or(ErrorCode::NotFound)?;
    if viewer.is_municipal(&item.municipality_id) {
        return Ok(item);
    }
    let mine = chain_node::Entity::find()
        .filter(chain_node::Column::ItemId.eq(id))
        .filter(chain_node::Column::ContractorId.is_in(viewer.contractor.iter().cloned()))
        .count(db)
        .await?;
    if mine > 0 {
        Ok(item)
    } else {
        Err(ErrorCode::NotFound.into())
    }
}

/// The nodes the viewer's organisations hold as contractor, each with its item: by item, then
/// tier.
pub async fn nodes_held(
    db: &impl ConnectionTrait,
    viewer: &Viewer,
) -> Result<Vec<(chain_node::Model, consignment_item::Model)>, ApiError> {
    let nodes = chain_node::Entity::find()
        .filter(chain_node::Column::ContractorId.is_in(viewer.contractor.iter().cloned()))
        .order_by_asc(chain_node::Column::ItemId)
        .order_by_asc(chain_node::Column::Tier)
        .order_by_asc(chain_node::Column::CreatedAt)
        .all(db)
        .await?;
    let mut out = Vec::new();
    for n in nodes {
        if let Some(item) = consignment_item::Entity::find_by_id(&n.item_id)
            .one(db)
            .await?
        {
            out.push((n, item));
        }
    }
    Ok(out)
}

/// The nodes of one item.
pub async fn nodes_of_item(
    db: &impl ConnectionTrait,
    item_id: &str,
) -> Result<Vec<chain_node::Model>, ApiError> {
    Ok(chain_node::Entity::find()
        .filter(chain_node::Column::ItemId.eq(item_id))
        .order_by_asc(chain_node::Column::Tier)
        .order_by_asc(chain_node::Column::CreatedAt)
        .all(db)
        .await?)
}

/// How much of a node the viewer may see.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum NodeAccess {
    /// Every field (municipal staff; the node's contractor; the parent's contractor).
    Full,
    /// Only who it is and whether it is permitted (an ancestor of the viewer's node, C5).
    Status,
}

/// What the viewer may see of each node of an item's chain; nodes missing from the map are
/// invisible to the viewer.
pub fn node_access(
    item: &consignment_item::Model,
    nodes: &[chain_node::Model],
    viewer: &Viewer,
) -> HashMap<String, NodeAccess> {
    let mut access = HashMap::new();
    if viewer.is_municipal(&item.municipality_id) {
        for n in nodes {
            access.insert(n.id.clone(), NodeAccess::Full);
        }
        return access;
    }
    let by_id: HashMap<&str, &chain_node::Model> =
        nodes.iter().map(|n| (n.id.as_str(), n)).collect();
    for n in nodes
        .iter()
        .filter(|n| viewer.is_contractor(&n.contractor_id))
    {
        access.insert(n.id.clone(), NodeAccess::Full);
        // Ancestors: status only (C5).
        let mut up = n.parent_id.as_deref();
        while let Some(p) = up.and_then(|p| by_id.get(p)) {
            access.entry(p.id.clone()).or_insert(NodeAccess::Status);
            up = p.parent_id.as_deref();
        }
    }
    // Nodes directly below one of the viewer's nodes.
    for n in nodes {
        if let Some(parent) = n.parent_id.as_deref().and_then(|p| by_id.get(p)) {
            if viewer.is_contractor(&parent.contractor_id) {
                access.insert(n.id.clone(), NodeAccess::Full);
            }
        }
    }
    access
}

/// Advance permission given at contract signing (BRIEF C4) with its three conditions.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Validate, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct AdvancePermission {
    /// The subcontractor is named in the contract.
    #[validate(length(min = 1, max = 200), custom(function = "not_blank"))]
    pub named_subcontractor: String,
    /// The documents that confirmed its capability.
    #[validate(length(min = 1, max = 2000), custom(function = "not_blank"))]
    pub capability_documents: String,
    /// The contractor agreed to report when the subcontract starts and periodically after.
    pub reporting_agreed: bool,
}

/// A node as the API shows it.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct NodeView {
    pub id: String,
    pub item_id: String,
    pub parent_id: Option<String>,
    pub tier: i32,
    pub contractor_id: String,
    pub contractor_name: String,
    pub permission_state: String,
    pub state_changed_at: DateTime<Utc>,
    pub access: NodeAccess,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub detail: Option<NodeDetail>,
    /// The nodes below, when shown as a tree.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    #[schema(no_recursion)]
    pub children: Vec<NodeView>,
}

/// The fields of a node, for those who may see them.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct NodeDetail {
    pub scope_of_work: String,
    pub data_scope: String,
    pub reason: String,
    pub capability: String,
    pub inspection_requirements: String,
    pub planned_amount: Option<i64>,
    pub structure_chart: serde_json::Value,
    pub supervision: String,
    pub period_start: NaiveDate,
    pub period_end: NaiveDate,
    pub hosts_environment: bool,
    pub cloud_classification: Option<String>,
    pub service_name: Option<String>,
    pub advance_permission: Option<serde_json::Value>,
    /// The handler-count bracket below tier 1 (tier 1's is its item's).
    pub handler_bracket: Option<String>,
    pub state_reason: Option<String>,
    pub version: i64,
}

fn node_view(
    n: &chain_node::Model,
    access: NodeAccess,
    names: &BTreeMap<String, String>,
) -> NodeView {
    let detail = (access == NodeAccess::Full).then(|| NodeDetail {
        scope_of_work: n.scope_of_work.clone(),
        data_scope: n.data_scope.clone(),
        reason: n.reason.clone(),
        capability: n.capability.clone(),
        inspection_requirements: n.inspection_requirements.clone(),
        planned_amount: n.planned_amount,
        structure_chart: serde_json::from_str(&n.structure_chart).unwrap_or_default(),
        supervision: n.supervision.clone(),
        period_start: n.period_start,
        period_end: n.period_end,
        hosts_environment: n.hosts_environment,
        cloud_classification: n.cloud_classification.clone(),
        service_name: n.service_name.clone(),
        advance_permission: n
            .advance_permission
            .as_deref()
            .and_then(|a| serde_json::from_str(a).ok()),
        handler_bracket: n.handler_bracket.clone(),
        state_reason: n.state_reason.clone(),
        version: n.version,
    });
    NodeView {
        id: n.id.clone(),
        item_id: n.item_id.clone(),
        parent_id: n.parent_id.clone(),
        tier: n.tier,
        contractor_id: n.contractor_id.clone(),
        contractor_name: names.get(&n.contractor_id).cloned().unwrap_or_default(),
        permission_state: n.permission_state.clone(),
        state_changed_at: n.state_changed_at,
        access,
        detail,
        children: Vec::new(),
    }
}

/// Organisation names by id.
pub async fn names(
    db: &impl ConnectionTrait,
    ids: impl IntoIterator<Item = String>,
) -> Result<BTreeMap<String, String>, ApiError> {
    let ids: BTreeSet<String> = ids.into_iter().collect();
    Ok(organisation::Entity::find()
        .filter(organisation::Column::Id.is_in(ids))
        .all(db)
        .await?
        .into_iter()
        .map(|o| (o.id, o.name_ja))
        .collect())
}

/// The names of the nodes' contractors and of the municipality.
pub async fn chain_names(
    db: &impl ConnectionTrait,
    nodes: &[chain_node::Model],
    municipality: &str,
) -> Result<BTreeMap<String, String>, ApiError> {
    names(
        db,
        nodes
            .iter()
            .map(|n| n.contractor_id.clone())
            .chain([municipality.to_owned()]),
    )
    .await
}

/// An item with its chain as a tree, cut to what the viewer may see.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct ItemTree {
    pub item: ItemView,
    pub municipality_name: String,
    pub nodes: Vec<NodeView>,
}

pub async fn item_tree(
    db: &impl ConnectionTrait,
    viewer: &Viewer,
    item_id: &str,
) -> Result<ItemTree, ApiError> {
    let item = get_item(db, viewer, item_id).await?;
    let nodes = nodes_of_item(db, item_id).await?;
    let access = node_access(&item, &nodes, viewer);
    let names = chain_names(db, &nodes, &item.municipality_id).await?;
    let mut views: Vec<NodeView> = nodes
        .iter()
        .filter_map(|n| access.get(&n.id).map(|a| node_view(n, *a, &names)))
        .collect();
    // Assemble bottom-up: deepest tiers first, each attached to its parent.
    views.sort_by_key(|v| std::cmp::Reverse(v.tier));
    let mut by_id: BTreeMap<String, NodeView> = BTreeMap::new();
    let mut order: Vec<String> = Vec::new();
    for v in views {
        order.push(v.id.clone());
        by_id.insert(v.id.clone(), v);
    }
    for id in &order {
        let parent = by_id.get(id).and_then(|v| v.parent_id.clone());
        if let Some(parent) = parent.filter(|p| by_id.contains_key(p)) {
            if let Some(mut child) = by_id.remove(id) {
                child.children.sort_by(|a, b| a.id.cmp(&b.id));
                if let Some(p) = by_id.get_mut(&parent) {
                    p.children.push(child);
                }
            }
        }
    }
    let mut roots: Vec<NodeView> = by_id.into_values().collect();
    roots.sort_by_key(|v| v.tier);
    Ok(ItemTree {
        municipality_name: names
            .get(&item.municipality_id)
            .cloned()
            .unwrap_or_default(),
        item: item.into(),
        nodes: roots,
    })
}

/// A node and its item, whoever asks (the caller decides what may be seen); `NotFound` if
/// either is missing.
pub async fn node_and_item(
    db: &impl ConnectionTrait,
    id: &str,
) -> Result<(chain_node::Model, consignment_item::Model), ApiError> {
    let node = chain_node::Entity::find_by_id(id)
        .one(db)
        .await?
        .ok_or(ErrorCode::NotFound)?;
    let item = consignment_item::Entity::find_by_id(&node.item_id)
        .one(db)
        .await?
        .ok_or(ErrorCode::NotFound)?;
    Ok((node, item))
}

/// A node with what the viewer may see of it; `NotFound` if nothing.
pub async fn get_node(
    db: &impl ConnectionTrait,
    viewer: &Viewer,
    id: &str,
) -> Result<(NodeView, consignment_item::Model), ApiError> {
    let (node, item) = node_and_item(db, id).await?;
    let nodes = nodes_of_item(db, &node.item_id).await?;
    let access = node_access(&item, &nodes, viewer);
    let Some(a) = access.get(id) else {
        return Err(ErrorCode::NotFound.into());
    };
    let names = names(db, [node.contractor_id.clone()]).await?;
    Ok((node_view(&node, *a, &names), item))
}

/// The municipality's classification of a cloud node (BRIEF 3: handles data, or no access).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum CloudClassificationInput {
    HandlesData,
    NoAccess,
}

/// Records the classification of a node whose contractor hosts the environment; only the root
/// municipality decides it.
pub async fn classify_node(
    db: &impl ConnectionTrait,
    viewer: &Viewer,
    id: &str,
    classification: CloudClassificationInput,
    expected_version: Option<i64>,
    now: DateTime<Utc>,
) -> Result<NodeView, ApiError> {
    let (view, item) = get_node(db, viewer, id).await?;
    if !viewer.writes_for(&item.municipality_id) {
        return Err(ErrorCode::Forbidden.into());
    }
    let current = view.detail.as_ref().map_or(0, |d| d.version);
    if !view.detail.as_ref().is_some_and(|d| d.hosts_environment) {
        return Err(ApiError::invalid_field(
            "cloud_classification",
            "この委託先は環境を提供するクラウド事業者として登録されていません。",
            "This node's contractor is not recorded as hosting the environment.",
        ));
    }
    if expected_version.is_some_and(|v| v != current) {
        return Err(ApiError::new(ErrorCode::StaleVersion).with_details(
            serde_json::json!({ "expected": expected_version, "current": current }),
        ));
    }
    let value = match classification {
        CloudClassificationInput::HandlesData => "handles_data",
        CloudClassificationInput::NoAccess => "no_access",
    };
    let updated = chain_node::Entity::update_many()
        .col_expr(chain_node::Column::CloudClassification, Expr::value(value))
        .col_expr(chain_node::Column::UpdatedAt, Expr::value(now))
        .col_expr(chain_node::Column::Version, Expr::value(current + 1))
        .filter(chain_node::Column::Id.eq(id))
        .filter(chain_node::Column::Version.eq(current))
        .exec(db)
        .await?;
    if updated.rows_affected != 1 {
        return Err(ErrorCode::StaleVersion.into());
    }
    Ok(get_node(db, viewer, id).await?.0)
}
