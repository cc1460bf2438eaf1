use std::process::Command;

use super::*;

/// Every one of `parts` is in `text` (panics naming the missing part, showing the text).
pub(super) fn assert_contains_all(text: &str, parts: &[&str]) {
    for part in parts {
        assert!(text.contains(part), "no {part:?} in:\n{text}");
    }
}

fn facts<'a>(aliases: &'a [String], files: &'a [String], summary: &'a str) -> PrFacts<'a> {
    PrFacts {
        advisory: AdvisoryFacts {
            vulnerability_id: "GHSA-29mw-wpgm-hmr9",
            aliases,
            severity: "HIGH",
            summary,
        },
        package: "lodash",
        ecosystem: "npm",
        from_version: "4.17.20",
        to_version: Some("4.17.21"),
        changed_files: files,
        explanation: None,
        operation_id: crate::lifecycle::OperationId(uuid::Uuid::from_u128(
            0x1234_5678_9abc_def0_1234_5678_9abc_def0,
        )),
        written_by_llm: None,
        confidence: None,
        also_fixes: &[],
        not_fixed: &[],
        lock: LockFacts::default(),
        tests: None,
    }
}

/// Asks real git whether `name` is a valid branch name.
fn git_accepts_branch(name: &str) -> bool {
    Command::new("git")
        .args(["check-ref-format", "--branch", name])
        .output()
        .map(|out| out.status.success())
        .unwrap_or_else(|e| panic!("git must be installed to run this test: {e}"))
}

#[test]
fn title_is_dependabot_style() {
    let f = facts(&[], &[], "");
    assert_eq!(
        title(&f),
        "fix(deps): bump lodash from 4.17.20 to 4.17.21 [GHSA-29mw-wpgm-hmr9]"
    );
    let f = PrFacts {
        advisory: AdvisoryFacts {
            vulnerability_id: "CVE-2021-23337",
            ..f.advisory
        },
        to_version: None,
        ..f
    };
    assert_eq!(title(&f), "fix(deps): remediate CVE-2021-23337 in lodash");
}

#[test]
fn title_is_one_line_and_capped() {
    let long = "p".repeat(400);
    let f = PrFacts {
        package: "evil\npkg\r\n\tname",
        ..facts(&[], &[], "")
    };
    assert_eq!(
        title(&f),
        "fix(deps): bump evil pkg name from 4.17.20 to 4.17.21 [GHSA-29mw-wpgm-hmr9]"
    );
    let f = PrFacts {
        package: &long,
        ..facts(&[], &[], "")
    };
    let t = title(&f);
    assert_eq!(t.chars().count(), 256);
    assert!(t.ends_with('…'));
}

#[test]
fn body_contains_the_facts_and_advisory_links() {
    let aliases = vec![
        "CVE-2021-23337".to_owned(),
        "SNYK-JS-LODASH-1040724".to_owned(),
    ];
    let files = vec!["package.json".to_owned(), "package-lock.json".to_owned()];
    let f = facts(&aliases, &files, "Command Injection in lodash");
    let body = body(&f);
    assert_contains_all(
        &body,
        &[
            "[GHSA-29mw-wpgm-hmr9](https://github.com/advisories/GHSA-29mw-wpgm-hmr9)",
            "[CVE-2021-23337](https://nvd.nist.gov/vuln/detail/CVE-2021-23337)",
            "(https://osv.dev/vulnerability/SNYK-JS-LODASH-1040724)",
            "**Severity:** HIGH",
            "**Package:** lodash (npm)",
            "4.17.20 → 4.17.21",
            "Command Injection in lodash",
            "- package.json\n- package-lock.json\n",
            "Deterministic version bump",
            "operation `12345678-9abc-def0-1234-56789abcdef0`",
        ],
    );
    assert!(!body.contains("language model **"), "{body}");
}

#[test]
fn body_names_the_model_and_confidence_for_llm_patches() {
    let files = vec!["src/main.rs".to_owned()];
    let base = facts(&[], &files, "Template injection");
    let f = PrFacts {
        written_by_llm: Some("gpt-4o-mini"),
        confidence: Some(0.8234),
        explanation: Some("Validate the template before use."),
        to_version: None,
        advisory: AdvisoryFacts {
            vulnerability_id: "CVE-2024-0001",
            ..base.advisory
        },
        ..base
    };
    let body = body(&f);
    assert!(
        body.contains("language model **gpt-4o-mini** with confidence 0.82"),
        "{body}"
    );
    assert!(body.contains("Validate the template before use."), "{body}");
    assert!(body.contains("not a version bump"), "{body}");
    assert!(
        body.starts_with("This pull request remediates [CVE-2024-0001](https://nvd.nist.gov/vuln/detail/CVE-2024-0001)"),
        "{body}"
    );
}

