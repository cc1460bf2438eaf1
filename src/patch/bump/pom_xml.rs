//! Version bump in Maven's `pom.xml`: finds the `groupId:artifactId` dependency in
//! `<dependencies>` and `<dependencyManagement>` (of the project and of its profiles) and
//! rewrites the text of its `<version>`, or of the `<properties>` entry that version names
//! (`${jackson.version}`). Plugins, extensions and the `<parent>` are not dependencies.
//! The file is read with a small scanner and only the version bytes are replaced, so comments,
//! indentation and element order stay as written.

use std::ops::Range;

use crate::patch::bump::constraint::Rewrite;
use crate::patch::bump::version::Version;
use crate::patch::bump::xml_scan::{self, Element};
use crate::patch::bump::{BumpError, BumpOutcome, Declaration, ManifestKind, apply_rewrites};

const KIND: ManifestKind = ManifestKind::PomXml;

/// Where a `<dependency>` declares a dependency of the project (not of a plugin).
const DEPENDENCY_PATHS: &[&[&str]] = &[
    &["project", "dependencies", "dependency"],
    &[
        "project",
        "dependencyManagement",
        "dependencies",
        "dependency",
    ],
    &[
        "project",
        "profiles",
        "profile",
        "dependencies",
        "dependency",
    ],
    &[
        "project",
        "profiles",
        "profile",
        "dependencyManagement",
        "dependencies",
        "dependency",
    ],
];

/// Qualifiers Maven orders as the release itself (`5.4.24.Final` == `5.4.24`).
const RELEASE_QUALIFIERS: &[&str] = &["release", "final", "ga"];

pub(super) fn bump(content: &str, package: &str, target: &str) -> Result<BumpOutcome, BumpError> {
    let Some(coordinates) = package.split_once(':') else {
        return Err(KIND.unsupported(package, "Maven packages are named `groupId:artifactId`"));
    };
    let elements = xml_scan::scan(content).map_err(|detail| KIND.parse_error(detail))?;
    if elements.first().map(Element::local_name) != Some("project") {
        return Err(KIND.parse_error("the root element is not <project>"));
    }

    let mut declarations: Vec<Declaration> = Vec::new();
    let mut versionless = None;
    for index in 0..elements.len() {
        match dependency_version(content, &elements, index, coordinates)
            .map_err(|reason| KIND.unsupported(package, reason))?
        {
            Found::Other => {}
            Found::Versionless(location) => {
                versionless.get_or_insert(location);
            }
            // Dependencies sharing a property share one declaration: bumping the property
            // moves them all. That is the wanted outcome (such properties version a family of
            // artifacts released together, e.g. Jackson), and the only one short of splitting
            // the property.
            Found::Declared(declaration) => {
                if !declarations
                    .iter()
                    .any(|existing| existing.span == declaration.span)
                {
                    declarations.push(declaration);
                }
            }
        }
    }

    if declarations.is_empty()
        && let Some(location) = versionless
    {
        return Err(KIND.unsupported(
            package,
            format!(
                "the dependency in {location} declares no version here: it is managed by a \
                 parent POM or an imported BOM; raise it there, or pin it in \
                 <dependencyManagement>"
            ),
        ));
    }
    apply_rewrites(KIND, content, package, &declarations, |_, current| {
        rewrite(current, target).map(Rewrite::pinned)
    })
}

/// What one element says about the dependency being bumped.
enum Found {
    /// It is not a project dependency on it.
    Other,
    /// It declares the dependency without a version (at this location): the version comes
    /// from a parent POM or a BOM.
    Versionless(String),
    /// It declares the dependency with this version text (inline or a property's).
    Declared(Declaration),
}

