//! Bearer-key authentication and the HTTPS policy, at the edge of every route.

use std::{net::IpAddr, sync::Arc};

use engine::{Engine, Error, auth::Principal};
use poem::{Endpoint, IntoResponse, Request, Response, http::uri::Scheme};

/// The secret of `Authorization: Bearer <key>` (scheme matched case-insensitively).
pub fn bearer(req: &Request) -> Option<&str> {
    let value = req
        .headers()
        .get(poem::http::header::AUTHORIZATION)?
        .to_str()
        .ok()?;
    let (scheme, token) = value.split_once(' ')?;
    scheme
        .eq_ignore_ascii_case("bearer")
        .then(|| token.trim())
        .filter(|t| !t.is_empty())
}

pub async fn authenticate(engine: &Engine, req: &Request) -> Result<Principal, Error> {
    let secret = bearer(req).ok_or_else(|| {
        Error::Unauthenticated("missing API key: send `Authorization: Bearer <key>`".into())
    })?;
    engine.authenticate(secret).await
}

#[derive(Clone, Debug, Default)]
pub struct HttpsPolicy {
    pub required: bool,
    /// Proxies whose `X-Forwarded-Proto: https` is believed.
    pub trusted_proxies: Arc<[IpAddr]>,
}

impl HttpsPolicy {
    pub fn allows(&self, req: &Request) -> bool {
        if !self.required || req.scheme() == &Scheme::HTTPS {
            return true;
        }
        let from_trusted_proxy = match req.remote_addr().0 {
            poem::Addr::SocketAddr(addr) => self.trusted_proxies.contains(&addr.ip()),
            _ => false,
        };
        from_trusted_proxy
            && req
                .headers()
                .get("x-forwarded-proto")
                .and_then(|v| v.to_str().ok())
                .is_some_and(|v| v.eq_ignore_ascii_case("https"))
    }
}

/// Refuses plain-HTTP requests when HTTPS is required; probes and `/metrics`
/// stay reachable so load balancers and Prometheus can use the internal network.
pub async fn enforce_https<E: Endpoint>(
    next: E,
    req: Request,
    policy: HttpsPolicy,
) -> poem::Result<Response> {
    let probe = matches!(req.uri().path(), "/healthz" | "/readyz" | "/metrics");
    if !probe && !policy.allows(&req) {
        // In the route family's shape: the `/v1` envelope, GraphQL's errors, or the plain JSON body.
        return Ok(crate::errors::error_for_path(
            req.uri().path(),
            Error::HttpsRequired,
        ));
    }
    Ok(next.call(req).await?.into_response())
}
