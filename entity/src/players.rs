//! `players`: one row per known player, with the latest login attributes.

use sea_orm::entity::prelude::*;
use serde::{Deserialize, Serialize};

#[derive(Clone, Debug, PartialEq, DeriveEntityModel, Serialize, Deserialize)]
#[sea_orm(table_name = "players")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub workspace_id: Uuid,
    #[sea_orm(primary_key, auto_increment = false)]
    pub user_id: String,
    pub first_seen_at: Option<DateTimeUtc>,
    pub last_seen_at: Option<DateTimeUtc>,
    pub clan_id: Option<String>,
    pub level: Option<i64>,
    pub device: Option<String>,
    pub country: Option<String>,
    pub language: Option<String>,
    pub platform: Option<String>,
    pub register_date: Option<Date>,
    pub last_login_at: Option<DateTimeUtc>,
    pub updated_at: DateTimeUtc,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
