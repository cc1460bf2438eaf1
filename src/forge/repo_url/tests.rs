use super::*;

const STRICT: UrlPolicy = UrlPolicy {
    allow_http: false,
    allow_file: false,
};
const LOCAL: UrlPolicy = UrlPolicy {
    allow_http: true,
    allow_file: true,
};

fn ok(url: &str, policy: &UrlPolicy) -> RepositoryUrl {
    match RepositoryUrl::parse(url, policy) {
        Ok(parsed) => parsed,
        Err(e) => panic!("{url} should be accepted, got: {e}"),
    }
}

fn refused(url: &str, policy: &UrlPolicy) -> RepoUrlError {
    match RepositoryUrl::parse(url, policy) {
        Ok(parsed) => panic!("{url} should be refused, got {parsed:?}"),
        Err(e) => e,
    }
}

/// Each of `urls` is refused as invalid, even where http and file URLs are allowed.
fn assert_all_invalid(urls: &[&str]) {
    for url in urls {
        let e = refused(url, &LOCAL);
        assert!(
            matches!(e, RepoUrlError::Invalid(_)),
            "{url:?} should be Invalid: {e:?}"
        );
    }
}

#[test]
fn https_with_and_without_dot_git() {
    for url in [
        "https://github.com/acme/widgets",
        "https://github.com/acme/widgets.git",
        "https://github.com/acme/widgets/",
        "HTTPS://GitHub.COM/acme/widgets.git",
        "https://github.com:443/acme/widgets",
    ] {
        let parsed = ok(url, &STRICT);
        assert_eq!(parsed.scheme, RepoScheme::Https, "{url}");
        assert_eq!(parsed.host, "github.com", "{url}");
        assert_eq!(parsed.path, "acme/widgets", "{url}");
        assert_eq!(parsed.owner_and_name(), Some(("acme", "widgets")), "{url}");
        assert_eq!(parsed.as_str(), url, "the raw URL is what git uses");
        assert_eq!(parsed.user(), None);
    }
}

#[test]
fn https_keeps_a_non_default_port_and_nested_groups() {
    let parsed = ok("https://git.example.com:8443/group/sub/name.git", &STRICT);
    assert_eq!(parsed.host, "git.example.com:8443");
    assert_eq!(parsed.path, "group/sub/name");
    assert_eq!(parsed.owner_and_name(), Some(("group/sub", "name")));

    let single = ok("https://git.example.com/name.git", &STRICT);
    assert_eq!(single.path, "name");
    assert_eq!(single.owner_and_name(), None);

    let ipv6 = ok("https://[::1]:3000/o/r", &STRICT);
    assert_eq!(ipv6.host, "[::1]:3000");
}

#[test]
fn ssh_url_and_scp_like_form() {
    let parsed = ok("ssh://git@github.com/acme/widgets.git", &STRICT);
    assert_eq!(parsed.scheme, RepoScheme::Ssh);
    assert_eq!(parsed.host, "github.com");
    assert_eq!(parsed.path, "acme/widgets");
    assert_eq!(parsed.user(), Some("git"));

    let with_port = ok("ssh://git@ghe.example.com:2222/acme/widgets.git", &STRICT);
    assert_eq!(with_port.host, "ghe.example.com:2222");
    assert_eq!(
        ok("ssh://git@github.com:22/a/b", &STRICT).host,
        "github.com"
    );

    let scp = ok("git@github.com:acme/widgets.git", &STRICT);
    assert_eq!(scp.scheme, RepoScheme::Ssh);
    assert_eq!(scp.host, "github.com");
    assert_eq!(scp.path, "acme/widgets");
    assert_eq!(scp.user(), Some("git"));
    assert_eq!(scp.as_str(), "git@github.com:acme/widgets.git");

    let no_user = ok("GitHub.com:acme/widgets", &STRICT);
    assert_eq!(no_user.host, "github.com");
    assert_eq!(no_user.user(), None);
}

#[test]
fn http_and_file_only_when_allowed_with_an_actionable_message() {
    let e = refused("http://127.0.0.1:8080/acme/widgets.git", &STRICT);
    assert_eq!(e, RepoUrlError::SchemeNotAllowed { scheme: "http" });
    assert_eq!(
        e.to_string(),
        "repository URL scheme http is not allowed; set git.allow_http = true for local use only"
    );
    let e = refused("file:///tmp/repo.git", &STRICT);
    assert_eq!(e, RepoUrlError::SchemeNotAllowed { scheme: "file" });
    assert!(e.to_string().contains("git.allow_file"));

    let http = ok("http://127.0.0.1:8080/acme/widgets.git", &LOCAL);
    assert_eq!(http.scheme, RepoScheme::Http);
    assert_eq!(http.host, "127.0.0.1:8080");
    assert_eq!(ok("http://localhost:80/a/b", &LOCAL).host, "localhost");

    let file = ok("file:///tmp/work.abc_1/repo.git", &LOCAL);
    assert_eq!(file.scheme, RepoScheme::File);
    assert_eq!(file.host, "");
    assert_eq!(file.path, "tmp/work.abc_1/repo");
    assert_eq!(ok("file://localhost/srv/r.git", &LOCAL).path, "srv/r");
    assert!(matches!(
        refused("file://otherhost/srv/r.git", &LOCAL),
        RepoUrlError::Invalid(_)
    ));
}

