//! Who may use the server: an optional bearer token and the `Host` names it answers to.

use axum::http::header::{AUTHORIZATION, HOST};
use axum::http::Request;

/// Paths served without the token: liveness probes and the web page (which asks for the
/// token itself when the API answers 401).
const OPEN_PATHS: [&str; 4] = ["/healthz", "/", "/app.js", "/style.css"];

/// Access rules; the default admits every request.
#[derive(Debug, Clone, Default)]
pub struct Access {
    /// When set, every request but `/healthz` and the web page must carry
    /// `Authorization: Bearer <token>` (401 otherwise).
    pub token: Option<String>,
    /// When set, the `Host` names (port aside, any case) requests may carry (421 otherwise).
    /// This is what keeps a web page elsewhere, whose name an attacker points at 127.0.0.1
    /// (DNS rebinding), from using a loopback server: the browser sends that page's name.
    /// A request without a `Host` header (HTTP/1.0) is let through: browsers always send one.
    pub hosts: Option<Vec<String>>,
}

/// Why a request was turned away.
pub(crate) enum Denied {
    Host(String),
    Token,
}

impl Access {
    /// The names of this machine's loopback interface, for a server bound to it.
    pub fn loopback_hosts() -> Vec<String> {
        ["localhost", "127.0.0.1", "::1"].map(String::from).into()
    }

    pub(crate) fn check<B>(&self, request: &Request<B>) -> Result<(), Denied> {
        if let Some(hosts) = &self.hosts {
            let host = request.uri().host().map(str::to_string).or_else(|| {
                let value = request.headers().get(HOST)?;
                Some(String::from_utf8_lossy(value.as_bytes()).into_owned())
            });
            if let Some(host) = host {
                let name = host_name(&host);
                if !hosts.iter().any(|h| h.eq_ignore_ascii_case(name)) {
                    return Err(Denied::Host(host));
                }
            }
        }
        if let Some(token) = &self.token {
            if !OPEN_PATHS.contains(&request.uri().path()) {
                let sent = request
                    .headers()
                    .get(AUTHORIZATION)
                    .and_then(|v| v.as_bytes().strip_prefix(b"Bearer "));
                if !sent.is_some_and(|sent| same_secret(sent, token.as_bytes())) {
                    return Err(Denied::Token);
                }
            }
        }
        Ok(())
    }
}

/// The name in a `Host` value: without its port, and an IPv6 address without brackets.
fn host_name(host: &str) -> &str {
    if let Some(rest) = host.strip_prefix('[') {
        return rest.split(']').next().unwrap_or(rest);
    }
    match host.rsplit_once(':') {
        Some((name, port)) if port.bytes().all(|b| b.is_ascii_digit()) => name,
        _ => host,
    }
}

/// Compares in time that depends on the length only, so the answer's timing does not tell
/// how much of a guessed token was right. Hand-written: five lines against a dependency.
fn same_secret(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request(host: Option<&str>, path: &str, auth: Option<&str>) -> Request<()> {
        let mut builder = Request::builder().uri(path);
        if let Some(host) = host {
            builder = builder.header(HOST, host);
        }
        if let Some(auth) = auth {
            builder = builder.header(AUTHORIZATION, auth);
        }
        builder.body(()).unwrap()
    }

    #[test]
    fn hosts_are_matched_without_port_or_case() {
        let access = Access {
            token: None,
            hosts: Some(Access::loopback_hosts()),
        };
        for host in [
            "localhost:8080",
            "LOCALHOST",
            "127.0.0.1:1",
            "[::1]:80",
            "[::1]",
        ] {
            assert!(
                access.check(&request(Some(host), "/", None)).is_ok(),
                "{host}"
            );
        }
        for host in [
            "evil.example:8080",
            "localhost.evil.example",
            "127.0.0.2",
            "[::2]",
        ] {
            assert!(
                matches!(access.check(&request(Some(host), "/", None)), Err(Denied::Host(h)) if h == host),
                "{host}"
            );
        }
        assert!(access.check(&request(None, "/", None)).is_ok());
        assert!(Access::default()
            .check(&request(Some("evil.example"), "/", None))
            .is_ok());
    }

    #[test]
    fn the_token_guards_everything_but_health_and_the_page() {
        let access = Access {
            token: Some("s3cret".into()),
            hosts: None,
        };
        let denied =
            |path, auth| matches!(access.check(&request(None, path, auth)), Err(Denied::Token));
        for auth in [
            None,
            Some("Bearer s3cre"),
            Some("Bearer s3cret2"),
            Some("s3cret"),
            Some("Basic s3cret"),
        ] {
            assert!(denied("/v1/profiles", auth), "{auth:?}");
            assert!(denied("/metrics", auth), "{auth:?}");
        }
        assert!(!denied("/v1/profiles", Some("Bearer s3cret")));
        for open in OPEN_PATHS {
            assert!(!denied(open, None), "{open}");
        }
    }
}
