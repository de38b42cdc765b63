//! Trying a trait before saving it: the same validation and the same
//! compiled statement as a real run, evaluated inside a transaction that is
//! rolled back, so nothing is written. Answers with a sample of values and a
//! summary of all of them.

use sea_orm::{
    ConnectionTrait, DbBackend, EntityTrait, Statement, TransactionTrait, sea_query::Alias,
};
use serde_json::Value;

use entity::trait_values;

use super::{
    TraitInput, compiler,
    definition::ResultType,
    service::{new_trait, result_type_of},
    values::value_json,
};
use crate::{
    Engine, Result,
    auth::{Permission, Principal},
};

/// Sampled entities, at most.
pub const MAX_SAMPLE: u64 = 100;

pub struct TraitPreview {
    /// (entity id, value) of the first entities in order.
    pub values: Vec<(String, Value)>,
    /// Entities with a value, and without one.
    pub count: i64,
    pub nulls: i64,
    /// Numbers: the smallest, largest and mean value.
    pub min: Option<f64>,
    pub max: Option<f64>,
    pub mean: Option<f64>,
    /// Other types: the most frequent values (as text) with their entities.
    pub top: Vec<(String, i64)>,
}

impl Engine {
    pub async fn preview_trait(
        &self,
        p: &Principal,
        input: TraitInput,
        sample: Option<u64>,
    ) -> Result<TraitPreview> {
        p.require(Permission::Write)?;
        let model = new_trait(p, input)?;
        let plan = self.plan_trait(&self.db, &model).await?;
        let rt = result_type_of(&model)?;
        let backend = self.db.get_database_backend();
        let compiled =
            compiler::compile(&plan, backend, p.workspace_id, model.id, chrono::Utc::now());
        // The values go to a temporary table of this transaction, never to
        // `trait_values`: on SQLite writing a temporary table takes no lock
        // on the database, so a preview never holds up posts and loads.
        let scratch = format!("tf_preview_{}", model.id.simple());
        let mut insert = compiled.insert.clone();
        insert.into_table(Alias::new(&scratch));
        let tx = self.db.begin().await?;
        let outcome = async {
            tx.execute_unprepared(&format!(
                "CREATE TEMPORARY TABLE \"{scratch}\" AS SELECT * FROM trait_values WHERE 1 = 0"
            ))
            .await?;
            tx.execute(&insert).await?;
            let rows = trait_values::Entity::find()
                .from_raw_sql(Statement::from_sql_and_values(
                    backend,
                    format!(
                        "SELECT * FROM \"{scratch}\" ORDER BY entity_id LIMIT {}",
                        Ord::min(sample.unwrap_or(10), MAX_SAMPLE)
                    ),
                    [],
                ))
                .all(&tx)
                .await?;
            let values = rows
                .iter()
                .map(|v| (v.entity_id.clone(), value_json(rt, v)))
                .collect();
            let column = rt.value_column();
            let param = |n: usize| match backend {
                DbBackend::Postgres => format!("${n}"),
                _ => "?".to_owned(),
            };
            let scope = format!("workspace_id = {} AND trait_id = {}", param(1), param(2));
            let from = format!("\"{scratch}\"");
            let args = || [p.workspace_id.into(), model.id.into()];
            let numbers = rt == ResultType::Number;
            let stats = if numbers {
                format!("COUNT({column}) AS n, COUNT(*) AS total, MIN({column}) AS lo, MAX({column}) AS hi, AVG({column}) AS mean")
            } else {
                format!("COUNT({column}) AS n, COUNT(*) AS total")
            };
            let row = tx
                .query_one_raw(Statement::from_sql_and_values(
                    backend,
                    format!("SELECT {stats} FROM {from} WHERE {scope}"),
                    args(),
                ))
                .await?
                .ok_or_else(|| crate::Error::internal("an aggregate without a row"))?;
            let count: i64 = row.try_get("", "n")?;
            let total: i64 = row.try_get("", "total")?;
            let get = |c: &str| row.try_get::<Option<f64>>("", c);
            let (min, max, mean) = if numbers {
                (get("lo")?, get("hi")?, get("mean")?)
            } else {
                (None, None, None)
            };
            let top = if numbers || rt == ResultType::Array {
                Vec::new()
            } else {
                tx.query_all_raw(Statement::from_sql_and_values(
                    backend,
                    format!(
                        "SELECT CAST({column} AS TEXT) AS v, COUNT(*) AS n FROM {from} \
                         WHERE {scope} AND {column} IS NOT NULL GROUP BY {column} ORDER BY 2 DESC, 1 LIMIT 5"
                    ),
                    args(),
                ))
                .await?
                .iter()
                .map(|r| Ok((r.try_get::<String>("", "v")?, r.try_get::<i64>("", "n")?)))
                .collect::<Result<Vec<_>>>()?
            };
            Ok(TraitPreview {
                values,
                count,
                nulls: total - count,
                min,
                max,
                mean,
                top,
            })
        }
        .await;
        // Nothing of the preview stays, whatever happened.
        tx.rollback().await?;
        outcome
    }
}
