//! A repository cannot redirect its tools. Registry, proxy and source settings committed with
//! the project (`.npmrc` `registry`/`@scope:registry`/`proxy`, `.yarnrc`, `.yarnrc.yml`
//! `npmRegistryServer`/`httpProxy`, `pip.conf` and `uv.toml` indexes, `[tool.uv]` indexes,
//! `[[tool.poetry.source]]`, `poetry.toml` repositories, `.cargo/config.toml` source replacement,
//! `[registries]` and `[http] proxy`) must name a registry the worker is configured for, or the
//! tool's own default registry; otherwise the lock step fails before any tool runs, naming the
//! file, the key and the host. A company's own private registry is a legitimate case: the
//! message says to add it to the worker's registries. A proxy setting is always refused: the
//! sandbox's egress proxy is the only way out.
//!
//! The tools' defaults are asked from the clients themselves, once per worker and in the
//! sandbox like every tool run (npm's built-in registry, pip's index and file host), so no
//! registry host is written into the worker.

use std::path::Path;

use toml_edit::{DocumentMut, Item};

use super::{LockError, LockfileSettings, repo_file};
use crate::sandbox::reach::Endpoint;
use crate::sandbox::{Sandbox, ToolRun};

/// One setting that points a tool somewhere.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Setting {
    file: String,
    key: String,
    value: String,
    /// A proxy: refused whatever it names.
    proxy: bool,
}

/// Checks every tool setting of the repository's files on disk against `allowed` (the
/// configured registries, `sandbox.allowed_hosts` and the tools' own defaults,
/// [`client_defaults`]). Reads files: run it off the async runtime.
pub fn check(work_tree: &Path, allowed: &[Endpoint]) -> Result<(), LockError> {
    let mut settings = Vec::new();
    collect(work_tree, "", 0, &mut settings);
    for setting in settings {
        refuse(&setting, allowed)?;
    }
    Ok(())
}

fn refuse(setting: &Setting, allowed: &[Endpoint]) -> Result<(), LockError> {
    let Setting {
        file,
        key,
        value,
        proxy,
    } = setting;
    if *proxy {
        return Err(LockError::Refused(format!(
            "{file} sets {key} = {value:?}: the repository cannot choose the tools' proxy (the \
             worker's egress proxy is their only way out); remove the setting"
        )));
    }
    // A path (a vendored directory, a wheel folder in the repository) stays in the clone.
    if !value.contains("://") {
        return Ok(());
    }
    let Some(endpoint) = Endpoint::of_url(value) else {
        return Err(LockError::Refused(format!(
            "{file} sets {key} to a URL the worker cannot read ({value:?})"
        )));
    };
    if allowed.contains(&endpoint) {
        return Ok(());
    }
    Err(LockError::Refused(format!(
        "{file} sets {key} to {endpoint}, which is not a registry this worker is configured \
         for: a repository cannot send its tools elsewhere. If it is your own registry, add it \
         to the worker's registries (lockfiles.npm_registry / python_index / cargo_config, or \
         sandbox.allowed_hosts as \"{endpoint}\")"
    )))
}

/// The tools' own default registries, asked once per worker from the clients, in the sandbox
/// (no network, an empty work tree): npm's configured registry, and pip's index and file host.
pub async fn client_defaults(sandbox: &Sandbox, settings: &LockfileSettings) -> Vec<Endpoint> {
    static DEFAULTS: tokio::sync::OnceCell<Vec<Endpoint>> = tokio::sync::OnceCell::const_new();
    DEFAULTS
        .get_or_init(|| async {
            let pip = "from pip._internal.models.index import PyPI\n\
                       print(PyPI.simple_url)\nprint('https://' + PyPI.file_storage_domain)";
            let mut found = Vec::new();
            for (program, args) in [
                (settings.npm.as_str(), vec!["config", "get", "registry"]),
                (crate::sandbox::egress_proxy::PYTHON, vec!["-c", pip]),
            ] {
                for line in ask(sandbox, program, &args).await {
                    found.extend(Endpoint::of_url(&line));
                }
            }
            tracing::info!(defaults = ?found.iter().map(ToString::to_string).collect::<Vec<_>>(), "the lock tools' default registries");
            found
        })
        .await
        .clone()
}

