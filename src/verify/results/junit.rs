//! JUnit XML in a run's output: what `node --test --test-reporter=junit` prints, and what
//! `pytest --junitxml=/dev/stdout` writes after its progress line. Each `<testcase>` is one
//! test; a `<failure>` or `<error>` in it makes it a failure (its text, or its `message` when
//! it has none, is the decisive output), a `<skipped>` leaves it out.
//!
//! A test is named `classname.name` as JUnit tools do (pytest's `tests.test_a.test_bad`),
//! or by its enclosing `<testsuite>` names and its own where there is no class (node's
//! reporter writes the placeholder `test` for every case and nests subtests in suites:
//! `group > inner`). The document is read from its first `<testsuites>` or `<testsuite>` to
//! where that element ends: a runner's own lines around it are not XML. Only what the reports
//! need of XML is read: tags, quoted attributes, text, CDATA, comments and the five entities
//! and character references; a report cut short keeps the tests it completed.

use super::{TestCase, excerpt};

/// The `classname` node's reporter gives every test: no class at all.
const NODE_PLACEHOLDER_CLASS: &str = "test";

/// The tests of the first JUnit document in `output`; `None` when it has none.
pub(super) fn parse(output: &str) -> Option<Vec<TestCase>> {
    let start = [output.find("<testsuites"), output.find("<testsuite")]
        .into_iter()
        .flatten()
        .min()?;
    let mut reader = Reader::default();
    for token in Tokens::new(&output[start..]) {
        if reader.read(token) {
            break;
        }
    }
    (!reader.cases.is_empty()).then_some(reader.cases)
}

/// What the document has said so far.
#[derive(Default)]
struct Reader {
    cases: Vec<TestCase>,
    /// Open `<testsuites>` and `<testsuite>` elements, outermost first (`None`: unnamed).
    suites: Vec<Option<String>>,
    /// The `<testcase>` being read.
    case: Option<OpenCase>,
}

struct OpenCase {
    name: String,
    failed: bool,
    skipped: bool,
    /// Text of its `<failure>` or `<error>`, once one is open or was read.
    failure: Option<String>,
    in_failure: bool,
}

impl Reader {
    /// Takes one token; true once the document's outermost element has ended.
    fn read(&mut self, token: Token<'_>) -> bool {
        match token {
            Token::Start {
                name,
                attributes,
                closed,
            } => self.start(name, &attributes, closed),
            Token::End(name) => return self.end(name),
            Token::Text(text) => {
                if let Some(case) = self.case.as_mut().filter(|c| c.in_failure) {
                    case.failure.get_or_insert_with(String::new).push_str(&text);
                }
            }
        }
        false
    }

    fn start(&mut self, name: &str, attributes: &[(&str, String)], closed: bool) {
        let attribute = |wanted: &str| {
            attributes
                .iter()
                .find(|(key, _)| *key == wanted)
                .map(|(_, value)| value.clone())
        };
        match name {
            "testsuites" | "testsuite" if !closed => {
                let label = (name == "testsuite").then(|| attribute("name")).flatten();
                self.suites.push(label.filter(|n| !n.is_empty()));
            }
            "testcase" => {
                let case = OpenCase {
                    name: self.case_name(attribute("classname"), attribute("name")),
                    failed: false,
                    skipped: false,
                    failure: None,
                    in_failure: false,
                };
                self.case = Some(case);
                if closed {
                    self.finish_case();
                }
            }
            "failure" | "error" => {
                if let Some(case) = self.case.as_mut() {
                    case.failed = true;
                    if let Some(message) = attribute("message") {
                        case.failure.get_or_insert(message);
                    }
                    // The element's text, when it has some, says more than its message.
                    case.in_failure = !closed;
                }
            }
            "skipped" => {
                if let Some(case) = self.case.as_mut() {
                    case.skipped = true;
                }
            }
            _ => {}
        }
    }

    fn end(&mut self, name: &str) -> bool {
        match name {
            "testsuites" | "testsuite" => {
                self.suites.pop();
                return self.suites.is_empty();
            }
            "testcase" => self.finish_case(),
            "failure" | "error" => {
                if let Some(case) = self.case.as_mut() {
                    case.in_failure = false;
                }
            }
            _ => {}
        }
        false
    }

    fn case_name(&self, class: Option<String>, name: Option<String>) -> String {
        let name = name.unwrap_or_default();
        match class.filter(|c| !c.is_empty() && c != NODE_PLACEHOLDER_CLASS) {
            Some(class) => format!("{class}.{name}"),
            None => {
                let mut parts: Vec<&str> =
                    self.suites.iter().flatten().map(String::as_str).collect();
                parts.push(&name);
                parts.join(" > ")
            }
        }
    }

