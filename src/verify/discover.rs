//! Which commands install the project and run its tests. In order: the project's `test` in the
//! import catalog (the operator's explicit choice, `RemediationTarget::test_commands`), the
//! repository's own `.remediator.toml` (`[test] install = "...", command = "..."`), the fleet's
//! `[verify.commands.KIND]`, then the convention of the lock file beside the changed manifest
//! (`super::conventions`, one file each):
//!
//! - npm, pnpm, yarn 1: a `scripts.test` in `package.json` (not npm's placeholder that exits 1),
//!   after the lock's frozen install (`npm ci`, `pnpm install --frozen-lockfile`, `yarn install
//!   --frozen-lockfile`); install scripts run, in the sandbox, since native modules need them;
//! - uv: `uv sync --locked` then `pytest -rA` in the synced environment, when the lock
//!   resolves pytest;
//! - Poetry: `poetry install --no-interaction` (the virtualenv in the project) then `poetry run
//!   pytest -rA`, when the lock resolves pytest;
//! - Cargo: `cargo fetch --locked` then `cargo test --locked --offline --no-fail-fast`;
//! - Go: `go mod download` then `go test -v ./...`;
//! - a `requirements.txt` naming pytest: a virtualenv in `.venv`, its pip installs the
//!   requirements, then its `python -m pytest -rA`.
//!
//! Anything else says plainly that no test command is known for it. The catalog's and the
//! repository's commands run from the repository's root, the fleet's and the conventions' from
//! the project's directory; all three kinds of given commands are read by the same
//! [`CommandOverride::commands`], which the import also uses to refuse unusable ones.

use std::path::Path;

use super::conventions::{self, Project, Sandboxing, TestConvention};
use super::{CommandOverride, VerifySettings};
use crate::lockfile::{LockfileSettings, repo_file};

/// The file a repository names its own test commands in.
pub const REPOSITORY_FILE: &str = ".remediator.toml";

/// The report's `source` of commands the import catalog set for the project.
pub const CATALOG_SOURCE: &str = "import catalog";

/// One command: a program found on the worker's PATH (run under its own name) and its words.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Command {
    pub program: String,
    pub args: Vec<String>,
    /// Installs outside `/usr` the program needs to read (a release from the tool cache).
    pub read_only: Vec<std::path::PathBuf>,
}

impl Command {
    pub fn new(program: &str, args: &[&str]) -> Self {
        Command {
            program: program.to_owned(),
            args: args.iter().map(|a| (*a).to_owned()).collect(),
            read_only: Vec::new(),
        }
    }

    /// The same command run by `release` (node and the release's script) instead.
    pub fn run_by(&self, release: &crate::lockfile::package_manager::Provided) -> Command {
        let mut args = vec![release.script.to_string_lossy().into_owned()];
        args.extend(self.args.iter().cloned());
        Command {
            program: "node".to_owned(),
            args,
            read_only: vec![release.root.clone()],
        }
    }

    /// `text` split into words as a shell would (quotes and backslashes; no expansion).
    pub fn parse(text: &str) -> Result<Command, String> {
        let mut words = split_words(text)?.into_iter();
        let program = words
            .next()
            .ok_or_else(|| "the command is empty".to_owned())?;
        Ok(Command {
            program,
            args: words.collect(),
            read_only: Vec::new(),
        })
    }
}

impl std::fmt::Display for Command {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let quote = |word: &str| {
            let plain = !word.is_empty()
                && word
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || "-_=./:@+,".contains(c));
            match plain {
                true => word.to_owned(),
                false => format!("'{}'", word.replace('\'', r"'\''")),
            }
        };
        let words: Vec<String> = std::iter::once(self.program.as_str())
            .chain(self.args.iter().map(String::as_str))
            .map(quote)
            .collect();
        f.write_str(&words.join(" "))
    }
}

/// How the tests of a project run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TestPlan {
    /// The convention of the project's kind: the environment of its runs.
    pub convention: &'static TestConvention,
    /// Where the commands run, relative to the tree's root.
    pub dir: String,
    /// Run in order before the tests (empty: nothing to install first).
    pub install: Vec<Command>,
    pub test: Command,
    /// Where the commands come from, for the report: `package.json scripts.test`,
    /// `.remediator.toml`, `verify.commands.npm`, `import catalog`.
    pub source: String,
    /// What the runs need of the worker's (a toolchain), as the convention finds it.
    pub sandboxing: Sandboxing,
}