#[test]
fn credentials_in_the_url_are_refused_without_echoing_them() {
    for url in [
        "https://ghp_secret123@github.com/acme/widgets",
        "https://x-access-token:ghp_secret123@github.com/acme/widgets.git",
        "https://user@github.com/acme/widgets",
        "http://u:ghp_secret123@127.0.0.1:8080/a/b",
        "ssh://git:ghp_secret123@github.com/acme/widgets.git",
        "git:ghp_secret123@github.com:acme/widgets.git",
    ] {
        let e = refused(url, &LOCAL);
        assert_eq!(e, RepoUrlError::Credentials, "{url}");
        assert!(!e.to_string().contains("ghp_secret123"), "{url}: {e}");
        assert!(e.to_string().contains("[[forges]]"), "{e}");
    }
}

#[test]
fn other_schemes_and_remote_helpers_are_refused() {
    for (url, shown) in [
        ("git://github.com/acme/widgets.git", "git"),
        ("ftp://example.com/acme/widgets.git", "ftp"),
        ("ftps://example.com/acme/widgets.git", "ftps"),
        ("git+ssh://git@github.com/acme/widgets.git", "git+ssh"),
    ] {
        let e = refused(url, &LOCAL);
        assert_eq!(
            e,
            RepoUrlError::UnsupportedScheme(shown.to_owned()),
            "{url}"
        );
        assert!(e.to_string().contains("use https://"), "{e}");
    }
    for url in ["ext::sh", "fd::0", "ext::ssh:%S"] {
        assert!(
            matches!(refused(url, &LOCAL), RepoUrlError::UnsupportedScheme(_)),
            "{url}"
        );
    }
    // A weird "scheme" is not echoed back.
    assert_eq!(
        refused("a'b\"c://x/y/z", &LOCAL),
        RepoUrlError::UnsupportedScheme("(unrecognised)".to_owned())
    );
}

#[test]
fn local_paths_and_malformed_urls_are_refused() {
    assert_all_invalid(&[
        "",
        "/srv/git/repo.git",
        "./repo",
        "../repo",
        "acme/widgets",
        "https://",
        "https:///acme/widgets",
        "https://github.com",
        "https://github.com/",
        "https://github.com/.git",
        "https://github.com/acme/.git",
        "https://github.com:/a/b",
        "https://github.com:0/a/b",
        "https://github.com:99999/a/b",
        "https://github.com:8x/a/b",
        "https://[::1/a/b",
        "https://[zz]/a/b",
        "https://github.com/acme/widgets?ref=main",
        "https://github.com/acme/widgets#main",
        "git@github.com:",
        "@github.com:a/b",
    ]);
}

#[test]
fn traversal_encoding_whitespace_and_control_characters_are_refused() {
    assert_all_invalid(&[
        "https://github.com/acme/../etc/passwd",
        "https://github.com/../acme/widgets",
        "https://github.com/acme/./widgets",
        "https://github.com/acme//widgets",
        "https://github.com/acme/%2e%2e/widgets",
        "https://github.com/acme/wid gets",
        "https://github.com/acme/widgets\n",
        "https://github.com/acme/wid\tgets",
        "https://github.com/acme/wid\u{0}gets",
        "https://github.com/acme/wid\u{7f}gets",
        " https://github.com/acme/widgets",
        "https://github.com/acme/wid\u{a0}gets",
        "https://github.com/acme/widgéts",
        "https://github.com/acme/w;id",
        "git@github.com:acme/../x.git",
        "file:///tmp/../etc/repo.git",
        "https://git..hub.com/a/b",
        "https://.github.com/a/b",
        "https://git hub.com/a/b",
        "https://github.com\u{0}/a/b",
    ]);
}

#[test]
fn leading_dash_is_refused_everywhere_it_could_become_an_option() {
    assert_all_invalid(&[
        "-uhttps://github.com/a/b",
        "--upload-pack=touch /tmp/x",
        "https://-oProxyCommand=x/a/b",
        "ssh://-oProxyCommand=evil/a/b.git",
        "ssh://git@-oProxyCommand=evil/a/b.git",
        "ssh://-user@github.com/a/b.git",
        "git@-oProxyCommand=x:a/b.git",
        "-git@github.com:a/b.git",
        "https://github.com/-acme/widgets",
        "https://github.com/acme/--upload-pack",
        "git@github.com:-acme/widgets.git",
    ]);
}

#[test]
fn errors_never_repeat_the_url() {
    let url = "https://github.com/acme/widgets?token=ghp_secret123";
    let e = refused(url, &LOCAL);
    assert!(!e.to_string().contains("ghp_secret123"), "{e}");
    let e = refused("https://github.com/ghp_secret123/../x", &LOCAL);
    assert!(!e.to_string().contains("ghp_secret123"), "{e}");
}