#[test]
fn outside_text_cannot_inject_links_html_or_mentions() {
    let hostile = "Click [here](https://evil.example/x) or ![img](https://evil.example/i.png) \
                   <script>alert(1)</script> <a href=\"https://evil.example\">x</a> &amp; \
                   https://evil.example/auto www.evil.example @octocat\n# Heading\n> quote\n```\ncode";
    let files = vec!["[x](https://evil.example)".to_owned()];
    let base = facts(&[], &files, hostile);
    let f = PrFacts {
        explanation: Some(hostile),
        package: "<b>pkg</b>",
        advisory: AdvisoryFacts {
            severity: "[HIGH](https://evil.example)",
            ..base.advisory
        },
        written_by_llm: Some("model](https://evil.example)"),
        ..base
    };
    let body = body(&f);
    // Every link in the body is one we made.
    for (at, _) in body.match_indices("](") {
        // An escaped `\]` closes nothing: its `[` is escaped too.
        if body[..at].ends_with('\\') {
            continue;
        }
        let target = &body[at + 2..];
        assert!(
            target.starts_with("https://github.com/advisories/"),
            "unexpected link target at {at}: {body}"
        );
    }
    for raw in ["\n# Heading", "\n> quote", "\n```", "@octocat"] {
        assert!(!body.contains(raw), "{raw:?} survived: {body}");
    }
    // No HTML tag or entity can start: every '<' and '&' is backslash-escaped.
    for (at, c) in body.char_indices().filter(|(_, c)| matches!(c, '<' | '&')) {
        assert_eq!(&body[at - 1..at], "\\", "unescaped {c:?} at {at}: {body}");
    }
    assert!(body.contains("\\<script>"), "{body}");
    assert!(body.contains("https\\:\\/\\/evil.example/auto"), "{body}");
    assert!(body.contains("www\\.evil.example"), "{body}");
    assert!(body.contains("\\@\u{200B}octocat"), "{body}");
    assert!(body.contains("\\# Heading"), "{body}");
}

#[test]
fn versions_hosts_and_file_names_are_not_escaped() {
    for plain in [
        "1.5.4",
        "mirror.example.net",
        "registry.example.org",
        "package-lock.json",
        "4.17.20 -> 4.17.21",
        "Prototype pollution (CVE-2020-8203), fixed in 4.17.21!",
    ] {
        assert_eq!(escape(plain), plain);
    }
    // What markdown would read as syntax still is escaped.
    assert_eq!(
        escape("a*b*_c_ `x` |t| ~s~ $m$"),
        "a\\*b\\*\\_c\\_ \\`x\\` \\|t\\| \\~s\\~ \\$m\\$"
    );
    assert_eq!(
        escape("1. one\n2) two\n- item\n+ item\n=="),
        "1\\. one\n2\\) two\n\\- item\n\\+ item\n\\=="
    );
    assert_eq!(escape("  # not a heading"), "  \\# not a heading");
    assert_eq!(
        escape("see https://x.example/a"),
        "see https\\:\\/\\/x.example/a"
    );
    assert_eq!(
        escape("WWW.x.example and awww.b"),
        "WWW\\.x.example and awww.b"
    );
}