/// Reads the element at `index` as a declaration of the dependency `(groupId, artifactId)`;
/// an error reason when it declares it in a way that cannot be bumped.
fn dependency_version(
    content: &str,
    elements: &[Element],
    index: usize,
    (group, artifact): (&str, &str),
) -> Result<Found, String> {
    if elements[index].local_name() != "dependency"
        || !DEPENDENCY_PATHS.contains(&xml_scan::path(elements, index).as_slice())
    {
        return Ok(Found::Other);
    }
    let child = |name: &str| {
        xml_scan::children(elements, index).find(|&i| elements[i].local_name() == name)
    };
    let text_of = |name: &str| {
        child(name)
            .and_then(|i| xml_scan::plain_text(content, &elements[i]))
            .map(|range| &content[range])
    };
    if text_of("groupId") != Some(group) || text_of("artifactId") != Some(artifact) {
        return Ok(Found::Other);
    }
    let line = xml_scan::line_of(content, elements[index].start);
    let location = format!("{} (line {line})", section(content, elements, index));
    let Some(version) = child("version") else {
        return Ok(Found::Versionless(location));
    };
    let range = xml_scan::plain_text(content, &elements[version]).ok_or_else(|| {
        format!(
            "the <version> of the dependency in {location} contains comments or markup; edit \
             it by hand"
        )
    })?;
    let written = &content[range.clone()];
    if written.is_empty() {
        return Ok(Found::Versionless(location));
    }
    match written
        .strip_prefix("${")
        .and_then(|rest| rest.strip_suffix('}'))
    {
        Some(property) => {
            property_declaration(content, elements, property, &location).map(Found::Declared)
        }
        None if written.contains("${") => Err(format!(
            "the version `{written}` in {location} mixes a property with text; edit it by hand"
        )),
        None => Ok(Found::Declared(Declaration {
            span: range,
            location,
        })),
    }
}

/// The declaration behind `${property}`: the text of the project's `<properties>` entry.
fn property_declaration(
    content: &str,
    elements: &[Element],
    property: &str,
    location: &str,
) -> Result<Declaration, String> {
    let uses = format!("the version of the dependency in {location} is `${{{property}}}`");
    if property.starts_with("project.") || property.starts_with("pom.") || property == "version" {
        return Err(format!(
            "{uses}, the project's own version; it is a module of this build, not a registry \
             dependency"
        ));
    }
    let definitions = |properties_path: &[&str]| -> Vec<usize> {
        elements
            .iter()
            .enumerate()
            .filter(|(_, element)| {
                element.name == property
                    && element.parent.is_some_and(|parent| {
                        xml_scan::path(elements, parent).as_slice() == properties_path
                    })
            })
            .map(|(i, _)| i)
            .collect()
    };
    let project = definitions(&["project", "properties"]);
    let in_profiles = definitions(&["project", "profiles", "profile", "properties"]);
    let definition = match (project.as_slice(), in_profiles.first()) {
        ([], _) => {
            return Err(format!(
                "{uses}, which this pom.xml does not define (it comes from a parent POM or the \
                 command line); raise it there or define it in <properties>"
            ));
        }
        (_, Some(&profile)) => {
            return Err(format!(
                "{uses}, which a profile also sets (line {}); edit it by hand",
                xml_scan::line_of(content, elements[profile].start)
            ));
        }
        ([only], None) => *only,
        (_, None) => {
            return Err(format!("{uses}, which <properties> defines more than once"));
        }
    };
    let line = xml_scan::line_of(content, elements[definition].start);
    let span: Range<usize> = xml_scan::plain_text(content, &elements[definition])
        .ok_or_else(|| format!("{uses}, whose definition on line {line} contains markup"))?;
    if content[span.clone()].contains("${") {
        return Err(format!(
            "{uses}, which is itself defined from another property (line {line}); edit it by hand"
        ));
    }
    Ok(Declaration {
        span,
        location: format!(
            "<properties> <{property}> (line {line}, used by the dependency in {location})"
        ),
    })
}

/// The new version for a dependency at `current`; `None` when it is already at or above the
/// target. A Maven version is a soft requirement for exactly that version.
fn rewrite(current: &str, target: &str) -> Result<Option<String>, String> {
    if current.starts_with(['[', '(']) || current.ends_with([']', ')']) || current.contains(',') {
        return Err(
            "it is a version range, resolved at build time; pin a version by hand".to_owned(),
        );
    }
    let current_version =
        maven_version(current).ok_or_else(|| format!("`{current}` is not a version"))?;
    let target_version =
        maven_version(target).ok_or_else(|| format!("`{target}` is not a version"))?;
    Ok((current_version < target_version).then(|| target.to_owned()))
}

