//! The dependency rule of `docs/architecture.md`, checked on the source:
//! infrastructure modules (the job system, the database, outbound calls,
//! secrets, shared helpers) import no domain module. Only `job_kinds`, the
//! registry, sees every domain's jobs.

const INFRASTRUCTURE: &[&str] = &[
    "jobs/mod.rs",
    "jobs/outbox.rs",
    "jobs/recovery.rs",
    "jobs/queue.rs",
    "db.rs",
    "error.rs",
    "outbound.rs",
    "secrets.rs",
    "pagination.rs",
    "limits.rs",
    "slug.rs",
    "text_enum.rs",
];

const DOMAINS: &[&str] = &[
    "catalog",
    "custom_models",
    "erasure",
    "ingest",
    "job_kinds",
    "models",
    "overview",
    "prediction",
    "retention",
    "segments",
    "survey",
    "traits",
    "workspaces",
];

/// `crate::x` and `crate::{x, …}` names in `source`, comments left out.
fn crate_imports(source: &str) -> Vec<String> {
    let code: String = source
        .lines()
        .map(|l| l.split("//").next().unwrap_or_default())
        .collect::<Vec<_>>()
        .join("\n");
    let mut names = Vec::new();
    for (i, _) in code.match_indices("crate::") {
        let rest = &code[i + "crate::".len()..];
        if let Some(group) = rest.strip_prefix('{') {
            let group = &group[..group.find('}').unwrap_or(group.len())];
            names.extend(
                group
                    .split([',', '{'])
                    .map(|n| n.trim().split("::").next().unwrap_or_default().to_owned()),
            );
        } else {
            let name: String = rest
                .chars()
                .take_while(|c| c.is_alphanumeric() || *c == '_')
                .collect();
            names.push(name);
        }
    }
    names
}

#[test]
fn infrastructure_imports_no_domain() {
    let src = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    for file in INFRASTRUCTURE {
        let source = std::fs::read_to_string(src.join(file)).expect(file);
        let domains: Vec<String> = crate_imports(&source)
            .into_iter()
            .filter(|n| DOMAINS.contains(&n.as_str()))
            .collect();
        assert!(
            domains.is_empty(),
            "{file} imports the domain module(s) {domains:?}"
        );
    }
}

#[test]
fn the_check_sees_grouped_and_plain_imports() {
    let source = "use crate::{Engine, traits::runs::RunStatus};\n// crate::ingest\nlet x = crate::segments::x();";
    assert_eq!(crate_imports(source), ["Engine", "traits", "segments"]);
}
