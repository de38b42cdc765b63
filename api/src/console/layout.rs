//! The console's page shell: head, skip link, navigation (the current page
//! marked), sign-out form, and HTML escaping for everything interpolated.

use engine::auth::{Permission, Principal};

pub use crate::pages::escape;

/// The console's pages, in navigation order: (path, title).
pub const PAGES: [(&str, &str); 7] = [
    ("/console", "Overview"),
    ("/console/data", "Data"),
    ("/console/traits", "Traits"),
    ("/console/segments", "Segments"),
    ("/console/survey", "Survey"),
    ("/console/prediction", "Prediction"),
    ("/console/keys", "Keys"),
];

fn head(title: &str) -> String {
    format!(
        r#"<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{} · Traitforge console</title>
<link rel="stylesheet" href="/assets/console.css">
<script src="/assets/console.js" defer></script>
</head>
"#,
        escape(title)
    )
}

/// A signed-in page: navigation, then `body` in `<main>`.
pub fn page(current: &str, p: &Principal, csrf: &str, body: &str) -> String {
    let title = PAGES
        .iter()
        .find(|(path, _)| *path == current)
        .map_or("Console", |(_, t)| t);
    let mut nav = String::new();
    for (path, name) in PAGES {
        // Keys are managed by admins only; others do not see the page.
        if path == "/console/keys" && p.require(Permission::Admin).is_err() {
            continue;
        }
        let current_attr = if path == current {
            r#" aria-current="page""#
        } else {
            ""
        };
        nav.push_str(&format!(
            r#"<li><a href="{path}"{current_attr}>{name}</a></li>"#
        ));
    }
    format!(
        r##"{head}<body>
<a class="skip" href="#main">Skip to content</a>
<header class="top">
<a href="/console"><strong>Traitforge</strong></a>
<nav aria-label="Console"><ul>{nav}</ul></nav>
<form class="inline" method="post" action="/console/sign-out">
<input type="hidden" name="csrf" value="{csrf}">
<span class="muted-inverse">{role}</span> <button class="quiet" type="submit">Sign out</button>
</form>
</header>
<main id="main">
<h1>{title}</h1>
{body}
</main>
</body>
</html>"##,
        head = head(title),
        csrf = escape(csrf),
        role = escape(p.role.as_str()),
        title = escape(title),
    )
}

/// The sign-in page, with an optional error.
pub fn sign_in(error: Option<&str>) -> String {
    let error = error
        .map(|e| format!(r#"<p class="error" role="alert">{}</p>"#, escape(e)))
        .unwrap_or_default();
    format!(
        r#"{head}<body>
<main id="main" class="narrow">
<h1>Sign in to the Traitforge console</h1>
{error}
<form method="post" action="/console/sign-in">
<label for="key">API key</label>
<input id="key" name="key" type="password" autocomplete="off" required>
<p class="muted">A viewer key shows everything read-only; editor and admin keys may change things; admins manage keys.</p>
<button type="submit">Sign in</button>
</form>
<p><a href="/">Back to the start page</a></p>
</main>
</body>
</html>"#,
        head = head("Sign in"),
    )
}