/// A version with Maven's release qualifiers (`.RELEASE`, `.Final`, `-GA`) dropped, since
/// Maven orders them as the plain release.
fn maven_version(text: &str) -> Option<Version> {
    let text = text.trim();
    let base = RELEASE_QUALIFIERS
        .iter()
        .find_map(|qualifier| {
            let split = text.len().checked_sub(qualifier.len() + 1)?;
            let (base, suffix) = text.split_at_checked(split)?;
            (suffix.starts_with(['.', '-']) && suffix[1..].eq_ignore_ascii_case(qualifier))
                .then_some(base)
        })
        .unwrap_or(text);
    Version::parse(base)
}

/// A human-readable name for the section holding the dependency at `index`.
fn section(content: &str, elements: &[Element], index: usize) -> String {
    let path = xml_scan::path(elements, index);
    let list = if path.contains(&"dependencyManagement") {
        "<dependencyManagement>"
    } else {
        "<dependencies>"
    };
    if !path.contains(&"profile") {
        return list.to_owned();
    }
    let profile = std::iter::successors(Some(index), |&i| elements[i].parent)
        .find(|&i| elements[i].local_name() == "profile")
        .and_then(|profile| {
            xml_scan::children(elements, profile).find(|&i| elements[i].local_name() == "id")
        });
    let id = profile
        .and_then(|id| xml_scan::plain_text(content, &elements[id]))
        .map_or("", |range| &content[range]);
    format!("{list} of profile `{id}`")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::patch::bump::test_support::Format;

    const FORMAT: Format = Format(bump);

    const REALISTIC: &str = r#"<?xml version="1.0" encoding="UTF-8"?>
<project xmlns="http://maven.apache.org/POM/4.0.0"
         xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance"
         xsi:schemaLocation="http://maven.apache.org/POM/4.0.0 https://maven.apache.org/xsd/maven-4.0.0.xsd">
    <modelVersion>4.0.0</modelVersion>

    <parent>
        <groupId>org.springframework.boot</groupId>
        <artifactId>spring-boot-starter-parent</artifactId>
        <version>2.6.3</version>
        <relativePath/> <!-- lookup parent from repository -->
    </parent>

    <groupId>com.acme</groupId>
    <artifactId>orders</artifactId>
    <version>1.3.0-SNAPSHOT</version>

    <properties>
        <java.version>11</java.version>
        <!-- Jackson modules are released together. -->
        <jackson.version>2.12.1</jackson.version>
        <netty.version>${netty.bom.version}</netty.version>
    </properties>

    <dependencyManagement>
        <dependencies>
            <dependency>
                <groupId>org.yaml</groupId>
                <artifactId>snakeyaml</artifactId>
                <version>1.29</version> <!-- CVE-2022-25857 -->
            </dependency>
            <dependency>
                <groupId>software.amazon.awssdk</groupId>
                <artifactId>bom</artifactId>
                <version>2.17.100</version>
                <type>pom</type>
                <scope>import</scope>
            </dependency>
        </dependencies>
    </dependencyManagement>

    <dependencies>
        <dependency>
            <groupId>org.springframework.boot</groupId>
            <artifactId>spring-boot-starter-web</artifactId>
        </dependency>
        <dependency>
            <groupId>org.yaml</groupId>
            <artifactId>snakeyaml</artifactId>
        </dependency>
        <dependency>
            <groupId>com.fasterxml.jackson.core</groupId>
            <artifactId>jackson-databind</artifactId>
            <version>${jackson.version}</version>
        </dependency>
        <dependency>
            <groupId>com.fasterxml.jackson.core</groupId>
            <artifactId>jackson-core</artifactId>
            <version>${jackson.version}</version>
        </dependency>
        <dependency>
            <groupId>org.apache.logging.log4j</groupId>
            <artifactId>log4j-core</artifactId>
            <version>2.14.1</version>
            <exclusions>
                <exclusion>
                    <groupId>org.apache.logging.log4j</groupId>
                    <artifactId>log4j-api</artifactId>
                </exclusion>
            </exclusions>
        </dependency>
        <!--
        <dependency>
            <groupId>commons-collections</groupId>
            <artifactId>commons-collections</artifactId>
            <version>3.2.1</version>
        </dependency>
        -->
        <dependency>
            <groupId>com.google.guava</groupId>
            <artifactId>guava</artifactId>
            <version>[30.0-jre,32.0)</version>
        </dependency>
        <dependency>
            <groupId>org.hibernate</groupId>
            <artifactId>hibernate-core</artifactId>
            <version>5.4.20.Final</version>
        </dependency>
        <dependency>
            <groupId>io.netty</groupId>
            <artifactId>netty-codec-http</artifactId>
            <version>${netty.version}</version>
        </dependency>
        <dependency>
            <groupId>com.acme</groupId>
            <artifactId>orders-api</artifactId>
            <version>${project.version}</version>
        </dependency>
    </dependencies>

    <profiles>
        <profile>
            <id>postgres</id>
            <dependencies>
                <dependency>
                    <groupId>org.postgresql</groupId>
                    <artifactId>postgresql</artifactId>
                    <version>42.2.18</version>
                </dependency>
            </dependencies>
        </profile>
    </profiles>

    <build>
        <plugins>
            <plugin>
                <groupId>org.apache.maven.plugins</groupId>
                <artifactId>maven-compiler-plugin</artifactId>
                <version>3.8.1</version>
                <dependencies>
                    <dependency>
                        <groupId>org.ow2.asm</groupId>
                        <artifactId>asm</artifactId>
                        <version>9.1</version>
                    </dependency>
                </dependencies>
            </plugin>
        </plugins>
    </build>
</project>
"#;

    #[test]
    fn a_version_from_a_property_is_bumped_in_properties() {
        let updated = FORMAT.assert_moves(
            REALISTIC,
            "com.fasterxml.jackson.core:jackson-databind",
            "2.12.7.1",
            ("2.12.1", "2.12.7.1"),
            (
                "<jackson.version>2.12.1</jackson.version>",
                "<jackson.version>2.12.7.1</jackson.version>",
            ),
        );
        assert!(updated.contains(
            "        <!-- Jackson modules are released together. -->\n        <jackson.version>2.12.7.1</jackson.version>\n"
        ));
    }

    #[test]
    fn a_dependency_management_entry_is_bumped_and_the_versionless_use_left_alone() {
        FORMAT.assert_moves(
            REALISTIC,
            "org.yaml:snakeyaml",
            "1.31",
            ("1.29", "1.31"),
            (
                "<version>1.29</version> <!-- CVE-2022-25857 -->",
                "<version>1.31</version> <!-- CVE-2022-25857 -->",
            ),
        );
    }

    #[test]
    fn inline_versions_are_bumped_in_dependencies_and_profiles() {
        let cases = [
            (
                "org.apache.logging.log4j:log4j-core",
                "2.17.1",
                "<artifactId>log4j-core</artifactId>\n            <version>2.14.1</version>",
                "<artifactId>log4j-core</artifactId>\n            <version>2.17.1</version>",
            ),
            (
                "org.postgresql:postgresql",
                "42.2.28",
                "<version>42.2.18</version>",
                "<version>42.2.28</version>",
            ),
        ];
        FORMAT.assert_rewrites(REALISTIC, &cases);
        FORMAT.assert_moves(
            REALISTIC,
            "org.hibernate:hibernate-core",
            "5.4.24.Final",
            ("5.4.20.Final", "5.4.24.Final"),
            (
                "<version>5.4.20.Final</version>",
                "<version>5.4.24.Final</version>",
            ),
        );
    }

    #[test]
    fn release_qualifiers_count_as_the_release() {
        let cases = [
            ("org.hibernate:hibernate-core", "5.4.20", "5.4.20.Final"),
            ("org.yaml:snakeyaml", "1.28", "1.29"),
        ];
        FORMAT.assert_satisfied(REALISTIC, &cases);
    }

    #[test]
    fn parent_plugins_exclusions_and_comments_are_not_dependencies() {
        FORMAT.assert_not_declared(
            REALISTIC,
            &[
                "org.springframework.boot:spring-boot-starter-parent",
                "org.apache.maven.plugins:maven-compiler-plugin",
                "org.ow2.asm:asm",
                "org.apache.logging.log4j:log4j-api",
                "commons-collections:commons-collections",
                "com.acme:orders",
                "org.yaml:snakeyaml-engine",
            ],
            "99.0",
        );
    }

    #[test]
    fn a_pinned_version_is_raised_and_never_widened() {
        let pom = "<project><dependencies><dependency><groupId>org.yaml</groupId>\
                   <artifactId>snakeyaml</artifactId><version>1.33</version>\
                   </dependency></dependencies></project>";
        assert_eq!(
            bump(pom, "org.yaml:snakeyaml", "2.0"),
            Ok(BumpOutcome::Bumped {
                updated: pom.replace("<version>1.33</version>", "<version>2.0</version>"),
                from: "1.33".to_owned(),
                to: "2.0".to_owned(),
                widened: false,
            })
        );
    }

    #[test]
    fn ranges_unmanaged_and_indirect_versions_are_refused() {
        assert_eq!(
            FORMAT.reason(REALISTIC, "com.google.guava:guava", "32.0.0-jre"),
            "cannot bump `com.google.guava:guava` in pom.xml: the constraint `[30.0-jre,32.0)` in \
             <dependencies> (line 79) is not bumped automatically: it is a version range, \
             resolved at build time; pin a version by hand"
        );
        let refusals = [
            (
                "org.springframework.boot:spring-boot-starter-web",
                "2.6.6",
                "managed by a parent POM",
            ),
            (
                "io.netty:netty-codec-http",
                "4.1.86.Final",
                "itself defined from another property (line 22)",
            ),
            ("com.acme:orders-api", "1.3.1", "project's own"),
            ("jackson-databind", "2.12.7", "groupId:artifactId"),
        ];
        FORMAT.assert_refused(REALISTIC, &refusals);
    }

    #[test]
    fn undefined_and_profile_overridden_properties_are_refused() {
        let inherited = "<project><dependencies><dependency><groupId>g</groupId><artifactId>a</artifactId><version>${a.version}</version></dependency></dependencies></project>";
        FORMAT.assert_refused(inherited, &[("g:a", "2.0", "does not define")]);
        let overridden = "<project>\n<properties><a.version>1.0</a.version></properties>\n<dependencies><dependency><groupId>g</groupId><artifactId>a</artifactId><version>${a.version}</version></dependency></dependencies>\n<profiles><profile><id>x</id><properties>\n<a.version>1.1</a.version></properties></profile></profiles></project>";
        FORMAT.assert_refused(
            overridden,
            &[("g:a", "2.0", "a profile also sets (line 5)")],
        );
    }

    #[test]
    fn every_declaration_of_the_artifact_moves() {
        let content = "<project>\r\n  <dependencyManagement><dependencies>\r\n    <dependency><groupId>g</groupId><artifactId>a</artifactId><version>1.0</version></dependency>\r\n  </dependencies></dependencyManagement>\r\n  <dependencies>\r\n    <dependency><groupId>g</groupId><artifactId>a</artifactId><version> 1.1 </version><scope>test</scope></dependency>\r\n  </dependencies>\r\n</project>";
        FORMAT.assert_bumps_to(
            content,
            "g:a",
            "1.2",
            ("1.0", "1.2"),
            "<project>\r\n  <dependencyManagement><dependencies>\r\n    <dependency><groupId>g</groupId><artifactId>a</artifactId><version>1.2</version></dependency>\r\n  </dependencies></dependencyManagement>\r\n  <dependencies>\r\n    <dependency><groupId>g</groupId><artifactId>a</artifactId><version> 1.2 </version><scope>test</scope></dependency>\r\n  </dependencies>\r\n</project>"
        );
    }

    #[test]
    fn malformed_xml_is_a_parse_error() {
        for content in ["<project><dependencies></project>", "<settings/>", ""] {
            FORMAT.assert_parse_error("pom.xml", content, "g:a", "1.0");
        }
    }
}
