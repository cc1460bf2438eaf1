//! The registries the worker is configured for, as the endpoints (host and port) its sandboxed
//! tools may reach: `lockfiles.npm_registry`, `python_index`, the Go proxy and checksum
//! database, every URL of the cargo config placed in the runs' CARGO_HOME (registries, source
//! replacement), and each private registry with credentials.

use crate::sandbox::reach::Endpoint;

use super::LockfileSettings;

pub fn endpoints(settings: &LockfileSettings) -> Vec<Endpoint> {
    let mut found: Vec<Endpoint> = [&settings.npm_registry, &settings.python_index]
        .into_iter()
        .filter_map(|url| Endpoint::of_url(url))
        .collect();
    found.extend(
        settings
            .go_proxy
            .split([',', '|'])
            .filter_map(Endpoint::of_url),
    );
    // GOSUMDB: `off`, a name (`sum.example`), or `name+key url`.
    if let Some(last) = settings.go_sumdb.split_whitespace().last()
        && settings.go_sumdb != "off"
    {
        match Endpoint::of_url(last) {
            Some(endpoint) => found.push(endpoint),
            None if !last.contains('+') => found.extend(Endpoint::of_entry(last)),
            None => {}
        }
    }
    if let Some(config) = &settings.cargo_config
        && let Ok(text) = std::fs::read_to_string(config)
    {
        found.extend(urls_in(&text).filter_map(Endpoint::of_url));
    }
    for credential in &settings.registry_credentials {
        found.extend(Endpoint::of_entry(&credential.host));
    }
    found.dedup();
    found
}

/// Every quoted string of a TOML text that holds a URL.
fn urls_in(text: &str) -> impl Iterator<Item = &str> {
    text.split(['"', '\''])
        .skip(1)
        .step_by(2)
        .filter(|value| value.contains("://"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_configured_registry_is_an_endpoint() {
        let dir = tempfile::tempdir().unwrap();
        let config = dir.path().join("config.toml");
        std::fs::write(
            &config,
            "[source.crates-io]\nreplace-with = \"mirror\"\n[source.mirror]\nregistry = \"sparse+http://10.1.2.3:8080/index/\"\n[source.vendored]\ndirectory = \"/srv/vendor\"\n",
        )
        .unwrap();
        let settings = LockfileSettings {
            npm_registry: "http://127.0.0.1:4873/".to_owned(),
            python_index: "https://pypi.internal.example/simple".to_owned(),
            go_proxy: "https://goproxy.internal.example,direct".to_owned(),
            go_sumdb: "off".to_owned(),
            cargo_config: Some(config),
            ..crate::config::Settings::defaults().unwrap().lockfiles
        };
        assert_eq!(
            endpoints(&settings),
            [
                Endpoint::new("127.0.0.1", 4873),
                Endpoint::new("pypi.internal.example", 443),
                Endpoint::new("goproxy.internal.example", 443),
                Endpoint::new("10.1.2.3", 8080),
            ]
        );
    }
}
