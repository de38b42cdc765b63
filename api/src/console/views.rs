//! The console's pages: what each shows, read from the engine's services
//! with the signed-in key's principal (so a viewer sees what a viewer may).

use std::{collections::BTreeMap, fmt::Write as _};

use chrono::{DateTime, Utc};
use engine::{
    Engine, Error,
    auth::{Permission, Principal},
    overview::Distribution,
    pagination::PageRequest,
    survey::Instrument,
};

use super::{
    charts::{Row, bars, short},
    layout::escape,
};

type Page = Result<String, Error>;

fn when(t: Option<DateTime<Utc>>) -> String {
    t.map_or_else(
        || "—".into(),
        |t| t.format("%Y-%m-%d %H:%M UTC").to_string(),
    )
}

fn all() -> PageRequest {
    PageRequest::new(Some(engine::pagination::MAX_PAGE_SIZE), None)
}

fn first(n: u64) -> PageRequest {
    PageRequest::new(Some(n), None)
}

fn can_write(p: &Principal) -> bool {
    p.require(Permission::Write).is_ok()
}

/// A POST button carrying the session's CSRF token.
fn button(action: &str, csrf: &str, label: &str, class: &str) -> String {
    format!(
        r#"<form class="inline" method="post" action="{}"><input type="hidden" name="csrf" value="{}"><button class="{class}" type="submit">{}</button></form>"#,
        escape(action),
        escape(csrf),
        escape(label)
    )
}

