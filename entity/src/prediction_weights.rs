//! `prediction_weights`: a facet model's weight per trait, applied to the standardized value.

use sea_orm::entity::prelude::*;
use serde::{Deserialize, Serialize};

#[derive(Clone, Debug, PartialEq, DeriveEntityModel, Serialize, Deserialize)]
#[sea_orm(table_name = "prediction_weights")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub workspace_id: Uuid,
    #[sea_orm(primary_key, auto_increment = false)]
    pub category: String,
    #[sea_orm(primary_key, auto_increment = false)]
    pub facet: String,
    #[sea_orm(primary_key, auto_increment = false)]
    pub trait_id: Uuid,
    pub mean: f64,
    pub sd: f64,
    pub weight: f64,
    /// The value a player without one counts as (0 for counts and sums over
    /// no events); NULL: the training mean.
    pub fill: Option<f64>,
    /// What the missing-value indicator adds when the value is missing, and when it is not.
    pub missing_on: f64,
    pub missing_off: f64,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
