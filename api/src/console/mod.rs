//! The console at `/console`: server-rendered pages over the engine's
//! services, for people who want to look rather than query. Signing in with
//! an API key opens a session (`console_sessions`) carried by an HttpOnly,
//! SameSite=Strict cookie (Secure over TLS); every form carries the
//! session's CSRF token and must come from this origin. The key's role
//! decides what is shown: write controls only for editors and admins, keys
//! only for admins.

mod charts;
mod layout;
mod views;

use engine::{
    Engine, Error,
    auth::{Permission, Principal},
    console_sessions::{SESSION_LIFETIME, Session},
};
use poem::{
    IntoResponse, Request, Response, Route, get, handler,
    http::{StatusCode, header},
    post,
    web::{Data, Form, Html, Path},
};
use serde::Deserialize;
use uuid::Uuid;

use crate::pages::with_csp;

const COOKIE: &str = "tf_console";

pub fn routes() -> Route {
    Route::new()
        .at("/", get(overview))
        .at("/sign-in", get(sign_in_page).post(sign_in))
        .at("/sign-out", post(sign_out))
        .at("/data", get(data))
        .at("/traits", get(traits))
        .at("/traits/:id/run", post(run_trait))
        .at("/segments", get(segments))
        .at("/segments/:slug/refresh", post(refresh_segment))
        .at("/survey", get(survey))
        .at("/prediction", get(prediction))
        .at("/keys", get(keys).post(create_key))
        .at("/keys/:id/revoke", post(revoke_key))
}

fn cookie_token(req: &Request) -> Option<String> {
    req.headers()
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(name, _)| *name == COOKIE)
        .map(|(_, value)| value.to_owned())
}

fn redirect(to: &str) -> Response {
    Response::builder()
        .status(StatusCode::SEE_OTHER)
        .header(header::LOCATION, to)
        .finish()
}

/// The session of the request, or the answer that sends the browser to sign in.
async fn session(engine: &Engine, req: &Request) -> Result<Session, Response> {
    let Some(token) = cookie_token(req) else {
        return Err(redirect("/console/sign-in"));
    };
    engine
        .console_session(&token)
        .await
        .map_err(|_| redirect("/console/sign-in"))
}

/// A form may only come from this origin and must carry the session's token.
fn form_ok(req: &Request, s: &Session, csrf: &str) -> bool {
    let same_origin = match req
        .headers()
        .get(header::ORIGIN)
        .and_then(|o| o.to_str().ok())
    {
        None => true,
        Some(origin) => {
            let host = req
                .headers()
                .get(header::HOST)
                .and_then(|h| h.to_str().ok());
            host.is_some_and(|h| origin.ends_with(&format!("//{h}")))
        }
    };
    let token_ok = csrf.len() == s.csrf_token.len()
        && csrf
            .bytes()
            .zip(s.csrf_token.bytes())
            .fold(0u8, |acc, (a, b)| acc | (a ^ b))
            == 0;
    same_origin && token_ok
}

fn refused() -> Response {
    (
        StatusCode::FORBIDDEN,
        "the form is stale or from another site: reload the page",
    )
        .into_response()
}

fn html(status: StatusCode, body: String) -> Response {
    with_csp(Html(body).with_status(status))
        .with_header(header::CACHE_CONTROL, "no-store")
        .into_response()
}

fn render(current: &str, s: &Session, body: Result<String, Error>) -> Response {
    match body {
        Ok(body) => html(
            StatusCode::OK,
            layout::page(current, &s.principal, &s.csrf_token, &body),
        ),
        Err(e) => {
            let status = crate::errors::http_status(&e);
            let message = format!(
                r#"<p class="error" role="alert">{}</p>"#,
                layout::escape(&e.to_string())
            );
            html(
                status,
                layout::page(current, &s.principal, &s.csrf_token, &message),
            )
        }
    }
}

macro_rules! page {
    ($name:ident, $path:literal, $view:path) => {
        #[handler]
        async fn $name(engine: Data<&Engine>, req: &Request) -> Response {
            match session(&engine, req).await {
                Ok(s) => {
                    let body = $view(&engine, &s.principal, &s.csrf_token).await;
                    render($path, &s, body)
                }
                Err(to_sign_in) => to_sign_in,
            }
        }
    };
}

page!(overview, "/console", views::overview);
page!(data, "/console/data", views::data);
page!(traits, "/console/traits", views::traits);
page!(segments, "/console/segments", views::segments);
page!(survey, "/console/survey", views::survey);
page!(prediction, "/console/prediction", views::prediction);