    fn finish_case(&mut self) {
        let Some(case) = self.case.take() else { return };
        if case.skipped && !case.failed {
            return;
        }
        let output = match case.failed {
            true => excerpt(case.failure.as_deref().unwrap_or("").lines()),
            false => String::new(),
        };
        let name = case.name;
        match self.cases.iter_mut().find(|seen| seen.name == name) {
            // A name seen twice (a retried test) failed if it failed once.
            Some(seen) => {
                if seen.passed && case.failed {
                    seen.passed = false;
                    seen.output = output;
                }
            }
            None => self.cases.push(TestCase {
                name,
                passed: !case.failed,
                output,
            }),
        }
    }
}

/// A piece of the document.
#[derive(Debug, PartialEq, Eq)]
enum Token<'a> {
    Start {
        name: &'a str,
        attributes: Vec<(&'a str, String)>,
        /// `<name/>`: no end tag follows.
        closed: bool,
    },
    End(&'a str),
    /// Text or a CDATA section, entities resolved.
    Text(String),
}

/// The tokens of `text`, until it ends or stops being XML.
struct Tokens<'a> {
    text: &'a str,
    pos: usize,
}

impl<'a> Tokens<'a> {
    fn new(text: &'a str) -> Self {
        Tokens { text, pos: 0 }
    }

    /// The offset of `marker` at or after `from`, and the offset after it.
    fn through(&self, from: usize, marker: &str) -> Option<(usize, usize)> {
        let at = from + self.text.get(from..)?.find(marker)?;
        Some((at, at + marker.len()))
    }
}

impl<'a> Iterator for Tokens<'a> {
    type Item = Token<'a>;

    fn next(&mut self) -> Option<Token<'a>> {
        loop {
            let rest = self.text.get(self.pos..).filter(|r| !r.is_empty())?;
            if !rest.starts_with('<') {
                let end = rest.find('<').map_or(self.text.len(), |at| self.pos + at);
                let text = unescape(&self.text[self.pos..end]);
                self.pos = end;
                return Some(Token::Text(text));
            }
            if rest.starts_with("<!--") {
                self.pos = self.through(self.pos, "-->")?.1;
            } else if rest.starts_with("<![CDATA[") {
                let (at, after) = self.through(self.pos, "]]>")?;
                let text = self.text[self.pos + "<![CDATA[".len()..at].to_owned();
                self.pos = after;
                return Some(Token::Text(text));
            } else if rest.starts_with("<?") || rest.starts_with("<!") {
                self.pos = self.through(self.pos, ">")?.1;
            } else if let Some(name) = rest.strip_prefix("</") {
                let (at, after) = self.through(self.pos, ">")?;
                let name = name[..at - self.pos - 2].trim();
                self.pos = after;
                return Some(Token::End(name));
            } else {
                let (tag, after) = start_tag(&rest[1..])?;
                self.pos += 1 + after;
                return Some(tag);
            }
        }
    }
}

/// A start tag's name, attributes and whether it closes itself, read after its `<`, and
/// the offset after its `>`.
fn start_tag(text: &str) -> Option<(Token<'_>, usize)> {
    let name_end = text.find(|c: char| c.is_whitespace() || c == '>' || c == '/')?;
    let name = &text[..name_end];
    let mut attributes = Vec::new();
    let mut pos = name_end;
    loop {
        let rest = &text[pos..];
        let trimmed = rest.trim_start();
        pos += rest.len() - trimmed.len();
        if let Some(after) = trimmed.strip_prefix("/>") {
            let end = text.len() - after.len();
            return Some((start(name, attributes, true), end));
        }
        if trimmed.starts_with('>') {
            return Some((start(name, attributes, false), pos + 1));
        }
        let (key, value) = trimmed.split_once('=')?;
        let value = value.trim_start();
        let quote = value.chars().next().filter(|q| *q == '"' || *q == '\'')?;
        let close = value[1..].find(quote)?;
        attributes.push((key.trim(), unescape(&value[1..1 + close])));
        let consumed = trimmed.len() - value.len() + close + 2;
        pos += consumed;
    }
}

