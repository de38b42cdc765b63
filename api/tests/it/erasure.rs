//! `DELETE /v1/userData`: a player with rows in every table is gone from all
//! of them, other players are untouched, and the audit record counts it.

use sea_orm::{ConnectionTrait, Statement};
use serde_json::{Value, json};

use crate::{
    ingest::reference_examples,
    support::TestApp,
    survey::attentive,
    trait_values::{catalog_ids, create},
};

/// Tables holding user ids, with the column that names the player.
const TABLES: [(&str, &str); 15] = [
    ("purchases", "user_id"),
    ("logins", "user_id"),
    ("actions", "user_id"),
    ("virtual_purchases", "user_id"),
    ("level_ups", "user_id"),
    ("social_dynamics", "user_id"),
    ("kpis", "user_id"),
    ("players", "user_id"),
    ("trait_values", "entity_id"),
    ("survey_registrations", "user_id"),
    ("survey_answers", "user_id"),
    ("psych_scores", "user_id"),
    ("quarantined_lines", "user_id"),
    ("segment_members", "user_id"),
    ("persona_members", "user_id"),
];

async fn rows(app: &TestApp, table: &str, column: &str, user: &str) -> i64 {
    let db = app.engine.db();
    let row = db
        .query_one_raw(Statement::from_sql_and_values(
            db.get_database_backend(),
            match db.get_database_backend() {
                sea_orm::DbBackend::Postgres => {
                    format!("SELECT COUNT(*) AS n FROM \"{table}\" WHERE \"{column}\" = $1")
                }
                _ => format!("SELECT COUNT(*) AS n FROM \"{table}\" WHERE \"{column}\" = ?"),
            },
            [user.into()],
        ))
        .await
        .unwrap()
        .unwrap();
    row.try_get::<i64>("", "n").unwrap()
}

/// `DELETE /v1/userData` for `user` with `key`.
pub(crate) async fn erase(app: &TestApp, key: &str, user: &str) -> (reqwest::StatusCode, Value) {
    app.v1(
        reqwest::Method::DELETE,
        "/v1/userData",
        Some(key),
        Some(&json!({ "id": user }).to_string()),
    )
    .await
}

/// Sends every reference example as `user`, a bad line naming them, and completes their survey.
async fn give_data(app: &TestApp, user: &str) {
    for (folder, records) in reference_examples() {
        if folder == "items" {
            continue;
        }
        let body: String = records
            .iter()
            .map(|r| {
                let mut r = r.clone();
                r["user_id"] = json!(user);
                format!("{r}\n")
            })
            .collect();
        let (status, res) = app.post_events(Some(&app.admin_key), &folder, body).await;
        assert_eq!(status, 200, "{res}");
        assert_eq!(res["data"]["rejected"], 0, "{folder}: {res}");
    }
    let bad = json!({ "user_id": user, "timestamp": "yesterday" }).to_string();
    let (_, res) = app.post_events(Some(&app.admin_key), "logins", bad).await;
    assert_eq!(res["data"]["rejected"], 1);
    let token = app.survey_token(user).await;
    let instrument = app.instrument().await;
    app.answer_survey(&token, attentive(&instrument)).await;
}