impl TestPlan {
    /// A plan of `convention`'s kind; [`discover`] adds what its runs need of the worker's.
    pub fn new(
        convention: &'static TestConvention,
        dir: &str,
        install: Vec<Command>,
        test: Command,
        source: String,
    ) -> Self {
        TestPlan {
            convention,
            dir: dir.to_owned(),
            install,
            test,
            source,
            sandboxing: Sandboxing::default(),
        }
    }

    /// The install commands as run, one after the other (`None`: nothing to install).
    pub fn install_text(&self) -> Option<String> {
        let commands: Vec<String> = self.install.iter().map(ToString::to_string).collect();
        (!commands.is_empty()).then(|| commands.join(" && "))
    }
}

/// What the discovery found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Discovery {
    Found(TestPlan),
    /// No test command: why, in words a user reads as is.
    NotFound(String),
}

/// Finds how to test the project whose manifest or lock in `dir` the fix changed, reading the
/// default branch's tree at `root` (the repository's own settings, not the patch's). `catalog`
/// is the project's `test` in the import catalog, which wins over everything else.
pub fn discover(
    root: &Path,
    dir: &str,
    catalog: Option<&CommandOverride>,
    verify: &VerifySettings,
    lockfiles: &LockfileSettings,
) -> Discovery {
    let project = Project {
        root,
        dir,
        lockfiles,
    };
    match find(&project, catalog, verify) {
        Discovery::Found(plan) => Discovery::Found(TestPlan {
            sandboxing: (plan.convention.sandboxing)(lockfiles),
            ..plan
        }),
        none => none,
    }
}

/// [`discover`] without what the runs need of the worker's.
fn find(
    project: &Project<'_>,
    catalog: Option<&CommandOverride>,
    verify: &VerifySettings,
) -> Discovery {
    let (root, dir) = (project.root, project.dir);
    let convention = conventions::of(root, dir);
    if let Some(given) = catalog {
        let convention = convention.unwrap_or(&conventions::OTHER);
        return from_override(convention, "", given, CATALOG_SOURCE.to_owned());
    }
    match repository_commands(root) {
        Ok(Some(own)) => {
            let convention = convention.unwrap_or(&conventions::OTHER);
            return from_override(convention, "", &own, REPOSITORY_FILE.to_owned());
        }
        Ok(None) => {}
        Err(why) => return Discovery::NotFound(why),
    }
    let Some(convention) = convention else {
        return Discovery::NotFound(format!(
            "no test command found: none of {} in {} (set [test] in {REPOSITORY_FILE})",
            conventions::known_lock_files().join(", "),
            shown_dir(dir)
        ));
    };
    if let Some(fleet) = verify.commands.get(convention.name) {
        let source = format!("verify.commands.{}", convention.name);
        return from_override(convention, dir, fleet, source);
    }
    (convention.discover)(project)
}

fn from_override(
    convention: &'static TestConvention,
    dir: &str,
    given: &CommandOverride,
    source: String,
) -> Discovery {
    match given.commands() {
        Ok((install, test)) => {
            Discovery::Found(TestPlan::new(convention, dir, install, test, source))
        }
        Err(unusable) => Discovery::NotFound(format!(
            "the test command of {source} is not usable: {}",
            unusable.why
        )),
    }
}

/// The field of a [`CommandOverride`] that cannot run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OverrideField {
    /// `install`.
    Install,
    /// `command`, the test command.
    Test,
}

impl OverrideField {
    /// The field's name as configuration, `.remediator.toml` and the catalog spell it.
    pub fn as_str(self) -> &'static str {
        match self {
            OverrideField::Install => "install",
            OverrideField::Test => "command",
        }
    }
}

/// Why given commands cannot run: which field, and why (an empty command, an open quote).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UnusableOverride {
    pub field: OverrideField,
    pub why: String,
}

impl CommandOverride {
    /// The install commands (none when `install` is blank) and the test command, split into
    /// words as a shell would.
    pub fn commands(&self) -> Result<(Vec<Command>, Command), UnusableOverride> {
        let unusable = |field| move |why| UnusableOverride { field, why };
        let install = match self.install.trim() {
            "" => Vec::new(),
            text => vec![Command::parse(text).map_err(unusable(OverrideField::Install))?],
        };
        let test = Command::parse(&self.command).map_err(unusable(OverrideField::Test))?;
        Ok((install, test))
    }
}

