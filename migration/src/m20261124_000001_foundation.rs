//! Tenancy, keys, the model catalog, the behavioural tables, traits and job records.
//!
//! Every tenant table leads its primary or unique keys with `workspace_id`, so
//! that every lookup (always filtered by workspace) is an index range scan.

use sea_orm_migration::prelude::*;
use sea_orm_migration::schema::*;

pub struct Migration;

impl MigrationName for Migration {
    fn name(&self) -> &str {
        "m20261124_000001_foundation"
    }
}

/// The columns every behavioural event table shares, before its own columns.
fn event_table(name: &'static str, own: Vec<ColumnDef>) -> TableCreateStatement {
    let mut t = Table::create();
    t.table(name)
        .if_not_exists()
        .col(uuid("workspace_id"))
        .col(uuid("id"))
        .col(string("user_id"))
        .col(timestamp_with_time_zone("timestamp"));
    for mut c in own {
        t.col(&mut c);
    }
    t.col(json_binary_null("extra"))
        .col(uuid_null("source_file_id"))
        .col(big_integer_null("line_number"))
        .col(timestamp_with_time_zone("loaded_at"))
        .primary_key(Index::create().col("workspace_id").col("id"))
        .foreign_key(&mut workspace_fk(name))
        .to_owned()
}

/// The workspace foreign key every tenant table carries (rows go with their workspace).
pub(crate) fn workspace_fk(table: &str) -> ForeignKeyCreateStatement {
    ForeignKey::create()
        .name(format!("fk_{table}_workspace"))
        .from(table.to_owned(), "workspace_id")
        .to("workspaces", "id")
        .on_delete(ForeignKeyAction::Cascade)
        .to_owned()
}

