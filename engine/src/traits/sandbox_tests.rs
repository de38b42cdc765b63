//! Tests of the expression sandbox: what it accepts, what it refuses, and why.

use super::*;

struct Players;
impl Scope for Players {
    fn is_column(&self, name: &str) -> bool {
        ["level", "country", "user_id"].contains(&name)
    }
    fn is_trait(&self, slug: &str) -> bool {
        ["total_revenue", "total_purchases", "lifetime_value"].contains(&slug)
    }
}

fn sql(text: &str) -> Result<Node, String> {
    parse(text, Flavor::Sql, &Players)
}

fn formula(text: &str) -> Result<Node, String> {
    parse(text, Flavor::Formula, &Players)
}

#[test]
fn string_literals_in_formulas_are_left_as_written() {
    assert_eq!(
        replace_references(
            "CASE WHEN {total_revenue} > 0 THEN '{total_revenue}' ELSE 'it''s {x}' END"
        )
        .unwrap(),
        "CASE WHEN \"total_revenue\" > 0 THEN '{total_revenue}' ELSE 'it''s {x}' END"
    );
    let f = formula("CASE WHEN {total_revenue} > 0 THEN '{total_purchases}' END").unwrap();
    assert_eq!(
        f.trait_refs(),
        ["total_revenue"],
        "the literal reads no trait"
    );
    assert!(replace_references("{total_revenue").is_err());
    assert!(replace_references("total_revenue}").is_err());
    assert!(replace_references("'}' || {Bad}").is_err());
}

#[test]
fn the_reference_examples_are_accepted() {
    let tier = sql("CASE WHEN lifetime_value > 10000 THEN 'platinum' WHEN lifetime_value > 1000 THEN 'gold' ELSE 'standard' END").unwrap();
    assert_eq!(tier.trait_refs(), ["lifetime_value"]);
    let aov = formula("{total_revenue} / NULLIF({total_purchases}, 0)").unwrap();
    assert_eq!(aov.trait_refs(), ["total_revenue", "total_purchases"]);
    for ok in [
        "COALESCE({total_revenue}, 0) * 1.2",
        "ROUND({total_revenue}, 2)",
        "ABS({total_revenue} - {total_purchases})",
        "LEAST({total_revenue}, 100) + GREATEST({total_purchases}, 1)",
        "CASE WHEN {total_purchases} BETWEEN 1 AND 5 THEN 'few' ELSE 'many' END",
        "{total_purchases} IN (1, 2, 3) AND NOT {total_revenue} IS NULL",
        "-{total_revenue} % 7",
    ] {
        formula(ok).unwrap_or_else(|e| panic!("{ok}: {e}"));
    }
    for ok in [
        "level >= 10 OR country = 'US'",
        "UPPER(country) LIKE 'U%'",
        "CAST(level AS TEXT) || '-' || country",
        "CASE level WHEN 1 THEN 'one' ELSE 'other' END",
        "\"level\" + 1",
    ] {
        sql(ok).unwrap_or_else(|e| panic!("{ok}: {e}"));
    }
}

