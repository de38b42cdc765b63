//! The hosted survey page (`/survey?playerid=TOKEN`): server-rendered HTML
//! that works without JavaScript, on a phone and with a screen reader. Each
//! page is a form of fieldsets (legend = statement, labelled radios); a
//! submitted page is saved before the next one is shown.

use std::collections::HashMap;

use engine::{
    Engine, Error,
    survey::{PageOutcome, SurveySession},
};
use poem::{
    Body, Response, handler,
    http::{StatusCode, header},
    web::{Data, Query},
};
use serde::Deserialize;

use crate::{errors::http_status, pages::escape};

/// A survey page's form is a few kilobytes; anything far larger is not a survey answer.
const MAX_FORM_BYTES: usize = 256 * 1024;

const STYLE: &str = "body{font-family:system-ui,sans-serif;margin:0;padding:1rem;line-height:1.5;color:#1a1a1a;background:#fafafa}\
main{max-width:40rem;margin:auto}fieldset{border:1px solid #bbb;border-radius:.5rem;margin:0 0 1rem;padding:.75rem 1rem;background:#fff}\
legend{font-weight:600;padding:0 .25rem}.scale{display:flex;flex-direction:column;gap:.25rem}\
.scale label{display:flex;gap:.5rem;align-items:center;padding:.4rem;min-height:2.75rem;border-radius:.25rem}\
.scale label:focus-within{outline:3px solid #1f5fbf}input[type=radio]{width:1.4rem;height:1.4rem}\
button{font-size:1.1rem;padding:.75rem 1.5rem;border-radius:.5rem;border:0;background:#1f5fbf;color:#fff}\
.errors{border:2px solid #b00020;padding:.5rem 1rem;border-radius:.5rem;background:#fff}progress{width:100%}\
@media(min-width:40rem){.scale{flex-direction:row;flex-wrap:wrap}}";

/// No script, nothing from elsewhere, no framing: the page's one style block
/// is allowed by its hash, and forms post back here only.
static CONTENT_SECURITY_POLICY: std::sync::LazyLock<String> = std::sync::LazyLock::new(|| {
    use base64::Engine as _;
    use sha2::Digest as _;
    let style = base64::engine::general_purpose::STANDARD.encode(sha2::Sha256::digest(STYLE));
    format!(
        "default-src 'none'; style-src 'sha256-{style}'; form-action 'self'; \
         frame-ancestors 'none'; base-uri 'none'"
    )
});

fn document(status: StatusCode, title: &str, body: &str) -> Response {
    let html = format!(
        "<!doctype html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\
<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\
<title>{}</title><style>{STYLE}</style></head><body><main>{body}</main></body></html>\n",
        escape(title)
    );
    Response::builder()
        .status(status)
        .header(header::CONTENT_TYPE, "text/html; charset=utf-8")
        .header(header::CACHE_CONTROL, "no-store")
        // The token is in the URL: keep it out of other sites' logs.
        .header("Referrer-Policy", "no-referrer")
        .header("Content-Security-Policy", CONTENT_SECURITY_POLICY.as_str())
        .header("X-Frame-Options", "DENY")
        .header("X-Content-Type-Options", "nosniff")
        .body(html)
}

/// A page for links that cannot be used (unknown, expired, completed, closed).
fn error_page(e: &Error) -> Response {
    let status = http_status(e);
    let (heading, text) = match e {
        Error::NotFound { .. } => (
            "Survey link not found",
            "This survey link is not valid. Please open the link you were given again, or ask for a new one.".to_owned(),
        ),
        Error::Expired(_) => (
            "Survey link expired",
            "This survey link has expired. Please ask for a new link.".to_owned(),
        ),
        Error::Conflict(m) => ("Survey not available", format!("{}.", capitalise(m))),
        Error::InvalidInput { .. } | Error::BadRequest(_) => {
            ("Survey request not understood", e.to_string())
        }
        Error::RateLimited { retry_after_secs } => (
            "Please slow down",
            format!(
                "This survey link sent too many pages in the last minute. Please wait {retry_after_secs} seconds, then go back and send the page again."
            ),
        ),
        _ => (
            "Something went wrong",
            "The survey could not be loaded. Please try again in a moment.".to_owned(),
        ),
    };
    let mut page = document(
        status,
        heading,
        &format!("<h1>{}</h1><p>{}</p>", escape(heading), escape(&text)),
    );
    if let Some(wait) = crate::errors::retry_after(e)
        && let Ok(value) = wait.parse()
    {
        page.headers_mut().insert(header::RETRY_AFTER, value);
    }
    page
}

fn capitalise(s: &str) -> String {
    let mut c = s.chars();
    c.next()
        .map(|f| f.to_uppercase().collect::<String>() + c.as_str())
        .unwrap_or_default()
}