#[tokio::test]
async fn erasing_a_player_removes_them_everywhere_and_only_them() {
    let app = TestApp::spawn().await;
    app.set_min_seconds(0).await;
    give_data(&app, "gone").await;
    give_data(&app, "kept").await;
    // A third player keeps the segment clusterable after the erasure: the
    // re-clustering it queues (which may run before the rows are counted)
    // then still places "kept" in a persona, so a lost row means a bug.
    give_data(&app, "other").await;
    let ids = catalog_ids(&app).await;
    create(
        &app,
        json!({ "name": "Purchases", "parent_model_id": ids.players, "trait_type": "aggregation",
                "result_type": "number",
                "config": { "source_model_id": ids.purchases, "relationship_id": ids.purchases_rel, "aggregation": "count" } }),
    )
    .await;
    app.drain().await;
    // Both are members of a segment and of its personas.
    let (status, body) = app
        .rest(
            reqwest::Method::POST,
            "/segments",
            Some(json!({ "name": "Everyone", "filter": {"trait": "purchases", "op": ">=", "value": 0}, "personas": 2 })),
        )
        .await;
    assert_eq!(status, 201, "{body}");
    app.drain().await;

    let mut before = Vec::new();
    for (table, column) in TABLES {
        let n = rows(&app, table, column, "gone").await;
        assert!(n > 0, "the fixture has no {table} rows for the player");
        before.push((table, n, rows(&app, table, column, "kept").await));
    }

    let (status, body) = erase(&app, &app.admin_key, "gone").await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["code"], 200);
    let removed = &body["data"]["removed"];
    let mut total = 0;
    for (table, n, kept) in &before {
        let column = TABLES.iter().find(|(t, _)| t == table).unwrap().1;
        assert_eq!(
            rows(&app, table, column, "gone").await,
            0,
            "{table} still names the player"
        );
        assert_eq!(
            rows(&app, table, column, "kept").await,
            *kept,
            "{table}: another player lost rows"
        );
        assert_eq!(removed[*table], *n, "{table}: reported count");
        total += n;
    }
    assert_eq!(body["data"]["total"], total);

    // The audit keeps a hash of the id, the calling key and the counts.
    let audit = app
        .gql(
            "{ erasures { nodes { userIdHash apiKeyId rowsRemoved totalRows } } viewer { keyId } }",
            json!({}),
        )
        .await;
    let record = &audit["erasures"]["nodes"][0];
    // Keyed: not the plain SHA-256 anyone could recompute from a guessed id.
    use sha2::Digest;
    let print = record["userIdHash"].as_str().unwrap();
    assert_eq!(print.len(), 64, "{record}");
    assert_ne!(print, hex::encode(sha2::Sha256::digest(b"gone")));
    // The server finds a player's erasures by their id.
    let lookup = "query($u: String) { erasures(userId: $u) { nodes { userIdHash } } }";
    let found = app.gql(lookup, json!({ "u": "gone" })).await;
    assert_eq!(found["erasures"]["nodes"], json!([{ "userIdHash": print }]));
    let none = app.gql(lookup, json!({ "u": "kept" })).await;
    assert_eq!(none["erasures"]["nodes"], json!([]));
    assert_eq!(record["totalRows"], total);
    assert_eq!(record["apiKeyId"], audit["viewer"]["keyId"]);
    assert_eq!(&record["rowsRemoved"], removed);
    assert!(
        !audit.to_string().contains("\"gone\""),
        "the audit kept the id: {audit}"
    );

    // Idempotent: a second erasure finds nothing and is audited too.
    let (status, again) = erase(&app, &app.admin_key, "gone").await;
    assert_eq!(status, 200);
    assert_eq!(again["data"]["total"], 0);
    let list = app
        .gql("{ erasures { nodes { totalRows } } }", json!({}))
        .await;
    assert_eq!(list["erasures"]["nodes"].as_array().unwrap().len(), 2);

    // The survey status of an erased player is unknown again.
    assert_eq!(app.survey_status("gone").await.0, 404);
    app.stop().await;
}

#[tokio::test]
async fn erasure_needs_a_key_that_may_change_data() {
    let app = TestApp::spawn().await;
    let (viewer, _) = app.create_key("viewer").await;
    let (status, body): (_, Value) = erase(&app, &viewer, "x").await;
    assert_eq!(status, 403, "{body}");
    assert_eq!(body["code"], 403);
    let (_, body) = app
        .gql_as(
            Some(&app.admin_key),
            "mutation { erasePlayer(userId: \"x\") { totalRows } }",
            json!({}),
        )
        .await;
    assert_eq!(body["data"]["erasePlayer"]["totalRows"], 0, "{body}");
    app.stop().await;
}

/// A bad line that could not be parsed far enough to know its user still
/// names them; it goes with the erasure. On SQLite the erased id is gone
/// from the database file and its WAL too (deleted rows are zeroed).
#[tokio::test]
async fn erasure_leaves_no_trace_in_the_quarantine_or_the_file() {
    const ERASED: &str = "zq-erased-7731";
    let app = TestApp::spawn().await;
    app.set_min_seconds(0).await;
    let good =
        json!({ "timestamp": "2026-11-01 10:00:00", "user_id": ERASED, "platform": "Steam" });
    let (status, _) = app
        .post_events(Some(&app.admin_key), "logins", format!("{good}\n"))
        .await;
    assert_eq!(status, 200);
    for user in [ERASED, "zq-kept-1"] {
        // Not JSON: the user id is only in the excerpt.
        let broken = format!("{{\"user_id\": \"{user}\", \"timestamp\": \n");
        let (_, res) = app
            .post_events(Some(&app.admin_key), "logins", broken)
            .await;
        assert_eq!(res["data"]["rejected"], 1, "{res}");
    }
    let token = app.survey_token(ERASED).await;
    let instrument = app.instrument().await;
    app.answer_survey(&token, attentive(&instrument)).await;
    app.drain().await;

    let (status, body) = erase(&app, &app.admin_key, ERASED).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["data"]["removed"]["quarantined_lines"], 1, "{body}");
    let left = app
        .gql("{ quarantinedLines { nodes { excerpt } } }", json!({}))
        .await
        .to_string();
    assert!(!left.contains(ERASED), "{left}");
    assert!(
        left.contains("zq-kept-1"),
        "another player's line stays: {left}"
    );
    app.drain().await;

    if let Some(file) = app
        .config
        .database_url
        .strip_prefix("sqlite://")
        .and_then(|rest| rest.split('?').next())
    {
        for path in [file.to_owned(), format!("{file}-wal")] {
            let Ok(bytes) = std::fs::read(&path) else {
                continue;
            };
            assert!(
                !bytes.windows(ERASED.len()).any(|w| w == ERASED.as_bytes()),
                "{path} still holds the erased id"
            );
        }
    }
    app.stop().await;
}