/// The `[test]` table of the repository's `.remediator.toml`, if it has one.
fn repository_commands(root: &Path) -> Result<Option<CommandOverride>, String> {
    let Ok(text) = repo_file::read(root, REPOSITORY_FILE) else {
        return Ok(None);
    };
    let doc: toml_edit::DocumentMut = text
        .parse()
        .map_err(|e| format!("{REPOSITORY_FILE} is not valid TOML: {e}"))?;
    let Some(test) = doc.get("test") else {
        return Ok(None);
    };
    let field = |key: &str| {
        test.get(key)
            .and_then(|v| v.as_str())
            .map(str::to_owned)
            .unwrap_or_default()
    };
    let command = field("command");
    if command.trim().is_empty() {
        return Err(format!(
            "{REPOSITORY_FILE} has a [test] table without a command"
        ));
    }
    Ok(Some(CommandOverride {
        install: field("install"),
        command,
    }))
}

fn shown_dir(dir: &str) -> &str {
    match dir {
        "" => "the repository's root",
        dir => dir,
    }
}

/// Words as a POSIX shell splits them, without expansion: single quotes keep everything,
/// double quotes keep all but `\"` and `\\`, a backslash outside quotes keeps the next
/// character.
fn split_words(text: &str) -> Result<Vec<String>, String> {
    let mut words = Vec::new();
    let mut word = String::new();
    let mut in_word = false;
    let mut chars = text.chars();
    while let Some(c) = chars.next() {
        match c {
            c if c.is_whitespace() => {
                if in_word {
                    words.push(std::mem::take(&mut word));
                    in_word = false;
                }
            }
            '\'' => {
                in_word = true;
                loop {
                    match chars.next() {
                        Some('\'') => break,
                        Some(c) => word.push(c),
                        None => return Err("a single quote is not closed".to_owned()),
                    }
                }
            }
            '"' => {
                in_word = true;
                loop {
                    match chars.next() {
                        Some('"') => break,
                        Some('\\') => match chars.next() {
                            Some(c @ ('"' | '\\' | '$' | '`')) => word.push(c),
                            Some(c) => {
                                word.push('\\');
                                word.push(c);
                            }
                            None => return Err("a double quote is not closed".to_owned()),
                        },
                        Some(c) => word.push(c),
                        None => return Err("a double quote is not closed".to_owned()),
                    }
                }
            }
            '\\' => {
                in_word = true;
                match chars.next() {
                    Some(c) => word.push(c),
                    None => return Err("the command ends with a backslash".to_owned()),
                }
            }
            c => {
                in_word = true;
                word.push(c);
            }
        }
    }
    if in_word {
        words.push(word);
    }
    Ok(words)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn commands_split_as_a_shell_splits_them() {
        let command = Command::parse(r#"sh -c 'npm test && echo "ok"' a\ b "c \"d\"""#).unwrap();
        assert_eq!(command.program, "sh");
        assert_eq!(
            command.args,
            ["-c", "npm test && echo \"ok\"", "a b", "c \"d\""]
        );
        assert_eq!(
            command.to_string(),
            r#"sh -c 'npm test && echo "ok"' 'a b' 'c "d"'"#
        );
        assert!(Command::parse("  ").is_err());
        assert!(Command::parse("echo 'open").is_err());
    }

    fn lockfiles() -> LockfileSettings {
        let settings = crate::config::Settings::load_with_env(None, std::iter::empty())
            .expect("the default settings load");
        settings.lockfiles
    }

    fn tree(files: &[(&str, &str)]) -> tempfile::TempDir {
        let dir = tempfile::tempdir().unwrap();
        for (path, text) in files {
            let path = dir.path().join(path);
            std::fs::create_dir_all(path.parent().unwrap()).unwrap();
            std::fs::write(path, text).unwrap();
        }
        dir
    }

    #[test]
    fn the_convention_the_repository_and_the_fleet_each_find_the_commands() {
        let (verify, lockfiles) = (VerifySettings::default(), lockfiles());
        let npm = tree(&[
            (
                "web/package.json",
                r#"{"scripts": {"test": "node --test"}}"#,
            ),
            ("web/package-lock.json", "{}"),
        ]);
        let Discovery::Found(plan) = discover(npm.path(), "web", None, &verify, &lockfiles) else {
            panic!("npm scripts.test not found");
        };
        assert_eq!(plan.convention, &conventions::js::NPM);
        assert_eq!(plan.dir, "web");
        assert_eq!(plan.install_text().unwrap(), "npm ci --no-audit --no-fund");
        assert_eq!(plan.test.to_string(), "npm test");
        assert_eq!(plan.source, "web/package.json scripts.test");

        let placeholder = tree(&[
            (
                "package.json",
                r#"{"scripts": {"test": "echo \"Error: no test specified\" && exit 1"}}"#,
            ),
            ("package-lock.json", "{}"),
        ]);
        assert_eq!(
            discover(placeholder.path(), "", None, &verify, &lockfiles),
            Discovery::NotFound(
                "no tests: package.json has npm's placeholder test script".to_owned()
            )
        );

        let uv = tree(&[(
            "uv.lock",
            "[[package]]\nname = \"pytest\"\nversion = \"8.3.0\"\n",
        )]);
        let Discovery::Found(plan) = discover(uv.path(), "", None, &verify, &lockfiles) else {
            panic!("uv with pytest not found");
        };
        assert_eq!(plan.test.to_string(), "uv run --no-sync pytest -rA");
        let uv_without = tree(&[("uv.lock", "[[package]]\nname = \"requests\"\n")]);
        assert!(matches!(
            discover(uv_without.path(), "", None, &verify, &lockfiles),
            Discovery::NotFound(why) if why.contains("does not resolve pytest")
        ));

        let ruby = tree(&[("Gemfile.lock", "")]);
        assert_eq!(
            discover(ruby.path(), "", None, &verify, &lockfiles),
            Discovery::NotFound(
                "no test command found: none of package-lock.json, npm-shrinkwrap.json, \
                 pnpm-lock.yaml, yarn.lock, uv.lock, poetry.lock, Cargo.lock, go.mod, \
                 requirements.txt in the repository's root (set [test] in .remediator.toml)"
                    .to_owned()
            )
        );
        let poetry = tree(&[("poetry.lock", "")]);
        assert!(matches!(
            discover(poetry.path(), "", None, &verify, &lockfiles),
            Discovery::NotFound(why) if why.starts_with("no tests: poetry.lock does not resolve pytest")
        ));
        // The fleet's commands for the kind, then the repository's own, win.
        let mut fleet = VerifySettings::default();
        fleet.commands.insert(
            "poetry".to_owned(),
            CommandOverride {
                install: "poetry install".to_owned(),
                command: "poetry run pytest -rA".to_owned(),
            },
        );
        let Discovery::Found(plan) = discover(poetry.path(), "", None, &fleet, &lockfiles) else {
            panic!("the fleet's poetry command was not used");
        };
        assert_eq!(plan.source, "verify.commands.poetry");
        assert_eq!(plan.test.to_string(), "poetry run pytest -rA");
        let own = tree(&[
            ("poetry.lock", ""),
            (
                REPOSITORY_FILE,
                "[test]\ninstall = \"\"\ncommand = \"sh -c 'make check'\"\n",
            ),
        ]);
        let Discovery::Found(plan) = discover(own.path(), "", None, &fleet, &lockfiles) else {
            panic!("the repository's command was not used");
        };
        assert_eq!(plan.source, REPOSITORY_FILE);
        assert_eq!(plan.install_text(), None);
        assert_eq!(plan.test.args, ["-c", "make check"]);
        let broken = tree(&[(REPOSITORY_FILE, "[test]\ninstall = \"npm ci\"\n")]);
        assert!(matches!(
            discover(broken.path(), "", None, &verify, &lockfiles),
            Discovery::NotFound(why) if why.contains("without a command")
        ));
    }

    #[test]
    fn the_catalog_wins_over_the_repository_the_fleet_and_the_convention() {
        let lockfiles = lockfiles();
        let mut fleet = VerifySettings::default();
        fleet.commands.insert(
            "npm".to_owned(),
            CommandOverride {
                install: "npm ci".to_owned(),
                command: "npm run fleet-tests".to_owned(),
            },
        );
        let project = tree(&[
            (
                "web/package.json",
                r#"{"scripts": {"test": "node --test"}}"#,
            ),
            ("web/package-lock.json", "{}"),
            (
                REPOSITORY_FILE,
                "[test]\ninstall = \"npm install\"\ncommand = \"npm run own-tests\"\n",
            ),
        ]);
        let catalog = CommandOverride {
            install: "npm ci --ignore-scripts".to_owned(),
            command: "node --test 'test/a b.test.js'".to_owned(),
        };
        let Discovery::Found(plan) =
            discover(project.path(), "web", Some(&catalog), &fleet, &lockfiles)
        else {
            panic!("the catalog's command was not used");
        };
        assert_eq!(plan.source, CATALOG_SOURCE);
        assert_eq!(plan.install_text().unwrap(), "npm ci --ignore-scripts");
        assert_eq!(plan.test.args, ["--test", "test/a b.test.js"]);
        // The project's kind still gives the runs their environment; the commands run from
        // the repository's root, as a repository's own do.
        assert_eq!(plan.convention, &conventions::js::NPM);
        assert_eq!(plan.dir, "");
        // Without it, the repository's file decides again.
        let Discovery::Found(plan) = discover(project.path(), "web", None, &fleet, &lockfiles)
        else {
            panic!("the repository's command was not used");
        };
        assert_eq!(plan.source, REPOSITORY_FILE);
        // An unusable catalog command (the import refuses it; an old row might hold one) is
        // said plainly, not silently replaced by a command the operator did not choose.
        let open = CommandOverride {
            install: String::new(),
            command: "node --test 'open".to_owned(),
        };
        assert_eq!(
            discover(project.path(), "web", Some(&open), &fleet, &lockfiles),
            Discovery::NotFound(
                "the test command of import catalog is not usable: a single quote is not closed"
                    .to_owned()
            )
        );
        let unusable = CommandOverride {
            install: "npm ci \"".to_owned(),
            command: "npm test".to_owned(),
        };
        assert_eq!(
            unusable.commands().unwrap_err().field,
            OverrideField::Install
        );
    }

    #[test]
    fn poetry_cargo_go_and_requirements_files_have_conventions() {
        let (verify, lockfiles) = (VerifySettings::default(), lockfiles());
        let found = |files: &[(&str, &str)], dir: &str| {
            let tree = tree(files);
            match discover(tree.path(), dir, None, &verify, &lockfiles) {
                Discovery::Found(plan) => plan,
                Discovery::NotFound(why) => panic!("{files:?}: {why}"),
            }
        };
        let poetry = found(&[("poetry.lock", "[[package]]\nname = \"pytest\"\n")], "");
        assert_eq!(
            poetry.install_text().unwrap(),
            "poetry install --no-interaction"
        );
        assert_eq!(poetry.test.to_string(), "poetry run pytest -rA");
        assert_eq!(poetry.source, "poetry.lock resolves pytest");
        let cargo = found(&[("core/Cargo.lock", "")], "core");
        assert_eq!(cargo.install_text().unwrap(), "cargo fetch --locked");
        assert_eq!(
            cargo.test.to_string(),
            "cargo test --locked --offline --no-fail-fast"
        );
        assert_eq!(
            cargo.convention.kept,
            [("CARGO_HOME", ".remediator/cargo-home")]
        );
        let go = found(&[("go.mod", "module example.com/m\n")], "");
        assert_eq!(go.install_text().unwrap(), "go mod download");
        assert_eq!(go.test.to_string(), "go test -v ./...");
        let pip = found(
            &[("requirements.txt", "requests==2.32.0\npytest>=8 # tests\n")],
            "",
        );
        assert_eq!(
            pip.install_text().unwrap(),
            "python3 -m venv .venv && sh -c 'exec .venv/bin/python -m pip \"$@\"' pip install \
             --no-input -r requirements.txt"
        );
        assert_eq!(
            pip.test.to_string(),
            "sh -c 'exec .venv/bin/python -m pytest \"$@\"' pytest -rA"
        );
        let without = tree(&[("requirements.txt", "requests==2.32.0\npytest-cov\n")]);
        assert!(matches!(
            discover(without.path(), "", None, &verify, &lockfiles),
            Discovery::NotFound(why) if why.contains("does not name pytest")
        ));
    }
}
