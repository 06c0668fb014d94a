//! Host names: whether one names this machine.

/// Whether `host`, a `Host` header or a URL's authority (`localhost`, `127.0.0.1`, `[::1]`, with or without a port,
/// with or without credentials before an `@`), names this machine.
pub(crate) fn is_loopback_host(host: &str) -> bool {
    let host = host.rsplit_once('@').map_or(host, |(_, host)| host);
    let name = match host.strip_prefix('[') {
        Some(rest) => rest.split(']').next().unwrap_or(""),
        None => match host.rsplit_once(':') {
            Some((name, port)) if port.bytes().all(|b| b.is_ascii_digit()) => name,
            _ => host,
        },
    };
    let name = name.trim_end_matches('.').to_ascii_lowercase();
    name == "localhost"
        || name.ends_with(".localhost")
        || name.parse::<std::net::IpAddr>().is_ok_and(|ip| ip.is_loopback())
}

/// Whether `url` (`scheme://authority/path`) is to this machine; false without a `scheme://`.
#[cfg_attr(not(any(feature = "otlp", feature = "webhook")), allow(dead_code))]
pub(crate) fn is_loopback_url(url: &str) -> bool {
    let Some((_, rest)) = url.split_once("://") else {
        return false;
    };
    let authority = rest.split(['/', '?', '#']).next().unwrap_or("");
    is_loopback_host(authority)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn loopback_hosts() {
        for h in [
            "localhost",
            "localhost:8787",
            "LOCALHOST.",
            "api.localhost:1",
            "127.0.0.1",
            "127.0.0.1:8787",
            "127.1.2.3",
            "[::1]",
            "[::1]:8787",
            "user:secret@localhost:8787",
        ] {
            assert!(is_loopback_host(h), "{h}");
        }
        for h in [
            "evil.example",
            "evil.example:8787",
            "10.0.0.1",
            "0.0.0.0:8787",
            "[::]:1",
            "localhost.evil.example",
            "127.0.0.1.evil.example",
            "localhost@evil.example",
            "",
        ] {
            assert!(!is_loopback_host(h), "{h}");
        }
    }

    #[test]
    fn loopback_urls() {
        for u in
            ["http://localhost:4318", "http://127.0.0.1:4318/v1/metrics", "https://[::1]:9/x?y", "HTTP://localhost"]
        {
            assert!(is_loopback_url(u), "{u}");
        }
        for u in ["http://collector:4318", "https://otlp.example/v1/metrics?h=localhost", "localhost:4318", ""] {
            assert!(!is_loopback_url(u), "{u}");
        }
    }
}