#[test]
fn several_advisories_share_one_title_and_body() {
    let aliases = vec!["CVE-2021-23337".to_owned()];
    let others = [
        AdvisoryFacts {
            vulnerability_id: "GHSA-35jh-r3h4-6jhm",
            aliases: &aliases,
            severity: "CRITICAL",
            summary: "Command injection",
        },
        AdvisoryFacts {
            vulnerability_id: "CVE-2020-8203",
            aliases: &[],
            severity: "HIGH",
            summary: "",
        },
    ];
    let left = [NotFixed {
        vulnerability_id: "GHSA-unfixed-0000-0000",
        reason: "no fixed version above the installed 4.17.20 is known",
    }];
    let f = PrFacts {
        also_fixes: &others,
        not_fixed: &left,
        ..facts(&[], &[], "Prototype pollution")
    };
    assert_eq!(
        title(&f),
        "fix(deps): bump lodash from 4.17.20 to 4.17.21 [GHSA-29mw-wpgm-hmr9, GHSA-35jh-r3h4-6jhm, CVE-2020-8203]"
    );
    let body = body(&f);
    assert!(
        body.starts_with(
            "This pull request remediates 3 advisories in **lodash** (npm): [GHSA-29mw-wpgm-hmr9]("
        ),
        "{body}"
    );
    assert!(body.contains("- [GHSA-35jh-r3h4-6jhm](https://github.com/advisories/GHSA-35jh-r3h4-6jhm) ([CVE-2021-23337](https://nvd.nist.gov/vuln/detail/CVE-2021-23337)), severity CRITICAL: Command injection\n"), "{body}");
    assert!(
        body.contains(
            "- [CVE-2020-8203](https://nvd.nist.gov/vuln/detail/CVE-2020-8203), severity HIGH\n"
        ),
        "{body}"
    );
    assert!(body.contains("### Not fixed by this change\n\n- [GHSA-unfixed-0000-0000](https://github.com/advisories/GHSA-unfixed-0000-0000): no fixed version above the installed 4.17.20 is known\n"), "{body}");

    let many: Vec<AdvisoryFacts> = (0..4).map(|_| others[1]).collect();
    let f = PrFacts {
        also_fixes: &many,
        ..facts(&[], &[], "")
    };
    assert!(
        title(&f).ends_with("[GHSA-29mw-wpgm-hmr9 and 4 more]"),
        "{}",
        title(&f)
    );
}

/// Advisory ids and the page each links to.
const LINKED: &[(&str, &str)] = &[
    (
        "GHSA-abcd-efgh-ijkl",
        "https://github.com/advisories/GHSA-abcd-efgh-ijkl",
    ),
    ("cve-2020-1", "https://nvd.nist.gov/vuln/detail/CVE-2020-1"),
    ("PYSEC-2021-1", "https://osv.dev/vulnerability/PYSEC-2021-1"),
    ("GO-2022-0001", "https://osv.dev/vulnerability/GO-2022-0001"),
];

#[test]
fn an_id_that_is_not_url_safe_is_not_linked() {
    for (id, url) in LINKED {
        assert_eq!(advisory_url(id).as_deref(), Some(*url), "{id}");
    }
    for bad in [
        "",
        "x)(https://evil",
        "CVE-1 2",
        "../CVE-1",
        "javascript:alert(1)",
        "-x",
    ] {
        assert_eq!(advisory_url(bad), None, "{bad:?}");
    }
    let base = facts(&[], &[], "");
    let f = PrFacts {
        advisory: AdvisoryFacts {
            vulnerability_id: "javascript:alert(1)",
            ..base.advisory
        },
        ..base
    };
    let body = body(&f);
    assert!(!body.contains("]("), "{body}");
    assert!(body.contains("javascript:alert(1)"), "{body}");
}

#[test]
fn long_fields_are_capped() {
    let summary = "a".repeat(10_000);
    let files: Vec<String> = (0..150).map(|i| format!("f{i}")).collect();
    let body = body(&facts(&[], &files, &summary));
    assert!(!body.contains(&"a".repeat(4001)), "summary not capped");
    assert!(body.contains("- f99\n- … and 50 more"), "{body}");
    assert!(!body.contains("- f100\n"), "{body}");
}

#[test]
fn branch_name_follows_the_package_not_the_advisory() {
    assert_eq!(branch_name("npm", "lodash"), "remediator/npm-lodash");
    assert_eq!(branch_name("npm", "lodash"), branch_name("npm", "lodash"));
    assert_eq!(branch_name("npm", "@scope/pkg"), "remediator/npm-scope-pkg");
    assert_eq!(branch_name("PyPI", "Django"), "remediator/pypi-django");
    assert_eq!(
        branch_name("Go", "example.com/x/net"),
        "remediator/go-example.com-x-net"
    );
    assert_ne!(branch_name("npm", "a"), branch_name("npm", "b"));
    assert_ne!(branch_name("npm", "a"), branch_name("PyPI", "a"));
}

