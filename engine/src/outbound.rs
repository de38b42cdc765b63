//! The one policy for every request the server makes on a workspace's behalf
//! (bucket endpoints, webhook deliveries): `http`/`https` only, no userinfo,
//! no redirects followed, and no loopback, private, link-local, CGNAT,
//! multicast or otherwise special address, unless `OUTBOUND_ALLOW` names the
//! range or the host. Addresses are checked where the connection is made: the
//! resolver drops denied answers (so DNS rebinding cannot switch a checked
//! name to a private address) and every request's literal address is checked
//! before it is sent (so a redirect or an endpoint spelled as a number cannot
//! reach one either). Errors name the host and never repeat a remote body.

use std::{net::IpAddr, sync::Arc, time::Duration};

use ipnet::IpNet;
use object_store::client::{
    ClientConfigKey, ClientOptions, HttpClient, HttpConnector, HttpError, HttpErrorKind,
    HttpRequest, HttpResponse, HttpService,
};
use reqwest::Url;

use crate::{Error, Result};

/// Ranges no workspace may reach unless allowed.
const DENIED: &[&str] = &[
    "0.0.0.0/8",       // "this network", unspecified
    "10.0.0.0/8",      // private
    "100.64.0.0/10",   // carrier-grade NAT
    "127.0.0.0/8",     // loopback
    "169.254.0.0/16",  // link-local (cloud metadata services)
    "172.16.0.0/12",   // private
    "192.0.0.0/24",    // IETF protocol assignments
    "192.0.2.0/24",    // documentation
    "192.88.99.0/24",  // 6to4 relay
    "192.168.0.0/16",  // private
    "198.18.0.0/15",   // benchmarking
    "198.51.100.0/24", // documentation
    "203.0.113.0/24",  // documentation
    "224.0.0.0/4",     // multicast
    "240.0.0.0/4",     // reserved, broadcast
    "::/128",          // unspecified
    "::1/128",         // loopback
    "64:ff9b::/96",    // NAT64 (embeds IPv4)
    "100::/64",        // discard
    "2001:db8::/32",   // documentation
    "2002::/16",       // 6to4 (embeds IPv4)
    "fc00::/7",        // unique local (private)
    "fe80::/10",       // link-local
    "ff00::/8",        // multicast
];

/// `OUTBOUND_ALLOW`, parsed.
#[derive(Debug, Default)]
pub struct OutboundPolicy {
    nets: Vec<IpNet>,
    hosts: Vec<String>,
}

/// The address a request would reach, as policy sees it: an IPv4 address
/// mapped or compatible in IPv6 counts as that IPv4 address.
fn canonical(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => IpAddr::V4(v4),
            None => IpAddr::V6(v6),
        },
        v4 => v4,
    }
}

fn denied_nets() -> impl Iterator<Item = IpNet> {
    DENIED.iter().map(|n| n.parse().expect("valid range"))
}