/// The lines `program` prints, run in the sandbox with no network; none when it fails.
async fn ask(sandbox: &Sandbox, program: &str, args: &[&str]) -> Vec<String> {
    let Ok(empty) = tempfile::tempdir() else {
        return Vec::new();
    };
    let args = args.iter().map(|a| (*a).to_owned()).collect();
    let mut run = ToolRun::networked(program, args, empty.path(), "", &[]);
    run.network = false;
    match sandbox.run(&run, "").await {
        Ok(ran) if ran.success() => ran.output.lines().map(str::to_owned).collect(),
        _ => Vec::new(),
    }
}

/// Folders not searched for settings: installed packages and VCS data.
const SKIPPED: &[&str] = &["node_modules", ".git", "target", ".venv", "vendor"];

fn collect(root: &Path, dir: &str, depth: usize, found: &mut Vec<Setting>) {
    let Ok(entries) = std::fs::read_dir(root.join(dir)) else {
        return;
    };
    for entry in entries.flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        let path = super::join(dir, &name);
        let Ok(kind) = entry.file_type() else {
            continue;
        };
        if kind.is_dir() && depth < 8 && !SKIPPED.contains(&name.as_str()) {
            collect(root, &path, depth + 1, found);
        } else if kind.is_file() {
            let in_cargo_dir = dir == ".cargo" || dir.ends_with("/.cargo");
            let parse: Option<fn(&str, &str) -> Vec<Setting>> = match name.as_str() {
                ".npmrc" => Some(npmrc),
                ".yarnrc" => Some(yarnrc),
                ".yarnrc.yml" => Some(yarnrc_yml),
                "pip.conf" => Some(pip_conf),
                "uv.toml" | "pyproject.toml" | "poetry.toml" => Some(python_toml),
                "config" | "config.toml" if in_cargo_dir => Some(cargo_config),
                _ => None,
            };
            if let Some(parse) = parse
                && let Ok(text) = repo_file::read(root, &path)
            {
                found.extend(parse(&path, &text));
            }
        }
    }
}

fn setting(file: &str, key: &str, value: &str, proxy: bool) -> Setting {
    Setting {
        file: file.to_owned(),
        key: key.to_owned(),
        value: value.trim().trim_matches(['"', '\'']).to_owned(),
        proxy,
    }
}

const PROXY_KEYS: &[&str] = &[
    "proxy",
    "https-proxy",
    "http-proxy",
    "https_proxy",
    "http_proxy",
];

/// `.npmrc`: `registry=`, `@scope:registry=`, proxies.
fn npmrc(file: &str, text: &str) -> Vec<Setting> {
    npm_style(file, text, |line| line.split_once('='))
}

/// `.yarnrc` (yarn 1): `registry "URL"`, `"@scope:registry" "URL"`, proxies.
fn yarnrc(file: &str, text: &str) -> Vec<Setting> {
    npm_style(file, text, |line| {
        line.trim().split_once(char::is_whitespace)
    })
}

/// The registry and proxy keys of npm's settings, each line split into key and value by
/// `split`.
fn npm_style(file: &str, text: &str, split: impl Fn(&str) -> Option<(&str, &str)>) -> Vec<Setting> {
    text.lines()
        .filter_map(|line| {
            let (key, value) = split(line)?;
            let key = key.trim().trim_matches('"');
            if PROXY_KEYS.contains(&key) {
                Some(setting(file, key, value, true))
            } else if key == "registry" || key.ends_with(":registry") {
                Some(setting(file, key, value, false))
            } else {
                None
            }
        })
        .collect()
}

/// `.yarnrc.yml` (Berry): `npmRegistryServer` at any level (`npmScopes`), `httpProxy`,
/// `httpsProxy`.
fn yarnrc_yml(file: &str, text: &str) -> Vec<Setting> {
    text.lines()
        .filter_map(|line| {
            let (key, value) = line.trim().split_once(':')?;
            match key.trim() {
                "npmRegistryServer" => Some(setting(file, "npmRegistryServer", value, false)),
                key @ ("httpProxy" | "httpsProxy") => Some(setting(file, key, value, true)),
                _ => None,
            }
        })
        .collect()
}

/// `pip.conf`: `index-url`, `extra-index-url` (several lines), `find-links`, `proxy`.
fn pip_conf(file: &str, text: &str) -> Vec<Setting> {
    let mut found = Vec::new();
    let mut key = String::new();
    for line in text.lines() {
        if line.starts_with([' ', '\t']) && !key.is_empty() {
            // A continuation line: another value of the same key.
            if !line.trim().is_empty() {
                found.push(setting(file, &key, line, key == "proxy"));
            }
            continue;
        }
        key.clear();
        let Some((name, value)) = line.split_once('=') else {
            continue;
        };
        let name = name.trim();
        if ["index-url", "extra-index-url", "find-links", "proxy"].contains(&name) {
            key = name.to_owned();
            if !value.trim().is_empty() {
                found.push(setting(file, name, value, name == "proxy"));
            }
        }
    }
    found
}