/// Hostile or malformed input: every one is refused, with a message that
/// says what was refused.
#[test]
fn hostile_and_malformed_expressions_are_refused() {
    let corpus: &[(Flavor, &str, &str)] = &[
        (Flavor::Sql, "1; DROP TABLE players", "`;`"),
        (Flavor::Sql, "level; SELECT 1", "`;`"),
        (Flavor::Sql, "level -- hidden", "comments"),
        (Flavor::Sql, "level /* hidden */ + 1", "comments"),
        (Flavor::Sql, "(SELECT count(*) FROM players)", "subqueries"),
        (Flavor::Sql, "EXISTS (SELECT 1 FROM api_keys)", "subqueries"),
        (
            Flavor::Sql,
            "level IN (SELECT level FROM players)",
            "subqueries",
        ),
        (Flavor::Sql, "pg_sleep(10)", "pg_sleep"),
        (Flavor::Sql, "PG_SLEEP(10)", "PG_SLEEP"),
        (Flavor::Sql, "pg_read_file('/etc/passwd')", "pg_read_file"),
        (Flavor::Sql, "lo_import('/etc/passwd')", "lo_import"),
        (
            Flavor::Sql,
            "current_setting('is_superuser')",
            "current_setting",
        ),
        (Flavor::Sql, "version()", "version"),
        (Flavor::Sql, "load_extension('x')", "load_extension"),
        (Flavor::Sql, "randomblob(1000000000)", "randomblob"),
        (Flavor::Sql, "dblink('host=evil', 'select 1')", "dblink"),
        (Flavor::Sql, "secret_hash", "secret_hash"),
        (Flavor::Sql, "api_keys.secret_hash", "qualified"),
        (Flavor::Sql, "players.level", "qualified"),
        (Flavor::Sql, "public.players.level", "qualified"),
        (Flavor::Sql, "workspace_id", "workspace_id"),
        (Flavor::Sql, "nonexistent_column > 1", "nonexistent_column"),
        (Flavor::Sql, "`level`", "level"),
        (Flavor::Sql, "count(*)", "count"),
        (Flavor::Sql, "sum(level)", "sum"),
        (
            Flavor::Sql,
            "ROW_NUMBER() OVER (ORDER BY level)",
            "ROW_NUMBER",
        ),
        (Flavor::Sql, "ABS(level) OVER ()", "window"),
        (Flavor::Sql, "COALESCE(DISTINCT level)", "DISTINCT"),
        (Flavor::Sql, "level::text", "::"),
        (Flavor::Sql, "CAST(level AS regclass)", "CAST"),
        (Flavor::Sql, "$1", "placeholder"),
        (Flavor::Sql, "?", "placeholder"),
        (Flavor::Sql, "E'\\x41'", "literal"),
        (Flavor::Sql, "X'41'", "literal"),
        (Flavor::Sql, "level > 1 level", "unexpected"),
        (Flavor::Sql, "", "empty"),
        (Flavor::Sql, "   ", "empty"),
        (Flavor::Sql, "CASE WHEN level > 1 THEN 'x'", "unexpected"),
        (Flavor::Sql, "ABS()", "ABS"),
        (Flavor::Sql, "NULLIF(level)", "NULLIF"),
        (Flavor::Sql, "level ~ 'a.*'", "~"),
        (Flavor::Sql, "ARRAY[1, 2]", "not allowed"),
        (Flavor::Sql, "INTERVAL '1 day'", "not allowed"),
        (Flavor::Sql, "level COLLATE \"C\"", "not allowed"),
        (Flavor::Sql, "(level, country)", "not allowed"),
        (Flavor::Sql, "level IS DISTINCT FROM 1", "not allowed"),
        (Flavor::Formula, "total_revenue / 2", "{slug}"),
        (Flavor::Formula, "{total_revenue} + level", "{slug}"),
        (Flavor::Formula, "{unknown_trait} + 1", "unknown_trait"),
        (Flavor::Formula, "{Total Revenue}", "not a trait reference"),
        (
            Flavor::Formula,
            "{total_revenue\"; DROP TABLE x; --}",
            "not a trait reference",
        ),
        (Flavor::Formula, "{total_revenue", "unclosed"),
        (Flavor::Formula, "total_revenue}", "unbalanced"),
        (Flavor::Formula, "{}", "not a trait reference"),
        (
            Flavor::Formula,
            "{total_revenue} + \"level\"",
            "not a trait",
        ),
        (Flavor::Formula, "{total_revenue}; {total_purchases}", "`;`"),
    ];
    assert!(corpus.len() >= 40);
    let failures: Vec<String> = corpus
        .iter()
        .filter_map(
            |(flavor, text, expect)| match parse(text, *flavor, &Players) {
                Ok(node) => Some(format!("{text:?} was accepted as {node:?}")),
                Err(e) if !e.contains(expect) => {
                    Some(format!("{text:?}: {e:?} does not mention {expect:?}"))
                }
                Err(_) => None,
            },
        )
        .collect();
    assert!(failures.is_empty(), "{}", failures.join("\n"));
    let long = format!("level{}", " + 1".repeat(MAX_EXPRESSION_LEN));
    assert!(sql(&long).unwrap_err().contains("longer than"));
    let deep = format!("{}level{}", "(".repeat(200), ")".repeat(200));
    assert!(sql(&deep).is_err());
}