fn start<'a>(name: &'a str, attributes: Vec<(&'a str, String)>, closed: bool) -> Token<'a> {
    Token::Start {
        name,
        attributes,
        closed,
    }
}

/// `&lt;` `&gt;` `&amp;` `&quot;` `&apos;` and `&#10;` / `&#xA;` resolved; anything else as
/// written.
fn unescape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(at) = rest.find('&') {
        out.push_str(&rest[..at]);
        rest = &rest[at..];
        let entity = rest
            .find(';')
            .filter(|end| *end <= 10)
            .and_then(|end| Some((resolve(&rest[1..end])?, end)));
        match entity {
            Some((c, end)) => {
                out.push(c);
                rest = &rest[end + 1..];
            }
            None => {
                out.push('&');
                rest = &rest[1..];
            }
        }
    }
    out.push_str(rest);
    out
}

fn resolve(entity: &str) -> Option<char> {
    match entity {
        "lt" => Some('<'),
        "gt" => Some('>'),
        "amp" => Some('&'),
        "quot" => Some('"'),
        "apos" => Some('\''),
        _ => {
            let number = entity.strip_prefix('#')?;
            let code = match number.strip_prefix(['x', 'X']) {
                Some(hex) => u32::from_str_radix(hex, 16).ok()?,
                None => number.parse().ok()?,
            };
            char::from_u32(code)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::parse as parse_output;
    use super::*;

    /// What `node --test --test-reporter=junit` printed for a file with a passing, a failing,
    /// a skipped test and a suite of two subtests.
    const NODE: &str = include_str!("testdata/node-junit.xml");
    /// What `pytest -q --junitxml=/dev/stdout` printed: its progress line, the report on the
    /// same line, then its own failure sections and summary.
    const PYTEST: &str = include_str!("testdata/pytest-junit.txt");

    fn outcomes(cases: &[TestCase]) -> Vec<(&str, bool)> {
        cases.iter().map(|c| (c.name.as_str(), c.passed)).collect()
    }

    #[test]
    fn node_junit_names_tests_and_suites_and_quotes_failures() {
        let cases = parse_output(NODE);
        assert_eq!(
            outcomes(&cases),
            [
                ("adds <one> & &quot;two&quot;", true),
                ("fails", false),
                ("group > inner ok", true),
                ("group > inner bad", false),
            ]
        );
        assert!(cases[1].output.contains("2 !== 3"), "{}", cases[1].output);
        assert!(cases[3].output.contains("Error [ERR_TEST_FAILURE]: boom"));
        assert!(cases[0].output.is_empty());
    }

    #[test]
    fn pytest_junit_is_read_alone_and_names_tests_by_class() {
        let cases = parse_output(PYTEST);
        // Not also `tests/test_a.py::test_bad` from the summary lines that follow.
        assert_eq!(
            outcomes(&cases),
            [
                ("tests.test_a.test_ok", true),
                ("tests.test_a.test_bad", false),
                ("tests.test_a.TestK.test_m", false),
            ]
        );
        assert!(
            cases[1]
                .output
                .contains("E   AssertionError: one is not <two>")
        );
        assert!(cases[2].output.contains("E   ValueError: x"));
    }

    #[test]
    fn errors_cdata_messages_retries_and_a_cut_report() {
        let xml = r#"<testsuite name="s"><testcase classname="a.B" name="t1"><error message="setup failed"/></testcase>
<testcase classname="a.B" name="t2"><failure><![CDATA[x < y & z]]></failure></testcase>
<testcase classname="a.B" name="t3"/><testcase classname="a.B" name="t3"><failure message="flaky"/></testcase>
<testcase classname="a.B" name="t4"><system-out>&#x3C;ok&#62;</system-out></testcase>
<testcase classname="a.B" name="t5"><failure message="cut"#;
        let cases = parse(xml).expect("a report");
        assert_eq!(
            outcomes(&cases),
            [
                ("a.B.t1", false),
                ("a.B.t2", false),
                ("a.B.t3", false),
                ("a.B.t4", true)
            ]
        );
        assert_eq!(cases[0].output, "setup failed");
        assert_eq!(cases[1].output, "x < y & z");
        assert_eq!(cases[2].output, "flaky");
    }

    #[test]
    fn output_without_a_report_is_left_to_the_other_readers() {
        assert_eq!(parse("ok 1 - adds\n# <b>not xml</b>\n"), None);
        assert_eq!(parse("<testsuites></testsuites>"), None);
        assert_eq!(
            outcomes(&parse_output("ok 1 - adds\nnot ok 2 - breaks\n")),
            [("adds", true), ("breaks", false)]
        );
    }

    #[test]
    fn entities_and_character_references() {
        assert_eq!(
            unescape("a &lt;b&gt; &amp;&quot;&apos; &#10;&#xA;&bogus; &"),
            "a <b> &\"' \n\n&bogus; &"
        );
    }
}