fn render_page(
    token: &str,
    s: &SurveySession,
    selected: &HashMap<String, String>,
    missing: &[String],
) -> Response {
    let total = s.instrument.page_count();
    let number = s.page + 1;
    let labels = &s.instrument.scale.labels;
    let mut html = format!(
        "<h1>{}</h1><p id=\"progress\">Page {number} of {total}</p>\
<progress max=\"{total}\" value=\"{number}\" aria-labelledby=\"progress\"></progress>\
<p>How well does each statement describe you? Choose one answer per statement.</p>",
        escape(&s.title)
    );
    if !missing.is_empty() {
        html.push_str("<div class=\"errors\" role=\"alert\" tabindex=\"-1\"><h2>Please answer every statement on this page</h2><ul>");
        for item in s
            .instrument
            .page(s.page)
            .iter()
            .filter(|i| missing.contains(&i.id))
        {
            html.push_str(&format!(
                "<li><a href=\"#q-{}\">{}</a></li>",
                escape(&item.id),
                escape(&item.text)
            ));
        }
        html.push_str("</ul></div>");
    }
    html.push_str(&format!(
        "<form method=\"post\" action=\"/survey\"><input type=\"hidden\" name=\"playerid\" value=\"{}\">\
<input type=\"hidden\" name=\"page\" value=\"{}\">",
        escape(token),
        s.page
    ));
    let first = s.page * s.instrument.items_per_page;
    for (n, item) in s.instrument.page(s.page).iter().enumerate() {
        let id = escape(&item.id);
        let chosen = selected
            .get(&item.id)
            .cloned()
            .or_else(|| s.answers.get(&item.id).map(|v| v.to_string()));
        let invalid = if missing.contains(&item.id) {
            " aria-invalid=\"true\""
        } else {
            ""
        };
        html.push_str(&format!(
            "<fieldset id=\"q-{id}\"{invalid}><legend>{}. {}</legend><div class=\"scale\">",
            first + n + 1,
            escape(&item.text)
        ));
        for (k, label) in labels.iter().enumerate() {
            let value = s.instrument.scale.min + k as i16;
            let checked = if chosen.as_deref() == Some(value.to_string().as_str()) {
                " checked"
            } else {
                ""
            };
            html.push_str(&format!(
                "<label><input type=\"radio\" name=\"{id}\" value=\"{value}\" required{checked}> {}</label>",
                escape(label)
            ));
        }
        html.push_str("</div></fieldset>");
    }
    let button = if number == total {
        "Finish"
    } else {
        "Save and continue"
    };
    html.push_str(&format!("<button type=\"submit\">{button}</button></form>"));
    let status = if missing.is_empty() {
        StatusCode::OK
    } else {
        StatusCode::UNPROCESSABLE_ENTITY
    };
    document(
        status,
        &format!("{} — page {number} of {total}", s.title),
        &html,
    )
}

#[derive(Deserialize)]
pub struct SurveyLink {
    playerid: Option<String>,
}

/// `GET /survey?playerid=TOKEN`: the next page to answer.
#[handler]
pub async fn show(engine: Data<&Engine>, Query(link): Query<SurveyLink>) -> Response {
    let Some(token) = link.playerid.filter(|t| !t.is_empty()) else {
        return error_page(&Error::NotFound {
            what: "survey link",
        });
    };
    match engine.open_survey(&token).await {
        Ok(session) => render_page(&token, &session, &HashMap::new(), &[]),
        Err(e) => error_page(&e),
    }
}

/// `POST /survey`: saves a page, then shows the next one (303) or the end.
#[handler]
pub async fn submit(engine: Data<&Engine>, body: Body) -> Response {
    let form: HashMap<String, String> = match body.into_bytes_limit(MAX_FORM_BYTES).await {
        Ok(bytes) => match serde_urlencoded::from_bytes(&bytes) {
            Ok(f) => f,
            Err(e) => {
                return error_page(&Error::BadRequest(format!("the form cannot be read: {e}")));
            }
        },
        Err(e) => return error_page(&Error::BadRequest(format!("the form cannot be read: {e}"))),
    };
    let token = form.get("playerid").cloned().unwrap_or_default();
    let page = form.get("page").and_then(|p| p.parse::<usize>().ok());
    let Some(page) = page else {
        return error_page(&Error::invalid("page", "is missing"));
    };
    match engine.submit_survey_page(&token, page, &form).await {
        Ok(PageOutcome::Next { .. }) => Response::builder()
            .status(StatusCode::SEE_OTHER)
            .header(header::LOCATION, format!("/survey?playerid={token}"))
            .finish(),
        Ok(PageOutcome::Finished { .. }) => document(
            StatusCode::OK,
            "Thank you",
            "<h1>Thank you!</h1><p>Your answers have been saved. You can close this page now.</p>",
        ),
        // Unanswered statements: show the same page again with what was chosen.
        Err(Error::InvalidInput { .. }) => match engine.open_survey(&token).await {
            Ok(mut session) => {
                session.page = page.min(session.instrument.page_count() - 1);
                let (_, missing) = session.instrument.read_page(session.page, &form);
                render_page(&token, &session, &form, &missing)
            }
            Err(e) => error_page(&e),
        },
        Err(e) => error_page(&e),
    }
}