pub(crate) fn index(table: &str, suffix: &str, cols: &[&'static str]) -> IndexCreateStatement {
    let mut i = Index::create();
    i.name(format!("ix_{table}_{suffix}"))
        .table(table.to_owned())
        .if_not_exists();
    for c in cols {
        i.col(*c);
    }
    i.to_owned()
}

pub(crate) fn unique(table: &str, suffix: &str, cols: &[&'static str]) -> IndexCreateStatement {
    index(table, suffix, cols).unique().to_owned()
}

pub const EVENT_TABLES: [&str; 7] = [
    "purchases",
    "logins",
    "actions",
    "virtual_purchases",
    "level_ups",
    "social_dynamics",
    "kpis",
];

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, m: &SchemaManager) -> Result<(), DbErr> {
        m.create_table(
            Table::create()
                .table("workspaces")
                .if_not_exists()
                .col(pk_uuid("id"))
                .col(string("name"))
                .col(string_uniq("slug"))
                .col(timestamp_with_time_zone("created_at"))
                .to_owned(),
        )
        .await?;
        m.create_table(
            Table::create()
                .table("accounts")
                .if_not_exists()
                .col(pk_uuid("id"))
                .col(string_uniq("email"))
                .col(string("display_name"))
                .col(timestamp_with_time_zone("created_at"))
                .to_owned(),
        )
        .await?;
        m.create_table(
            Table::create()
                .table("api_keys")
                .if_not_exists()
                .col(pk_uuid("id"))
                .col(uuid("workspace_id"))
                .col(uuid_null("account_id"))
                .col(string("name"))
                .col(string("prefix"))
                .col(string_uniq("secret_hash"))
                .col(string("role"))
                .col(timestamp_with_time_zone("created_at"))
                .col(timestamp_with_time_zone_null("last_used_at"))
                .col(timestamp_with_time_zone_null("revoked_at"))
                .foreign_key(&mut workspace_fk("api_keys"))
                .foreign_key(
                    ForeignKey::create()
                        .name("fk_api_keys_account")
                        .from("api_keys", "account_id")
                        .to("accounts", "id")
                        .on_delete(ForeignKeyAction::SetNull),
                )
                .to_owned(),
        )
        .await?;
        m.create_index(index("api_keys", "workspace", &["workspace_id", "id"]))
            .await?;

        m.create_table(
            Table::create()
                .table("models")
                .if_not_exists()
                .col(pk_uuid("id"))
                .col(uuid("workspace_id"))
                .col(string("name"))
                .col(string("slug"))
                .col(string("kind"))
                .col(string("table_name"))
                .col(string("primary_key"))
                .col(string_null("timestamp_column"))
                .col(boolean("built_in"))
                .col(timestamp_with_time_zone("created_at"))
                .foreign_key(&mut workspace_fk("models"))
                .to_owned(),
        )
        .await?;
        m.create_index(unique("models", "slug", &["workspace_id", "slug"]))
            .await?;
        m.create_table(
            Table::create()
                .table("model_columns")
                .if_not_exists()
                .col(pk_uuid("id"))
                .col(uuid("workspace_id"))
                .col(uuid("model_id"))
                .col(string("name"))
                .col(string("data_type"))
                .col(boolean("nullable"))
                .col(integer("position"))
                .foreign_key(&mut workspace_fk("model_columns"))
                .foreign_key(
                    ForeignKey::create()
                        .name("fk_model_columns_model")
                        .from("model_columns", "model_id")
                        .to("models", "id")
                        .on_delete(ForeignKeyAction::Cascade),
                )
                .to_owned(),
        )
        .await?;
        m.create_index(unique(
            "model_columns",
            "name",
            &["workspace_id", "model_id", "name"],
        ))
        .await?;
        m.create_table(
            Table::create()
                .table("relationships")
                .if_not_exists()
                .col(pk_uuid("id"))
                .col(uuid("workspace_id"))
                .col(uuid("from_model_id"))
                .col(uuid("to_model_id"))
                .col(string("from_column"))
                .col(string("to_column"))
                .col(string("cardinality"))
                .col(timestamp_with_time_zone("created_at"))
                .foreign_key(&mut workspace_fk("relationships"))
                .foreign_key(
                    ForeignKey::create()
                        .name("fk_relationships_from")
                        .from("relationships", "from_model_id")
                        .to("models", "id")
                        .on_delete(ForeignKeyAction::Cascade),
                )
                .foreign_key(
                    ForeignKey::create()
                        .name("fk_relationships_to")
                        .from("relationships", "to_model_id")
                        .to("models", "id")
                        .on_delete(ForeignKeyAction::Cascade),
                )
                .to_owned(),
        )
        .await?;
        m.create_index(index("relationships", "workspace", &["workspace_id", "id"]))
            .await?;

        m.create_table(
            Table::create()
                .table("players")
                .if_not_exists()
                .col(uuid("workspace_id"))
                .col(string("user_id"))
                .col(timestamp_with_time_zone_null("first_seen_at"))
                .col(timestamp_with_time_zone_null("last_seen_at"))
                .col(string_null("clan_id"))
                .col(big_integer_null("level"))
                .col(string_null("device"))
                .col(string_null("country"))
                .col(string_null("language"))
                .col(string_null("platform"))
                .col(date_null("register_date"))
                .col(timestamp_with_time_zone_null("last_login_at"))
                .col(timestamp_with_time_zone("updated_at"))
                .primary_key(Index::create().col("workspace_id").col("user_id"))
                .foreign_key(&mut workspace_fk("players"))
                .to_owned(),
        )
        .await?;
        m.create_table(
            Table::create()
                .table("items")
                .if_not_exists()
                .col(uuid("workspace_id"))
                .col(string("item_id"))
                .col(double_null("price"))
                .col(string_null("currency"))
                .col(string_null("name"))
                .col(string_null("type"))
                .col(json_binary_null("extra"))
                .col(timestamp_with_time_zone("updated_at"))
                .primary_key(Index::create().col("workspace_id").col("item_id"))
                .foreign_key(&mut workspace_fk("items"))
                .to_owned(),
        )
        .await?;

        let events: [(&'static str, Vec<ColumnDef>); 7] = [
            (
                "purchases",
                vec![
                    string_null("item_id"),
                    big_integer_null("count"),
                    double_null("price"),
                    string_null("platform"),
                ],
            ),
            (
                "logins",
                vec![
                    string_null("clan_id"),
                    big_integer_null("level"),
                    string_null("device"),
                    string_null("country"),
                    string_null("language"),
                    string_null("platform"),
                    date_null("register_date"),
                    timestamp_with_time_zone_null("last_login_timestamp"),
                ],
            ),
            (
                "actions",
                vec![
                    string_null("action_id"),
                    string_null("action_name"),
                    json_binary_null("action_params"),
                ],
            ),
            (
                "virtual_purchases",
                vec![
                    string_null("item_id"),
                    big_integer_null("count"),
                    double_null("virtual_price"),
                    string_null("currency"),
                ],
            ),
            ("level_ups", vec![big_integer_null("level")]),
            (
                "social_dynamics",
                vec![
                    string_null("target_user_id"),
                    string_null("interaction"),
                    json_binary_null("interaction_params"),
                ],
            ),
            (
                "kpis",
                vec![
                    date_null("register_date"),
                    date_null("churn_date"),
                    string("kpi_id"),
                    double("value"),
                ],
            ),
        ];
        for (name, cols) in events {
            m.create_table(event_table(name, cols)).await?;
            // Trait evaluation groups by player and windows by time.
            m.create_index(index(
                name,
                "user_time",
                &["workspace_id", "user_id", "timestamp"],
            ))
            .await?;
        }

        m.create_table(
            Table::create()
                .table("traits")
                .if_not_exists()
                .col(pk_uuid("id"))
                .col(uuid("workspace_id"))
                .col(uuid("parent_model_id"))
                .col(string("name"))
                .col(string("slug"))
                .col(text("description"))
                .col(string("trait_type"))
                .col(json_binary("config"))
                .col(string("result_type"))
                .col(string("status"))
                .col(text("status_error"))
                .col(string("refresh"))
                .col(integer("version"))
                .col(uuid_null("created_by"))
                .col(timestamp_with_time_zone("created_at"))
                .col(timestamp_with_time_zone("updated_at"))
                .col(timestamp_with_time_zone_null("last_computed_at"))
                .foreign_key(&mut workspace_fk("traits"))
                .foreign_key(
                    ForeignKey::create()
                        .name("fk_traits_parent_model")
                        .from("traits", "parent_model_id")
                        .to("models", "id")
                        .on_delete(ForeignKeyAction::Restrict),
                )
                .to_owned(),
        )
        .await?;
        m.create_index(unique(
            "traits",
            "slug",
            &["workspace_id", "parent_model_id", "slug"],
        ))
        .await?;
        m.create_table(
            Table::create()
                .table("trait_runs")
                .if_not_exists()
                .col(pk_uuid("id"))
                .col(uuid("workspace_id"))
                .col(uuid("trait_id"))
                .col(string("status"))
                .col(string("trigger"))
                .col(text_null("error"))
                .col(big_integer_null("rows_computed"))
                .col(big_integer_null("rows_changed"))
                .col(big_integer_null("duration_ms"))
                .col(json_binary_null("chain"))
                .col(uuid_null("created_by"))
                .col(timestamp_with_time_zone("queued_at"))
                .col(timestamp_with_time_zone_null("started_at"))
                .col(timestamp_with_time_zone_null("finished_at"))
                .foreign_key(&mut workspace_fk("trait_runs"))
                .foreign_key(
                    ForeignKey::create()
                        .name("fk_trait_runs_trait")
                        .from("trait_runs", "trait_id")
                        .to("traits", "id")
                        .on_delete(ForeignKeyAction::Cascade),
                )
                .to_owned(),
        )
        .await?;
        m.create_index(index(
            "trait_runs",
            "trait",
            &["workspace_id", "trait_id", "queued_at"],
        ))
        .await?;

        // Not named `jobs`: apalis owns a `Jobs` table in the embedded SQLite file.
        m.create_table(
            Table::create()
                .table("job_records")
                .if_not_exists()
                .col(pk_uuid("id"))
                .col(uuid_null("workspace_id"))
                .col(string("kind"))
                .col(json_binary("payload"))
                .col(string("status"))
                .col(integer("attempts"))
                .col(text_null("error"))
                .col(string_null("worker"))
                .col(timestamp_with_time_zone("enqueued_at"))
                .col(timestamp_with_time_zone_null("started_at"))
                .col(timestamp_with_time_zone_null("finished_at"))
                .to_owned(),
        )
        .await?;
        m.create_index(index("job_records", "workspace", &["workspace_id", "id"]))
            .await?;
        m.create_index(index("job_records", "status", &["status"]))
            .await?;
        Ok(())
    }

    async fn down(&self, m: &SchemaManager) -> Result<(), DbErr> {
        let mut tables = vec!["job_records", "trait_runs", "traits"];
        tables.extend(EVENT_TABLES);
        tables.extend([
            "items",
            "players",
            "relationships",
            "model_columns",
            "models",
            "api_keys",
            "accounts",
            "workspaces",
        ]);
        for t in tables {
            m.drop_table(Table::drop().table(t).if_exists().to_owned())
                .await?;
        }
        Ok(())
    }
}