/// `uv.toml`, `pyproject.toml` (`[tool.uv]`, `[[tool.poetry.source]]`) and `poetry.toml`
/// (`[repositories.NAME] url`).
fn python_toml(file: &str, text: &str) -> Vec<Setting> {
    let Ok(document) = text.parse::<DocumentMut>() else {
        return Vec::new();
    };
    let mut found = Vec::new();
    let uv = match file.rsplit('/').next() {
        Some("uv.toml") => Some(document.as_item()),
        _ => document.get("tool").and_then(|tool| tool.get("uv")),
    };
    if let Some(uv) = uv {
        for key in ["index-url", "extra-index-url", "find-links"] {
            strings(uv.get(key), &mut |value| {
                found.push(setting(file, key, value, false))
            });
        }
        for (index, table) in tables(uv.get("index")).into_iter().enumerate() {
            strings(table.get("url"), &mut |value| {
                found.push(setting(file, &format!("index[{index}].url"), value, false))
            });
        }
    }
    let sources = document
        .get("tool")
        .and_then(|tool| tool.get("poetry"))
        .and_then(|poetry| poetry.get("source"));
    for (index, table) in tables(sources).into_iter().enumerate() {
        strings(table.get("url"), &mut |value| {
            found.push(setting(
                file,
                &format!("tool.poetry.source[{index}].url"),
                value,
                false,
            ))
        });
    }
    if file.ends_with("poetry.toml")
        && let Some(repositories) = document.get("repositories").and_then(Item::as_table_like)
    {
        for (name, repository) in repositories.iter() {
            strings(repository.get("url"), &mut |value| {
                found.push(setting(
                    file,
                    &format!("repositories.{name}.url"),
                    value,
                    false,
                ))
            });
        }
    }
    found
}

/// `.cargo/config.toml`: `[source.NAME] registry`, `[registries.NAME] index`, `[http] proxy`.
fn cargo_config(file: &str, text: &str) -> Vec<Setting> {
    let Ok(document) = text.parse::<DocumentMut>() else {
        return Vec::new();
    };
    let mut found = Vec::new();
    for (section, key) in [("source", "registry"), ("registries", "index")] {
        if let Some(entries) = document.get(section).and_then(Item::as_table_like) {
            for (name, entry) in entries.iter() {
                strings(entry.get(key), &mut |value| {
                    found.push(setting(
                        file,
                        &format!("{section}.{name}.{key}"),
                        value,
                        false,
                    ))
                });
            }
        }
    }
    strings(
        document.get("http").and_then(|http| http.get("proxy")),
        &mut |value| found.push(setting(file, "http.proxy", value, true)),
    );
    found
}

/// Each string of an item that is a string or an array of strings.
fn strings(item: Option<&Item>, each: &mut dyn FnMut(&str)) {
    let Some(item) = item else {
        return;
    };
    if let Some(text) = item.as_str() {
        each(text);
    } else if let Some(array) = item.as_array() {
        array.iter().filter_map(|v| v.as_str()).for_each(each);
    }
}