impl OutboundPolicy {
    /// From the setting: comma-separated CIDRs (or single addresses) and host names.
    pub fn parse(setting: Option<&str>) -> Result<OutboundPolicy> {
        let mut policy = OutboundPolicy::default();
        for item in setting
            .unwrap_or("")
            .split(',')
            .map(str::trim)
            .filter(|s| !s.is_empty())
        {
            if let Ok(net) = item.parse::<IpNet>() {
                policy.nets.push(net);
            } else if let Ok(ip) = item.parse::<IpAddr>() {
                policy.nets.push(IpNet::from(ip));
            } else if item
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '.' || c == '-')
            {
                policy.hosts.push(item.to_ascii_lowercase());
            } else {
                return Err(Error::invalid(
                    "OUTBOUND_ALLOW",
                    format!("'{item}' is neither a CIDR range, an address nor a host name"),
                ));
            }
        }
        Ok(policy)
    }

    /// Whether a request may connect to `ip`.
    pub fn allows_ip(&self, ip: IpAddr) -> bool {
        let ip = canonical(ip);
        self.nets.iter().any(|n| n.contains(&ip)) || !denied_nets().any(|n| n.contains(&ip))
    }

    fn allows_host_name(&self, host: &str) -> bool {
        let host = host.trim_end_matches('.').to_ascii_lowercase();
        self.hosts.contains(&host)
    }

    /// Checks a URL a workspace gave (`field` names it in the error): http or
    /// https, a host, no userinfo, and an address literal must be allowed.
    /// Names are checked again when they are resolved.
    pub fn check_url(&self, field: &str, text: &str) -> Result<Url> {
        let url = Url::parse(text.trim())
            .map_err(|e| Error::invalid(field, format!("is not a URL: {e}")))?;
        if !matches!(url.scheme(), "http" | "https") {
            return Err(Error::invalid(field, "must be an http or https URL"));
        }
        if !url.username().is_empty() || url.password().is_some() {
            return Err(Error::invalid(
                field,
                "must not carry a user name or password (userinfo)",
            ));
        }
        let Some(host) = url.host_str() else {
            return Err(Error::invalid(field, "must have a host"));
        };
        self.check_host(host)
            .map_err(|reason| Error::invalid(field, reason))?;
        Ok(url)
    }

    /// A host as it appears in a URL (`[::1]`, `127.0.0.1`, a name): an
    /// address literal must be allowed; a name is checked when resolved.
    fn check_host(&self, host: &str) -> std::result::Result<(), String> {
        if self.allows_host_name(host) {
            return Ok(());
        }
        let literal = host.trim_start_matches('[').trim_end_matches(']');
        match literal.parse::<IpAddr>() {
            Ok(ip) if !self.allows_ip(ip) => Err(format!(
                "{host} is a private, loopback or otherwise reserved address, which the server does not call (OUTBOUND_ALLOW can allow it)"
            )),
            _ => Ok(()),
        }
    }

    /// Resolves `host` to the addresses a request may use; all of them denied is an error.
    async fn resolve(&self, host: &str) -> std::result::Result<Vec<IpAddr>, String> {
        let found: Vec<IpAddr> = tokio::net::lookup_host((host, 0))
            .await
            .map_err(|e| format!("{host} cannot be resolved: {e}"))?
            .map(|a| a.ip())
            .collect();
        if self.allows_host_name(host) {
            return Ok(found);
        }
        let allowed: Vec<IpAddr> = found
            .iter()
            .copied()
            .filter(|ip| self.allows_ip(*ip))
            .collect();
        if allowed.is_empty() {
            return Err(format!(
                "{host} resolves only to private, loopback or otherwise reserved addresses, which the server does not call (OUTBOUND_ALLOW can allow it)"
            ));
        }
        Ok(allowed)
    }

    /// A client that follows no redirect and connects only where the policy allows.
    pub fn http_client(self: &Arc<Self>, timeout: Duration) -> Result<reqwest::Client> {
        self.client_builder(timeout)
            .build()
            .map_err(Error::internal)
    }

    fn client_builder(self: &Arc<Self>, timeout: Duration) -> reqwest::ClientBuilder {
        reqwest::Client::builder()
            .timeout(timeout)
            .connect_timeout(timeout.min(Duration::from_secs(5)))
            .redirect(reqwest::redirect::Policy::none())
            .dns_resolver(Arc::new(PolicyResolver(self.clone())))
    }

    /// The HTTP connector of every object store built for a workspace.
    pub fn store_connector(self: &Arc<Self>, timeout: Duration) -> StoreConnector {
        StoreConnector {
            policy: self.clone(),
            timeout,
        }
    }

    /// Checks a request's host before it is sent (literal addresses skip the resolver).
    fn check_request_host(&self, host: Option<&str>) -> std::result::Result<(), String> {
        match host {
            None => Err("a request without a host".into()),
            Some(host) => self.check_host(host),
        }
    }
}

#[derive(Debug)]
struct PolicyError(String);