#[handler]
async fn keys(engine: Data<&Engine>, req: &Request) -> Response {
    match session(&engine, req).await {
        Ok(s) => {
            let body = views::keys(&engine, &s.principal, &s.csrf_token, None).await;
            render("/console/keys", &s, body)
        }
        Err(to_sign_in) => to_sign_in,
    }
}

#[handler]
fn sign_in_page() -> Response {
    html(StatusCode::OK, layout::sign_in(None))
}

#[derive(Deserialize)]
struct SignIn {
    key: String,
}

#[handler]
async fn sign_in(engine: Data<&Engine>, req: &Request, Form(form): Form<SignIn>) -> Response {
    match engine.open_console_session(&form.key).await {
        Ok(opened) => {
            let secure = if req.scheme() == &poem::http::uri::Scheme::HTTPS {
                "; Secure"
            } else {
                ""
            };
            redirect("/console")
                .with_header(
                    header::SET_COOKIE,
                    format!(
                        "{COOKIE}={}; Path=/console; Max-Age={}; HttpOnly; SameSite=Strict{secure}",
                        opened.token,
                        SESSION_LIFETIME.num_seconds()
                    ),
                )
                .into_response()
        }
        Err(e) => {
            let status = crate::errors::http_status(&e);
            html(status, layout::sign_in(Some(&e.to_string())))
        }
    }
}

#[derive(Deserialize)]
struct CsrfOnly {
    csrf: String,
}

#[handler]
async fn sign_out(engine: Data<&Engine>, req: &Request, Form(form): Form<CsrfOnly>) -> Response {
    if let Ok(s) = session(&engine, req).await {
        if !form_ok(req, &s, &form.csrf) {
            return refused();
        }
        if let Some(token) = cookie_token(req) {
            let _ = engine.close_console_session(&token).await;
        }
    }
    redirect("/console/sign-in")
        .with_header(
            header::SET_COOKIE,
            format!("{COOKIE}=; Path=/console; Max-Age=0; HttpOnly; SameSite=Strict"),
        )
        .into_response()
}

/// Runs a POST of a signed-in page and goes back to `back`.
async fn act<F, Fut>(engine: &Engine, req: &Request, csrf: &str, back: &str, f: F) -> Response
where
    F: FnOnce(Principal) -> Fut,
    Fut: Future<Output = Result<(), Error>>,
{
    let s = match session(engine, req).await {
        Ok(s) => s,
        Err(to_sign_in) => return to_sign_in,
    };
    if !form_ok(req, &s, csrf) {
        return refused();
    }
    match f(s.principal.clone()).await {
        Ok(()) => redirect(back),
        Err(e) => render(back, &s, Err(e)),
    }
}

#[handler]
async fn run_trait(
    engine: Data<&Engine>,
    req: &Request,
    Path(id): Path<Uuid>,
    Form(form): Form<CsrfOnly>,
) -> Response {
    let engine = *engine;
    act(engine, req, &form.csrf, "/console/traits", |p| async move {
        engine.trigger_trait(&p, id).await.map(|_| ())
    })
    .await
}

#[handler]
async fn refresh_segment(
    engine: Data<&Engine>,
    req: &Request,
    Path(slug): Path<String>,
    Form(form): Form<CsrfOnly>,
) -> Response {
    let engine = *engine;
    act(
        engine,
        req,
        &form.csrf,
        "/console/segments",
        |p| async move { engine.refresh_segment(&p, &slug).await.map(|_| ()) },
    )
    .await
}

#[derive(Deserialize)]
struct NewKey {
    csrf: String,
    name: String,
    role: String,
}

#[handler]
async fn create_key(engine: Data<&Engine>, req: &Request, Form(form): Form<NewKey>) -> Response {
    let s = match session(&engine, req).await {
        Ok(s) => s,
        Err(to_sign_in) => return to_sign_in,
    };
    if !form_ok(req, &s, &form.csrf) {
        return refused();
    }
    let created = async {
        let role = engine::auth::role_from_input(&form.role)?;
        engine.create_api_key(&s.principal, &form.name, role).await
    }
    .await;
    match created {
        // The secret is in this answer only.
        Ok(created) => {
            let body =
                views::keys(&engine, &s.principal, &s.csrf_token, Some(&created.secret)).await;
            render("/console/keys", &s, body)
        }
        Err(e) => render("/console/keys", &s, Err(e)),
    }
}

#[handler]
async fn revoke_key(
    engine: Data<&Engine>,
    req: &Request,
    Path(id): Path<Uuid>,
    Form(form): Form<CsrfOnly>,
) -> Response {
    let engine = *engine;
    act(engine, req, &form.csrf, "/console/keys", |p| async move {
        p.require(Permission::Admin)?;
        engine.revoke_api_key(&p, id).await.map(|_| ())
    })
    .await
}