fn table(head: &[&str], rows: Vec<Vec<String>>, empty: &str) -> String {
    if rows.is_empty() {
        return format!(r#"<p class="muted">{}</p>"#, escape(empty));
    }
    // Wide tables scroll sideways on phones; the region takes keyboard focus to scroll.
    let mut out = format!(
        r#"<div class="scroll" tabindex="0" role="region" aria-label="Table: {}"><table><thead><tr>"#,
        escape(&head.join(", "))
    );
    for h in head {
        let _ = write!(out, r#"<th scope="col">{}</th>"#, escape(h));
    }
    out.push_str("</tr></thead><tbody>");
    for row in rows {
        out.push_str("<tr>");
        for cell in row {
            let _ = write!(out, "<td>{cell}</td>");
        }
        out.push_str("</tr>");
    }
    out.push_str("</tbody></table></div>");
    out
}

/// A ledger file's path, type, status and row counts, as table cells.
fn file_cells(f: &engine::entity::source_files::Model) -> Vec<String> {
    vec![
        escape(&f.path),
        escape(&f.record_type),
        escape(f.status.as_str()),
        f.rows_loaded.to_string(),
        f.rows_rejected.to_string(),
    ]
}

pub async fn overview(engine: &Engine, p: &Principal, _csrf: &str) -> Page {
    let o = engine.overview(p).await?;
    let mut body = format!(
        r#"<div class="cards"><div class="card"><h2>Players</h2><p class="big">{}</p></div>"#,
        o.players
    );
    let _ = write!(
        body,
        r#"<div class="card"><h2>Stale traits</h2><p class="big">{}</p></div><div class="card"><h2>Failed jobs</h2><p class="big">{}</p></div></div>"#,
        o.stale_traits.len(),
        o.failed_jobs.len()
    );
    let rows: Vec<Row> = o
        .rows_per_model
        .iter()
        .map(|(slug, n)| Row::Bar {
            label: slug.clone(),
            value: *n as f64,
            shown: n.to_string(),
            key: slug.clone(),
        })
        .collect();
    let _ = write!(
        body,
        "<h2>Events per record type</h2><figure>{}</figure>",
        bars(
            "Rows per record type",
            &rows,
            None,
            r#"data-chart="events""#
        )
    );
    body.push_str("<h2>Last loads</h2>");
    body.push_str(&table(
        &["File", "Type", "Status", "Rows", "Rejected", "Finished"],
        o.recent_files
            .iter()
            .map(|f| {
                let mut cells = file_cells(f);
                cells.push(when(f.finished_at));
                cells
            })
            .collect(),
        "No file loaded yet.",
    ));
    body.push_str("<h2>Failing jobs</h2>");
    body.push_str(&table(
        &["Kind", "Attempts", "Error", "Finished"],
        o.failed_jobs
            .iter()
            .map(|j| {
                vec![
                    escape(j.kind.as_str()),
                    j.attempts.to_string(),
                    format!(
                        r#"<span class="bad">{}</span>"#,
                        escape(j.error.as_deref().unwrap_or(""))
                    ),
                    when(j.finished_at),
                ]
            })
            .collect(),
        "No failed job.",
    ));
    body.push_str("<h2>Stale traits</h2>");
    body.push_str(&table(
        &["Trait", "Stale since"],
        o.stale_traits
            .iter()
            .map(|t| vec![escape(&t.slug), when(t.stale_since)])
            .collect(),
        "Every trait is up to date.",
    ));
    Ok(body)
}

pub async fn data(engine: &Engine, p: &Principal, _csrf: &str) -> Page {
    let mut body = String::from("<h2>Sources</h2>");
    let sources = engine.sources_page(p, all()).await?.items;
    if sources.is_empty() {
        body.push_str(r#"<p class="muted">No source yet: create one over GraphQL (<code>createDataSource</code>) or REST.</p>"#);
    }
    for s in sources {
        let _ = write!(
            body,
            r#"<h3>{} <span class="muted">({}, {})</span></h3><p>Last scan: {}{}</p>"#,
            escape(&s.name),
            escape(s.kind.as_str()),
            escape(s.status.as_str()),
            when(s.last_scan_at),
            s.last_error
                .as_deref()
                .map(|e| format!(r#" — <span class="bad">{}</span>"#, escape(e)))
                .unwrap_or_default()
        );
        let files = engine.source_files(p, s.id, first(50)).await?.items;
        body.push_str(&table(
            &["File", "Type", "Status", "Rows", "Rejected", "Error"],
            files
                .iter()
                .map(|f| {
                    let mut cells = file_cells(f);
                    cells.push(escape(f.error.as_deref().unwrap_or("")));
                    cells
                })
                .collect(),
            "No file found yet.",
        ));
    }
    body.push_str("<h2>Quarantined lines</h2>");
    let lines = engine.quarantine(p, first(50)).await?.items;
    body.push_str(&table(
        &["Type", "Where", "Line", "Field", "Reason"],
        lines
            .iter()
            .map(|q| {
                vec![
                    escape(&q.record_type),
                    escape(q.path.as_deref().unwrap_or(q.origin.as_str())),
                    q.line_number.to_string(),
                    escape(q.field.as_deref().unwrap_or("")),
                    escape(&q.message),
                ]
            })
            .collect(),
        "Nothing quarantined.",
    ));
    body.push_str("<h2>Notifications</h2>");
    let notes = engine.notifications(p, first(50)).await?.items;
    body.push_str(&table(
        &["Kind", "Message", "When"],
        notes
            .iter()
            .map(|n| {
                vec![
                    escape(n.kind.as_str()),
                    escape(&n.message),
                    when(Some(n.created_at)),
                ]
            })
            .collect(),
        "No notification.",
    ));
    Ok(body)
}

fn distribution_chart(slug: &str, d: Distribution) -> String {
    let title = format!("Values of {slug}");
    let attrs = format!(r#"data-chart="distribution" data-trait="{}""#, escape(slug));
    match d {
        Distribution::Histogram(bins) => {
            let rows: Vec<Row> = bins
                .iter()
                .map(|(lo, hi, n)| Row::Bar {
                    label: format!("{} – {}", short(*lo), short(*hi)),
                    value: *n as f64,
                    shown: n.to_string(),
                    key: short(*lo),
                })
                .collect();
            bars(&title, &rows, None, &attrs)
        }
        Distribution::Top(values) => {
            let rows: Vec<Row> = values
                .iter()
                .map(|(v, n)| {
                    let v = match v.as_str() {
                        "1" | "true" => "true",
                        "0" | "false" => "false",
                        other => other,
                    };
                    Row::Bar {
                        label: v.chars().take(24).collect(),
                        value: *n as f64,
                        shown: n.to_string(),
                        key: v.to_owned(),
                    }
                })
                .collect();
            bars(&title, &rows, None, &attrs)
        }
        Distribution::Empty => r#"<p class="muted">No values to chart.</p>"#.into(),
    }
}

pub async fn traits(engine: &Engine, p: &Principal, csrf: &str) -> Page {
    let list = engine.traits_page(p, None, all()).await?.items;
    if list.is_empty() {
        return Ok(r#"<p class="muted">No trait yet: define one over GraphQL (<code>createTrait</code>) or the traits API.</p>"#.into());
    }
    let mut body = String::new();
    for t in list {
        let _ = write!(
            body,
            r#"<section aria-labelledby="t-{slug}"><h2 id="t-{slug}">{name} <span class="muted">({slug})</span></h2><p>{ty} → {rt}; status <strong>{status}</strong>{error}; refresh {refresh}; last computed {last}{stale}</p>"#,
            slug = escape(&t.slug),
            name = escape(&t.name),
            ty = escape(t.trait_type.as_str()),
            rt = escape(t.result_type.as_str()),
            status = escape(t.status.as_str()),
            error = if t.status_error.is_empty() {
                String::new()
            } else {
                format!(r#" — <span class="bad">{}</span>"#, escape(&t.status_error))
            },
            refresh = escape(&t.refresh),
            last = when(t.last_computed_at),
            stale = if t.stale_since.is_some() {
                " (stale)"
            } else {
                ""
            },
        );
        if can_write(p) {
            body.push_str(&button(
                &format!("/console/traits/{}/run", t.id),
                csrf,
                "Run now",
                "",
            ));
        }
        let runs = engine.trait_runs_page(p, t.id, first(3)).await?.items;
        body.push_str(&table(
            &["Run", "Trigger", "Status", "Duration", "Values", "Error"],
            runs.iter()
                .map(|r| {
                    vec![
                        when(Some(r.queued_at)),
                        escape(r.trigger.as_str()),
                        escape(r.status.as_str()),
                        r.duration_ms.map(|d| format!("{d} ms")).unwrap_or_default(),
                        r.rows_computed.map(|n| n.to_string()).unwrap_or_default(),
                        escape(r.error.as_deref().unwrap_or("")),
                    ]
                })
                .collect(),
            "Not run yet.",
        ));
        let d = engine.trait_distribution(p, t.id).await?;
        let _ = write!(
            body,
            "<figure>{}</figure></section>",
            distribution_chart(&t.slug, d)
        );
    }
    Ok(body)
}

/// `{category: {facet: score}}` as bars grouped by category.
fn profile_rows(profile: &serde_json::Value) -> Vec<Row> {
    let mut rows = Vec::new();
    let Some(categories) = profile.as_object() else {
        return rows;
    };
    let sorted: BTreeMap<&String, &serde_json::Value> = categories.iter().collect();
    for (category, facets) in sorted {
        rows.push(Row::Heading(category.clone()));
        let Some(facets) = facets.as_object() else {
            continue;
        };
        let sorted: BTreeMap<&String, &serde_json::Value> = facets.iter().collect();
        for (facet, score) in sorted {
            let score = score.as_f64().unwrap_or(0.0);
            rows.push(Row::Bar {
                label: facet.clone(),
                value: score,
                shown: format!("{score:.1}"),
                key: format!("{category}.{facet}"),
            });
        }
    }
    rows
}

pub async fn segments(engine: &Engine, p: &Principal, csrf: &str) -> Page {
    let mut body = String::new();
    for s in engine.segments_page(p, all()).await?.items {
        let members = engine.segment_member_count(&s).await?;
        let _ = write!(
            body,
            r#"<section aria-labelledby="s-{slug}"><h2 id="s-{slug}">{name} <span class="muted">({slug})</span></h2><p>{members} members ({ms}); personas {ps}{perr}</p>"#,
            slug = escape(&s.slug),
            name = escape(&s.name),
            ms = escape(s.members_status.as_str()),
            ps = escape(s.personas_status.as_str()),
            perr = s
                .personas_error
                .as_deref()
                .map(|e| format!(r#" — <span class="muted">{}</span>"#, escape(e)))
                .unwrap_or_default(),
        );
        if can_write(p) {
            body.push_str(&button(
                &format!("/console/segments/{}/refresh", s.slug),
                csrf,
                "Recompute",
                "",
            ));
        }
        if let Some(profile) = &s.profile {
            let _ = write!(
                body,
                "<h3>Profile of the whole segment</h3><figure>{}</figure>",
                bars(
                    &format!("Mean facet scores of {}", s.slug),
                    &profile_rows(profile),
                    Some(100.0),
                    r#"data-chart="segment-profile""#
                )
            );
        }
        let personas = engine.personas(p, &s.slug).await?;
        if !personas.is_empty() {
            body.push_str(r#"<h3>Personas</h3><div class="personas">"#);
            for persona in personas {
                let _ = write!(
                    body,
                    r#"<figure><figcaption>Persona {i} — {size} players</figcaption>{chart}</figure>"#,
                    i = persona.persona_index,
                    size = persona.size,
                    chart = bars(
                        &format!(
                            "Persona {} of {}: mean facet scores",
                            persona.persona_index, s.slug
                        ),
                        &profile_rows(&persona.profile),
                        Some(100.0),
                        &format!(
                            r#"data-chart="persona" data-persona="{}""#,
                            persona.persona_index
                        )
                    )
                );
            }
            body.push_str("</div>");
        }
        body.push_str("</section>");
    }
    Ok(body)
}

pub async fn survey(engine: &Engine, p: &Principal, _csrf: &str) -> Page {
    let survey = engine.survey(p).await?;
    let stats = engine.survey_statistics(p).await?;
    let instrument = Instrument::stored(&survey.instrument)?;
    let mut body = format!(
        r#"<p><strong>{title}</strong> — status <strong>{status}</strong>; {items} questions on {pages} pages; at least {min} s per page.</p>
<div class="cards"><div class="card"><h2>Complete</h2><p class="big">{c}</p></div><div class="card"><h2>Partial</h2><p class="big">{pa}</p></div><div class="card"><h2>Disqualified</h2><p class="big">{d}</p></div></div>"#,
        title = escape(&survey.title),
        status = escape(survey.status.as_str()),
        items = instrument.items.len(),
        pages = instrument.page_count(),
        min = survey.min_seconds,
        c = stats.complete,
        pa = stats.partial,
        d = stats.disqualified,
    );
    let norms = engine.survey_norms(p).await?;
    let _ = write!(
        body,
        r#"<h2 id="norms">Norms and reliability</h2><p>T-scores are relative to the <strong>{source}</strong> norms (version {version}; the workspace's own apply from {min} completes, {completes} so far). Alpha below 0.7 is flagged: the facet's items may not measure one thing.</p>"#,
        source = norms.source,
        version = norms.version,
        min = norms.min_completes,
        completes = norms.completes,
    );
    let reliability: std::collections::HashMap<(String, String), _> = engine
        .survey_reliability(p)
        .await?
        .into_iter()
        .map(|r| ((r.category.clone(), r.facet.clone()), r))
        .collect();
    let figure = |v: Option<f64>| v.map_or_else(|| "—".to_owned(), |v| format!("{v:.2}"));
    body.push_str(&table(
        &[
            "Category",
            "Facet",
            "Norm mean",
            "Norm sd",
            "Source",
            "Respondents",
            "Alpha",
            "Lowest item-total r",
        ],
        norms
            .facets
            .iter()
            .map(|n| {
                let r = reliability.get(&(n.category.clone(), n.facet.clone()));
                let alpha = r.and_then(|r| r.alpha);
                let flag = if r.is_some_and(|r| r.low_alpha) {
                    " <strong>low</strong>"
                } else {
                    ""
                };
                let lowest = r.and_then(|r| {
                    r.items
                        .iter()
                        .filter_map(|i| i.corrected_item_total)
                        .min_by(f64::total_cmp)
                });
                vec![
                    escape(&n.category),
                    escape(&n.facet),
                    format!("{:.3}", n.mean),
                    format!("{:.3}", n.sd),
                    n.source.to_string(),
                    r.map_or(0, |r| r.respondents).to_string(),
                    format!("{}{flag}", figure(alpha)),
                    figure(lowest),
                ]
            })
            .collect(),
        "The instrument has no scored facets.",
    ));
    body.push_str(r#"<h2 id="preview">Preview</h2><p class="muted">The questions as players see them, page by page (answers are given on <code>/survey?playerid=…</code>).</p>"#);
    for (page, items) in instrument
        .items
        .chunks(instrument.items_per_page.max(1))
        .enumerate()
    {
        let _ = write!(body, "<h3>Page {}</h3><ol>", page + 1);
        for item in items {
            let _ = write!(body, "<li>{}</li>", escape(&item.text));
        }
        body.push_str("</ol>");
    }
    Ok(body)
}

pub async fn prediction(engine: &Engine, p: &Principal, csrf: &str) -> Page {
    let mut body = predictive(engine, p).await?;
    body.push_str("<h2>Psych scores</h2>");
    body.push_str(&psych_prediction(engine, p, csrf).await?);
    Ok(body)
}

/// Each predictive trait with its holdout quality report: the headline
/// figures, then the outcome per decile of predictions (lift) beside the
/// mean prediction there (calibration).
async fn predictive(engine: &Engine, p: &Principal) -> Page {
    let list = engine.list_predictions(p).await?;
    let mut body = String::from("<h2>Predictive traits</h2>");
    if list.is_empty() {
        body.push_str(r#"<p class="muted">None yet: create one with <code>createPrediction</code> or <code>POST …/predictions</code>.</p>"#);
        return Ok(body);
    }
    let fig = |v: Option<f64>| v.map_or("–".to_owned(), |v| format!("{v:.3}"));
    for pr in &list {
        let report: Option<engine::predictive::quality::Report> = pr
            .quality
            .clone()
            .and_then(|q| serde_json::from_value(q).ok());
        let _ = write!(
            body,
            r#"<section data-prediction="{slug}"><h3>{name}</h3><p>{goal} over {days} days · <strong>{status}</strong>{error} · {scored} players scored {at}</p>"#,
            slug = escape(&pr.slug),
            name = escape(&pr.name),
            goal = escape(pr.goal.as_str()),
            days = pr.window_days,
            status = escape(pr.status.as_str()),
            error = if pr.status_error.is_empty() {
                String::new()
            } else {
                format!(": {}", escape(&pr.status_error))
            },
            scored = pr.scored_players,
            at = when(pr.scored_at),
        );
        let Some(r) = report else {
            body.push_str("</section>");
            continue;
        };
        let headline = if r.auc.is_some() {
            vec![
                ("Quality", r.quality.clone()),
                ("AUC", fig(r.auc)),
                ("Top-decile lift", fig(r.top_decile_lift)),
                ("Log loss", fig(r.log_loss)),
                ("Brier", fig(r.brier)),
                (
                    "Positives / negatives",
                    format!("{} / {}", r.positives, r.negatives),
                ),
            ]
        } else {
            vec![
                ("Quality", r.quality.clone()),
                ("Spearman ρ", fig(r.spearman)),
                ("R²", fig(r.r2)),
                ("Top-decile capture", fig(r.top_decile_capture)),
                (
                    "Spenders / not",
                    format!("{} / {}", r.positives, r.negatives),
                ),
            ]
        };
        body.push_str(&table(
            &["Measure", "Holdout"],
            headline
                .into_iter()
                .map(|(k, v)| vec![escape(k), escape(&v)])
                .collect(),
            "",
        ));
        let mut rows = Vec::new();
        for d in &r.deciles {
            rows.push(Row::Heading(format!("Decile {}", d.decile)));
            rows.push(Row::Bar {
                label: "observed".into(),
                value: d.observed,
                shown: short(d.observed),
                key: format!("{}.observed.{}", pr.slug, d.decile),
            });
            rows.push(Row::Bar {
                label: "predicted".into(),
                value: d.mean_predicted,
                shown: short(d.mean_predicted),
                key: format!("{}.predicted.{}", pr.slug, d.decile),
            });
        }
        let _ = write!(
            body,
            r#"<figure>{}<figcaption>Holdout players by decile of prediction (1 = highest): the outcome observed beside the mean prediction.</figcaption></figure>"#,
            bars(
                &format!("{}: outcome by decile", pr.name),
                &rows,
                None,
                r#"data-chart="deciles""#
            )
        );
        // The scores as they stand, from the score trait's values.
        let scores = engine.trait_distribution(p, pr.score_trait_id).await?;
        let _ = write!(
            body,
            "<figure>{}<figcaption>Scores of every scored player.</figcaption></figure></section>",
            distribution_chart(&pr.slug, scores)
        );
    }
    Ok(body)
}

async fn psych_prediction(engine: &Engine, p: &Principal, _csrf: &str) -> Page {
    let Some(status) = engine.prediction_status(p).await? else {
        return Ok(r#"<p class="muted">Not trained yet: it trains once enough players completed the survey.</p>"#.into());
    };
    let mut body = format!(
        "<p>Status <strong>{}</strong>: {} ({} completes; {} required; {} players predicted; {}).</p>",
        escape(status.status.as_str()),
        escape(&status.message),
        status.completes,
        status.required,
        status.predicted_players,
        when(Some(status.finished_at))
    );
    let models = engine.prediction_models(p).await?;
    let mut rows = Vec::new();
    let mut category = None;
    for m in &models {
        if category != Some(&m.category) {
            rows.push(Row::Heading(m.category.clone()));
            category = Some(&m.category);
        }
        rows.push(Row::Bar {
            label: m.facet.clone(),
            value: m.r2.max(0.0),
            shown: format!("{:.2}", m.r2),
            key: format!("{}.{}", m.category, m.facet),
        });
    }
    if !rows.is_empty() {
        let _ = write!(
            body,
            "<h2>Cross-validated R² per facet</h2><figure>{}</figure>",
            bars("R² per facet", &rows, Some(1.0), r#"data-chart="r2""#)
        );
    }
    Ok(body)
}

pub async fn keys(engine: &Engine, p: &Principal, csrf: &str, secret: Option<&str>) -> Page {
    p.require(Permission::Admin)?;
    let mut body = String::new();
    if let Some(secret) = secret {
        let _ = write!(
            body,
            r#"<div class="notice" role="status"><p>The new key's secret, shown this once:</p><p class="secret" id="new-secret">{}</p><button type="button" data-copy="new-secret" hidden>Copy</button></div>"#,
            escape(secret)
        );
    }
    let keys = engine.list_api_keys(p, all()).await?.items;
    body.push_str(&table(
        &[
            "Name",
            "Prefix",
            "Role",
            "Created",
            "Last used",
            "Revoked",
            "",
        ],
        keys.iter()
            .map(|k| {
                vec![
                    escape(&k.name),
                    format!("<code>{}</code>", escape(&k.prefix)),
                    escape(k.role.as_str()),
                    when(Some(k.created_at)),
                    when(k.last_used_at),
                    when(k.revoked_at),
                    if k.revoked_at.is_none() && k.id != p.key_id {
                        button(
                            &format!("/console/keys/{}/revoke", k.id),
                            csrf,
                            "Revoke",
                            "danger",
                        )
                    } else {
                        String::new()
                    },
                ]
            })
            .collect(),
        "No key.",
    ));
    let _ = write!(
        body,
        r#"<h2>New key</h2><form method="post" action="/console/keys"><input type="hidden" name="csrf" value="{}">
<label for="key-name">Name</label><input id="key-name" name="name" type="text" required maxlength="200">
<label for="key-role">Role</label><select id="key-role" name="role"><option value="viewer">viewer</option><option value="editor">editor</option><option value="ingest">ingest</option><option value="admin">admin</option></select>
<p><button type="submit">Create key</button></p></form>"#,
        escape(csrf)
    );
    Ok(body)
}
