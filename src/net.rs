//! Host names: whether one names this machine.

/// The host name of `authority` (a `Host` header or a URL's authority: credentials before an `@`, a port, IPv6
/// brackets and a trailing dot left out), in lower case.
fn host_name(authority: &str) -> String {
    let host = authority.rsplit_once('@').map_or(authority, |(_, host)| host);
    let name = match host.strip_prefix('[') {
        Some(rest) => rest.split(']').next().unwrap_or(""),
        None => match host.rsplit_once(':') {
            Some((name, port)) if port.bytes().all(|b| b.is_ascii_digit()) => name,
            _ => host,
        },
    };
    name.trim_end_matches('.').to_ascii_lowercase()
}

/// A URL's scheme and authority (`scheme://authority/path`); `None` without a `scheme://`.
fn scheme_and_authority(url: &str) -> Option<(&str, &str)> {
    let (scheme, rest) = url.split_once("://")?;
    Some((scheme, rest.split(['/', '?', '#']).next().unwrap_or("")))
}

/// Whether `host`, a `Host` header or a URL's authority (`localhost`, `127.0.0.1`, `[::1]`, with or without a port,
/// with or without credentials before an `@`), names this machine.
pub(crate) fn is_loopback_host(host: &str) -> bool {
    let name = host_name(host);
    name == "localhost"
        || name.ends_with(".localhost")
        || name.parse::<std::net::IpAddr>().is_ok_and(|ip| ip.is_loopback())
}

/// Whether `url` (`scheme://authority/path`) is to this machine; false without a `scheme://`.
#[cfg_attr(not(any(feature = "otlp", feature = "webhook")), allow(dead_code))]
pub(crate) fn is_loopback_url(url: &str) -> bool {
    scheme_and_authority(url).is_some_and(|(_, authority)| is_loopback_host(authority))
}

/// The proxy variable a request to `url` goes through, as reqwest reads the environment (`HTTPS_PROXY` or
/// `HTTP_PROXY` by the URL's scheme, either case, the upper first; then `ALL_PROXY`), unless `NO_PROXY` names the
/// host or the host is this machine (which tokenmeter's clients never proxy). For error messages: `NO_PROXY` is
/// matched by names (`*`, the host, or a domain it is in), not by address ranges.
#[cfg(feature = "otlp")]
pub(crate) fn proxy_variable(url: &str) -> Option<&'static str> {
    proxy_variable_in(url, |name| std::env::var(name).ok())
}

/// [`proxy_variable`] in the environment `var` reads.
#[cfg(feature = "otlp")]
fn proxy_variable_in(url: &str, var: impl Fn(&str) -> Option<String>) -> Option<&'static str> {
    let env = |name: &str| var(name).filter(|v| !v.trim().is_empty());
    let (scheme, authority) = scheme_and_authority(url)?;
    if is_loopback_host(authority) {
        return None;
    }
    let host = host_name(authority);
    let exempt = ["NO_PROXY", "no_proxy"].into_iter().filter_map(env).next().is_some_and(|list| {
        list.split(',').map(|e| e.trim().trim_start_matches('.').trim_end_matches('.').to_ascii_lowercase()).any(|e| {
            e == "*"
                || (!e.is_empty() && (host == e || host.strip_suffix(e.as_str()).is_some_and(|p| p.ends_with('.'))))
        })
    });
    if exempt {
        return None;
    }
    let names: [&'static str; 4] = if scheme.eq_ignore_ascii_case("https") {
        ["HTTPS_PROXY", "https_proxy", "ALL_PROXY", "all_proxy"]
    } else {
        ["HTTP_PROXY", "http_proxy", "ALL_PROXY", "all_proxy"]
    };
    names.into_iter().find(|name| env(name).is_some())
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

    #[cfg(feature = "otlp")]
    #[test]
    fn the_proxy_variable_a_url_goes_through() {
        let with = |vars: &'static [(&'static str, &'static str)]| {
            move |name: &str| vars.iter().find(|(n, _)| *n == name).map(|(_, v)| (*v).to_owned())
        };
        let all = with(&[("HTTP_PROXY", "http://p:1"), ("HTTPS_PROXY", "http://p:2"), ("all_proxy", "http://p:3")]);
        assert_eq!(proxy_variable_in("http://collector:4318/v1/metrics", all), Some("HTTP_PROXY"));
        assert_eq!(proxy_variable_in("https://otlp.example.com/v1/metrics", all), Some("HTTPS_PROXY"));
        assert_eq!(proxy_variable_in("http://127.0.0.1:4318", all), None, "this machine is never proxied");
        assert_eq!(proxy_variable_in("http://[::1]:4318", all), None);
        let lower = with(&[("https_proxy", "http://p:2"), ("HTTP_PROXY", " ")]);
        assert_eq!(proxy_variable_in("https://otlp.example.com", lower), Some("https_proxy"));
        assert_eq!(proxy_variable_in("http://otlp.example.com", lower), None, "a blank variable is none");
        let only_all = with(&[("ALL_PROXY", "socks5://p:9")]);
        assert_eq!(proxy_variable_in("http://otlp.example.com", only_all), Some("ALL_PROXY"));
        // NO_PROXY: a host, a domain (with or without its dot), `*`; not a longer name that merely ends the same.
        for (no_proxy, url, proxied) in [
            ("otlp.example.com", "https://otlp.example.com:443/v1/metrics", false),
            (".example.com", "https://otlp.example.com", false),
            ("example.com", "https://otlp.example.com", false),
            ("example.com", "https://notexample.com", true),
            ("foo, *", "https://otlp.example.com", false),
            ("other.org,,", "https://otlp.example.com", true),
            ("OTLP.Example.com.", "https://otlp.example.com", false),
        ] {
            let vars = move |name: &str| match name {
                "HTTPS_PROXY" => Some("http://p:2".to_owned()),
                "no_proxy" => Some(no_proxy.to_owned()),
                _ => None,
            };
            assert_eq!(proxy_variable_in(url, vars).is_some(), proxied, "NO_PROXY={no_proxy} {url}");
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