/// The policy's reason, when `e` is its refusal of a connection.
pub fn refusal(e: &(dyn std::error::Error + 'static)) -> Option<String> {
    e.downcast_ref::<PolicyError>().map(|p| p.0.clone())
}

impl std::fmt::Display for PolicyError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for PolicyError {}

struct PolicyResolver(Arc<OutboundPolicy>);

impl reqwest::dns::Resolve for PolicyResolver {
    fn resolve(&self, name: reqwest::dns::Name) -> reqwest::dns::Resolving {
        let policy = self.0.clone();
        let host = name.as_str().to_owned();
        Box::pin(async move {
            let ips = policy.resolve(&host).await.map_err(|e| {
                Box::new(PolicyError(e)) as Box<dyn std::error::Error + Send + Sync>
            })?;
            // Port 0: reqwest puts the URL's port in.
            let addrs: reqwest::dns::Addrs =
                Box::new(ips.into_iter().map(|ip| std::net::SocketAddr::new(ip, 0)));
            Ok(addrs)
        })
    }
}

/// Builds the policy's client for an object store (its `allow_http` kept).
#[derive(Debug)]
pub struct StoreConnector {
    policy: Arc<OutboundPolicy>,
    timeout: Duration,
}

impl HttpConnector for StoreConnector {
    fn connect(&self, options: &ClientOptions) -> object_store::Result<HttpClient> {
        let allow_http = options
            .get_config_value(&ClientConfigKey::AllowHttp)
            .is_some_and(|v| v == "true");
        let client = self
            .policy
            .client_builder(self.timeout)
            .https_only(!allow_http)
            .build()
            .map_err(|e| object_store::Error::Generic {
                store: "outbound",
                source: Box::new(e),
            })?;
        Ok(HttpClient::new(GuardedService {
            client,
            policy: self.policy.clone(),
        }))
    }
}

#[derive(Debug)]
struct GuardedService {
    client: reqwest::Client,
    policy: Arc<OutboundPolicy>,
}

#[async_trait::async_trait]
impl HttpService for GuardedService {
    async fn call(&self, req: HttpRequest) -> std::result::Result<HttpResponse, HttpError> {
        if let Err(reason) = self.policy.check_request_host(req.uri().host()) {
            return Err(HttpError::new(HttpErrorKind::Connect, PolicyError(reason)));
        }
        self.client.call(req).await
    }
}

#[cfg(test)]
mod tests {
    use std::net::{Ipv4Addr, Ipv6Addr};

    use super::*;

    fn deny_all() -> OutboundPolicy {
        OutboundPolicy::parse(None).unwrap()
    }

    #[test]
    fn special_addresses_are_denied_in_every_spelling() {
        let p = deny_all();
        for url in [
            "http://127.0.0.1/",
            "http://127.1/",
            "http://2130706433/",
            "http://0x7f000001/",
            "http://0177.0.0.1/",
            "http://0.0.0.0/",
            "http://169.254.169.254/latest/meta-data/",
            "http://10.1.2.3/",
            "http://172.16.0.1/",
            "http://192.168.1.1/",
            "http://100.64.0.1/",
            "http://[::1]/",
            "http://[::ffff:127.0.0.1]/",
            "http://[::ffff:7f00:1]/",
            "http://[fe80::1]/",
            "http://[fd00::1]/",
            "http://224.0.0.1/",
        ] {
            assert!(p.check_url("url", url).is_err(), "{url} must be denied");
        }
        assert!(!p.allows_ip(IpAddr::V4(Ipv4Addr::LOCALHOST)));
        assert!(!p.allows_ip(IpAddr::V6(Ipv6Addr::LOCALHOST)));
    }

    #[test]
    fn userinfo_other_schemes_and_hostless_urls_are_refused() {
        let p = deny_all();
        for url in [
            "http://example.com@127.0.0.1:9000/",
            "http://user:pass@example.com/",
            "ftp://example.com/",
            "file:///etc/passwd",
            "gopher://example.com/",
        ] {
            let e = p.check_url("url", url).unwrap_err();
            assert_eq!(e.field(), Some("url"), "{url}");
        }
        assert!(p.check_url("url", "https://hooks.example.com/x").is_ok());
        assert!(p.check_url("url", "http://8.8.8.8/").is_ok());
    }

    #[test]
    fn outbound_allow_opens_ranges_and_hosts() {
        let p = OutboundPolicy::parse(Some("127.0.0.1/32, 10.0.0.0/8 ,emulator.internal")).unwrap();
        assert!(p.check_url("url", "http://127.0.0.1:9000/").is_ok());
        assert!(p.check_url("url", "http://10.9.8.7/").is_ok());
        assert!(p.check_url("url", "http://[::ffff:127.0.0.1]/").is_ok());
        assert!(p.check_url("url", "http://127.0.0.2/").is_err());
        assert!(p.check_url("url", "http://169.254.169.254/").is_err());
        assert!(p.allows_host_name("Emulator.Internal."));
        let e = OutboundPolicy::parse(Some("10.0.0.0/8,not a host!")).unwrap_err();
        assert_eq!(e.field(), Some("OUTBOUND_ALLOW"));
    }

    #[tokio::test]
    async fn names_resolving_to_denied_addresses_are_refused() {
        let p = deny_all();
        let e = p.resolve("localhost").await.unwrap_err();
        assert!(e.contains("localhost resolves only to"), "{e}");
        let allowed = OutboundPolicy::parse(Some("localhost")).unwrap();
        assert!(!allowed.resolve("localhost").await.unwrap().is_empty());
    }
}