/// The tables of an array of tables (`[[tool.uv.index]]`) or an inline array of tables.
fn tables(item: Option<&Item>) -> Vec<&dyn toml_edit::TableLike> {
    match item {
        Some(Item::ArrayOfTables(array)) => array
            .iter()
            .map(|t| t as &dyn toml_edit::TableLike)
            .collect(),
        Some(item) => item
            .as_array()
            .map(|array| {
                array
                    .iter()
                    .filter_map(|v| v.as_inline_table())
                    .map(|t| t as &dyn toml_edit::TableLike)
                    .collect()
            })
            .unwrap_or_default(),
        None => Vec::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings_of(files: &[(&str, &str)]) -> Vec<Setting> {
        let root = tempfile::tempdir().unwrap();
        for (path, text) in files {
            let path = root.path().join(path);
            std::fs::create_dir_all(path.parent().unwrap()).unwrap();
            std::fs::write(path, text).unwrap();
        }
        let mut found = Vec::new();
        collect(root.path(), "", 0, &mut found);
        found.sort_by(|a, b| (&a.file, &a.key).cmp(&(&b.file, &b.key)));
        found
    }

    #[test]
    fn every_tools_redirects_are_found() {
        let found = settings_of(&[
            (
                ".npmrc",
                "registry=http://10.0.0.8:4873/\n@corp:registry=https://npm.corp.example/\nhttps-proxy=http://127.0.0.1:8080\nsave-exact=true\n",
            ),
            (
                "web/.yarnrc.yml",
                "npmRegistryServer: \"http://127.0.0.1:5672\"\nnpmScopes:\n  corp:\n    npmRegistryServer: https://npm.corp.example\nhttpsProxy: http://evil.example:3128\n",
            ),
            (
                "pip.conf",
                "[global]\nindex-url = http://127.0.0.1:5432/simple\nextra-index-url =\n    https://a.example/simple\n    https://b.example/simple\n",
            ),
            (
                "pyproject.toml",
                "[tool.uv]\nindex-url = \"http://169.254.169.254/simple\"\n[[tool.uv.index]]\nname = \"x\"\nurl = \"https://x.example/simple\"\n[[tool.poetry.source]]\nname = \"corp\"\nurl = \"https://pypi.corp.example/simple\"\n",
            ),
            (
                ".cargo/config.toml",
                "[source.crates-io]\nreplace-with = \"evil\"\n[source.evil]\nregistry = \"sparse+http://127.0.0.1:15672/index/\"\n[source.vendored]\ndirectory = \"vendor\"\n[http]\nproxy = \"127.0.0.1:9\"\n",
            ),
            (
                "node_modules/x/.npmrc",
                "registry=http://ignored.example/\n",
            ),
        ]);
        let seen: Vec<(&str, &str, &str, bool)> = found
            .iter()
            .map(|s| (s.file.as_str(), s.key.as_str(), s.value.as_str(), s.proxy))
            .collect();
        assert_eq!(
            seen,
            [
                (".cargo/config.toml", "http.proxy", "127.0.0.1:9", true),
                (
                    ".cargo/config.toml",
                    "source.evil.registry",
                    "sparse+http://127.0.0.1:15672/index/",
                    false
                ),
                (
                    ".npmrc",
                    "@corp:registry",
                    "https://npm.corp.example/",
                    false
                ),
                (".npmrc", "https-proxy", "http://127.0.0.1:8080", true),
                (".npmrc", "registry", "http://10.0.0.8:4873/", false),
                (
                    "pip.conf",
                    "extra-index-url",
                    "https://a.example/simple",
                    false
                ),
                (
                    "pip.conf",
                    "extra-index-url",
                    "https://b.example/simple",
                    false
                ),
                (
                    "pip.conf",
                    "index-url",
                    "http://127.0.0.1:5432/simple",
                    false
                ),
                (
                    "pyproject.toml",
                    "index-url",
                    "http://169.254.169.254/simple",
                    false
                ),
                (
                    "pyproject.toml",
                    "index[0].url",
                    "https://x.example/simple",
                    false
                ),
                (
                    "pyproject.toml",
                    "tool.poetry.source[0].url",
                    "https://pypi.corp.example/simple",
                    false
                ),
                (
                    "web/.yarnrc.yml",
                    "httpsProxy",
                    "http://evil.example:3128",
                    true
                ),
                (
                    "web/.yarnrc.yml",
                    "npmRegistryServer",
                    "http://127.0.0.1:5672",
                    false
                ),
                (
                    "web/.yarnrc.yml",
                    "npmRegistryServer",
                    "https://npm.corp.example",
                    false
                ),
            ]
        );
    }

    #[test]
    fn a_configured_registry_passes_and_anything_else_is_named() {
        let root = tempfile::tempdir().unwrap();
        std::fs::write(
            root.path().join(".npmrc"),
            "@corp:registry=https://npm.corp.example/\n",
        )
        .unwrap();
        let configured = [Endpoint::new("npm.corp.example", 443)];
        assert!(check(root.path(), &configured).is_ok());
        let error = check(root.path(), &[]).unwrap_err().to_string();
        assert!(error.contains(".npmrc"), "{error}");
        assert!(error.contains("@corp:registry"), "{error}");
        assert!(error.contains("npm.corp.example:443"), "{error}");
        assert!(
            error.contains("add it to the worker's registries"),
            "{error}"
        );
        std::fs::write(root.path().join(".npmrc"), "proxy=http://127.0.0.1:3128\n").unwrap();
        let error = check(root.path(), &configured).unwrap_err().to_string();
        assert!(error.contains("cannot choose the tools' proxy"), "{error}");
    }
}