#[test]
fn branch_name_survives_weird_input_as_a_valid_git_ref() {
    let weird = [
        ("../../etc", "../passwd"),
        ("CVE-1", "a..b"),
        ("CVE-1", "x.lock"),
        ("CVE-1", "pkg.lock."),
        ("CVE-1", "-rf"),
        ("CVE-1", ".hidden"),
        ("CVE-1", "a/b/"),
        ("CVE-1", "a@{1}"),
        ("CVE-1", "x~1^2:y?*[z]\\w"),
        ("CVE-1", "naïve-päckage"),
        ("CVE-1", "パッケージ"),
        ("日本", "パッケージ"),
        ("", ""),
        ("CVE-1", "a\u{0}b\nc d\te"),
        ("CVE-1", &"long-name.".repeat(40)),
        (&"V".repeat(300), &"p".repeat(300)),
    ];
    for (vuln, package) in weird {
        let name = branch_name(vuln, package);
        assert!(name.starts_with("remediator/"), "{name}");
        assert!(name.len() <= 100, "{name} is {} bytes", name.len());
        let slug = &name["remediator/".len()..];
        assert!(
            slug.chars().all(|c| c.is_ascii_lowercase()
                || c.is_ascii_digit()
                || matches!(c, '.' | '_' | '-')),
            "{name}"
        );
        assert!(!name.contains(".."), "{name}");
        assert!(
            !name.ends_with(".lock") && !name.ends_with('/') && !name.ends_with('.'),
            "{name}"
        );
        assert!(!slug.starts_with(['.', '-']), "{name}");
        assert!(git_accepts_branch(&name), "git refuses {name:?}");
        assert_eq!(name, branch_name(vuln, package), "not deterministic");
    }
    assert_eq!(branch_name("CVE-1", "../passwd"), "remediator/cve-1-passwd");
    assert_eq!(branch_name("CVE-1", "x.lock"), "remediator/cve-1-x-lock");
    // Names that lose everything to slugging stay distinct through the hash.
    assert_ne!(
        branch_name("CVE-1", "パッケージ"),
        branch_name("CVE-1", "ライブラリ")
    );
    // Over-long names stay distinct too.
    let a = branch_name("CVE-1", &format!("{}a", "p".repeat(200)));
    let b = branch_name("CVE-1", &format!("{}b", "p".repeat(200)));
    assert_ne!(a, b);
}

#[test]
fn the_lock_steps_strategy_replaces_the_patchs_explanation_and_its_lines_follow() {
    let verification = crate::lockfile::Verification {
        lock_files: vec!["Cargo.lock".to_owned()],
        tool: Some("cargo update --precise".to_owned()),
        resolved: Vec::new(),
        vulnerable_left: 0,
        not_updated: Vec::new(),
    };
    let strategy = [LabelledLine::new(
        Label::Chain,
        "parent 1.0.0 -> 1.1.0 pulls lodash ^4.17.21",
    )];
    let planned = PrFacts {
        explanation: Some("a lock-only update"),
        lock: LockFacts {
            verification: Some(&verification),
            strategy: &[],
            draft_reason: Some("review it"),
        },
        ..facts(&[], &[], "")
    };
    let kept = body(&planned);
    assert!(kept.contains("a lock-only update"), "{kept}");
    assert!(
        kept.contains("Verified: Cargo.lock updated by `cargo update --precise`")
            && kept.contains("**Draft:** review it."),
        "{kept}"
    );
    let replaced = PrFacts {
        lock: LockFacts {
            strategy: &strategy,
            ..planned.lock
        },
        ..planned.clone()
    };
    let text = body(&replaced);
    assert!(!text.contains("a lock-only update"), "{text}");
    assert_eq!(
        text.matches("**How the change fixes it:**").count(),
        1,
        "{text}"
    );
    assert!(
        text.contains("**Chain:** parent 1.0.0 -> 1.1.0 pulls lodash ^4.17.21"),
        "{text}"
    );
    // A grouped pull request carries each package's lock lines in its own section.
    let grouped = group_body(
        "npm",
        &[GroupedPackage { facts: replaced }],
        &[],
        None,
        crate::lifecycle::OperationId(uuid::Uuid::nil()),
    );
    assert!(
        grouped.contains("**Chain:**")
            && grouped.contains("Verified: Cargo.lock")
            && grouped.contains("**Draft:** review it."),
        "{grouped}"
    );
}
