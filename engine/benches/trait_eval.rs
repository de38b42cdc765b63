//! Trait evaluation against hand-written SQL, on PostgreSQL.
//!
//! `BENCH_POSTGRES_URL=postgres://… cargo bench -p engine --bench trait_eval`
//! creates a scratch database with 100k players and 1M purchases, then times
//! count, sum, avg, count_distinct, most_frequent and median traits (the
//! engine's evaluation: upsert of changed
//! values, stale-row cleanup, counting) beside a hand-written
//! `INSERT … SELECT … GROUP BY` of the same values into an empty table.

use std::time::{Duration, Instant};

mod support;

use engine::{
    entity::{trait_runs, trait_values},
    traits::TraitInput,
};
use sea_orm::{ColumnTrait, ConnectionTrait, EntityTrait, PaginatorTrait, QueryFilter, Statement};
use serde_json::json;
use support::Bench;
use uuid::Uuid;

const PLAYERS: i64 = 100_000;
const PURCHASES: i64 = 1_000_000;
const ROUNDS: usize = 5;

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v[v.len() / 2]
}

#[tokio::main]
async fn main() {
    let bench = Bench::start(|_| None).await;
    let (engine, p) = (&bench.engine, &bench.principal);
    let wid = bench.workspace_id;
    let db = engine.db();

    let load = Instant::now();
    let exec = |sql: String| {
        let db = db.clone();
        async move {
            db.execute_raw(Statement::from_sql_and_values(
                db.get_database_backend(),
                sql,
                [wid.into()],
            ))
            .await
            .unwrap()
        }
    };
    exec(format!(
        "INSERT INTO players (workspace_id, user_id, updated_at) SELECT $1, 'u' || g, now() FROM generate_series(1, {PLAYERS}) g"
    ))
    .await;
    exec(format!(
        "INSERT INTO purchases (workspace_id, id, user_id, timestamp, item_id, count, price, platform, loaded_at) \
         SELECT $1, gen_random_uuid(), 'u' || (1 + (g::bigint * 7919) % {PLAYERS}), now() - (g % 365) * interval '1 day', 'item', 1, \
         CASE WHEN g % 13 = 0 THEN NULL ELSE (g % 10000) / 100.0 END, 'Steam', now() FROM generate_series(1, {PURCHASES}) g"
    ))
    .await;
    db.execute_unprepared("ANALYZE").await.unwrap();
    println!(
        "loaded {PLAYERS} players and {PURCHASES} purchases in {:.1?}",
        load.elapsed()
    );

    let catalog = engine.list_models(p, Default::default()).await.unwrap();
    let model = |slug: &str| catalog.items.iter().find(|m| m.model.slug == slug).unwrap();
    let (players, purchases) = (model("players"), model("purchases"));
    let rel = purchases
        .relationships
        .iter()
        .find(|r| r.to_model_id == players.model.id)
        .unwrap()
        .id;

    db.execute_unprepared(
        "CREATE TABLE bench_values (entity_id text PRIMARY KEY, value double precision)",
    )
    .await
    .unwrap();
    println!(
        "\n| trait | engine: new trait | engine: re-run, nothing changed | hand-written into trait_values | hand-written into a bare table | ratio to same table | ratio to bare table |"
    );
    println!("|---|---|---|---|---|---|---|");
    for (agg, hand) in [
        ("count", "COUNT(s.price)"),
        ("sum", "SUM(s.price)"),
        ("avg", "AVG(s.price)"),
        ("count_distinct", "COUNT(DISTINCT s.price)"),
        ("most_frequent", "mode() WITHIN GROUP (ORDER BY s.price)"),
        (
            "median",
            "percentile_cont(0.5) WITHIN GROUP (ORDER BY s.price)",
        ),
    ] {
        let (mut cold, mut warm, mut same, mut bare) =
            (Vec::new(), Vec::new(), Vec::new(), Vec::new());
        for round in 0..ROUNDS {
            let t = engine
                .create_trait(
                    p,
                    TraitInput {
                        name: Some(format!("bench {agg} {round}")),
                        parent_model_id: Some(players.model.id),
                        trait_type: Some("aggregation".into()),
                        config: Some(json!({ "source_model_id": purchases.model.id, "relationship_id": rel, "aggregation": agg, "column": "price" })),
                        result_type: Some("number".into()),
                        status: Some("draft".into()),
                        ..Default::default()
                    },
                )
                .await
                .unwrap();
            for times in [&mut cold, &mut warm] {
                let run = engine.trigger_trait(p, t.id).await.unwrap();
                let start = Instant::now();
                engine.execute_trait_run(run.id).await.unwrap();
                times.push(start.elapsed());
                let done = trait_runs::Entity::find_by_id(run.id)
                    .one(db)
                    .await
                    .unwrap()
                    .unwrap();
                assert_eq!(done.status.as_str(), "succeeded", "{:?}", done.error);
                assert_eq!(done.rows_computed, Some(PLAYERS));
            }
            // The same rows, by hand, into the same table (a fresh trait id).
            let scratch = Uuid::new_v4();
            let start = Instant::now();
            db.execute_raw(Statement::from_sql_and_values(
                db.get_database_backend(),
                format!(
                    "INSERT INTO trait_values (workspace_id, trait_id, entity_id, value_number, updated_at) \
                     SELECT p.workspace_id, $2, p.user_id, {hand}, now() FROM players p \
                     LEFT JOIN purchases s ON s.workspace_id = p.workspace_id AND s.user_id = p.user_id \
                     WHERE p.workspace_id = $1 GROUP BY p.workspace_id, p.user_id"
                ),
                [wid.into(), scratch.into()],
            ))
            .await
            .unwrap();
            same.push(start.elapsed());
            db.execute_unprepared("TRUNCATE bench_values")
                .await
                .unwrap();
            let start = Instant::now();
            exec(format!(
                "INSERT INTO bench_values (entity_id, value) SELECT p.user_id, {hand} FROM players p \
                 LEFT JOIN purchases s ON s.workspace_id = p.workspace_id AND s.user_id = p.user_id \
                 WHERE p.workspace_id = $1 GROUP BY p.user_id"
            ))
            .await;
            bare.push(start.elapsed());
            let n = trait_values::Entity::find()
                .filter(trait_values::Column::TraitId.eq(t.id))
                .count(db)
                .await
                .unwrap();
            assert_eq!(n as i64, PLAYERS);
        }
        let (c, w, s, b) = (median(cold), median(warm), median(same), median(bare));
        println!(
            "| {agg} | {} ms | {} ms | {} ms | {} ms | {:.2}× | {:.2}× |",
            c.as_millis(),
            w.as_millis(),
            s.as_millis(),
            b.as_millis(),
            c.as_secs_f64() / s.as_secs_f64(),
            c.as_secs_f64() / b.as_secs_f64()
        );
    }

    // count + sum + avg from one scan of purchases (what refreshTraits does)
    // against the three evaluated one by one.
    let (mut shared, mut separate) = (Vec::new(), Vec::new());
    for round in 0..ROUNDS {
        let mut runs = Vec::new();
        for agg in ["count", "sum", "avg"] {
            let t = engine
                .create_trait(
                    p,
                    TraitInput {
                        name: Some(format!("shared {agg} {round}")),
                        parent_model_id: Some(players.model.id),
                        trait_type: Some("aggregation".into()),
                        config: Some(json!({ "source_model_id": purchases.model.id, "relationship_id": rel, "aggregation": agg, "column": "price" })),
                        result_type: Some("number".into()),
                        status: Some("draft".into()),
                        ..Default::default()
                    },
                )
                .await
                .unwrap();
            runs.push((t.id, engine.trigger_trait(p, t.id).await.unwrap().id));
        }
        let ids: Vec<Uuid> = runs.iter().map(|(_, r)| *r).collect();
        let start = Instant::now();
        engine.execute_trait_runs(&ids).await.unwrap();
        shared.push(start.elapsed());
        for (trait_id, _) in &runs {
            trait_values::Entity::delete_many()
                .filter(trait_values::Column::TraitId.eq(*trait_id))
                .exec(db)
                .await
                .unwrap();
        }
        db.execute_unprepared("VACUUM trait_values").await.unwrap();
        let start = Instant::now();
        for (trait_id, _) in &runs {
            let run = engine.trigger_trait(p, *trait_id).await.unwrap();
            engine.execute_trait_run(run.id).await.unwrap();
        }
        separate.push(start.elapsed());
    }
    let (sh, se) = (median(shared), median(separate));
    println!(
        "\ncount + sum + avg of purchases: one shared scan {} ms, three separate runs {} ms ({:.2}×)",
        sh.as_millis(),
        se.as_millis(),
        sh.as_secs_f64() / se.as_secs_f64()
    );

    if std::env::var("BENCH_KEEP").is_ok() {
        println!("kept database {}", bench.name);
    } else {
        bench.finish().await;
    }
}
