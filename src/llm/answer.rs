//! Strict parsing of the model's answer and its conversion into whole-file changes.
//!
//! The answer is data: anything outside the documented shape is refused, and the error text is
//! written to be sent back to the model in a repair round, so it says exactly what to fix.

use serde::Deserialize;

use crate::patch::path::check_repo_path;

/// The model's answer once it passed [`parse_answer`].
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct ModelAnswer {
    pub edits: Vec<ModelEdit>,
    pub confidence: f64,
    pub explanation: String,
}

/// One requested change to one file.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
#[serde(untagged)]
pub enum ModelEdit {
    /// Replace the single occurrence of `search` with `replace`.
    Replace {
        path: String,
        search: String,
        replace: String,
    },
    /// Write the whole file (new or existing).
    Write { path: String, content: String },
}

impl ModelEdit {
    pub fn path(&self) -> &str {
        match self {
            ModelEdit::Replace { path, .. } | ModelEdit::Write { path, .. } => path,
        }
    }
}

// Both structs deny unknown fields, and serde refuses duplicate keys for derived structs, so a
// field cannot be smuggled in twice with two meanings.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawAnswer {
    edits: Vec<RawEdit>,
    confidence: f64,
    explanation: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawEdit {
    path: String,
    search: Option<String>,
    replace: Option<String>,
    content: Option<String>,
}

/// Why an answer with prose around its JSON is refused.
const NOT_ONE_OBJECT: &str = "the answer must be a single JSON object starting with '{' and nothing else (no prose before or after it)";
/// The answer's documented shape, quoted back to the model when its JSON does not fit it.
const ANSWER_SHAPE: &str = r#"{"edits": [...], "confidence": number, "explanation": string}, where each edit is {"path", "search", "replace"} or {"path", "content"}"#;

/// Parses the model's raw answer: one JSON object, optionally inside a single ```json fence.
pub fn parse_answer(raw: &str) -> Result<ModelAnswer, String> {
    let json = strip_fence(raw)?;
    if !json.starts_with('{') {
        return Err(NOT_ONE_OBJECT.to_owned());
    }
    let parsed: RawAnswer = serde_json::from_str(json).map_err(|e| {
        format!("the answer is not a valid answer object: {e}. Expected exactly {ANSWER_SHAPE}")
    })?;

    if !parsed.confidence.is_finite() || !(0.0..=1.0).contains(&parsed.confidence) {
        return Err(format!(
            "\"confidence\" is {}; it must be a number from 0 to 1",
            parsed.confidence
        ));
    }
    if parsed.edits.is_empty() {
        return Err("\"edits\" is empty; it must contain at least one edit".to_owned());
    }
    let edits = parsed
        .edits
        .into_iter()
        .enumerate()
        .map(|(index, raw)| into_edit(index, raw))
        .collect::<Result<Vec<_>, _>>()?;
    Ok(ModelAnswer {
        edits,
        confidence: parsed.confidence,
        explanation: parsed.explanation,
    })
}

fn strip_fence(raw: &str) -> Result<&str, String> {
    let trimmed = raw.trim();
    if trimmed.is_empty() {
        return Err("the answer is empty; reply with the JSON object".to_owned());
    }
    let Some(rest) = trimmed.strip_prefix("```") else {
        return Ok(trimmed);
    };
    let rest = rest.strip_prefix("json").unwrap_or(rest);
    let Some(rest) = rest
        .strip_prefix('\n')
        .or_else(|| rest.strip_prefix("\r\n"))
    else {
        return Err("a ``` fence must be followed by a line break before the JSON".to_owned());
    };
    let Some(body) = rest.strip_suffix("```") else {
        return Err(
            "the ```json fence is not closed by ``` at the very end of the answer".to_owned(),
        );
    };
    if body.contains("```") {
        return Err("the answer contains more than one ``` fence; send one JSON object".to_owned());
    }
    Ok(body.trim())
}

fn into_edit(index: usize, raw: RawEdit) -> Result<ModelEdit, String> {
    check_path(index, &raw.path)?;
    let path = raw.path;
    match (raw.search, raw.replace, raw.content) {
        (Some(search), Some(replace), None) => {
            if search.is_empty() {
                return Err(format!(
                    "edits[{index}] ({path}): \"search\" is empty; it must be existing text of \
                     the file that occurs exactly once"
                ));
            }
            Ok(ModelEdit::Replace {
                path,
                search,
                replace,
            })
        }
        (None, None, Some(content)) => Ok(ModelEdit::Write { path, content }),
        (search, replace, content) => {
            let present: Vec<&str> = [
                ("search", search.is_some()),
                ("replace", replace.is_some()),
                ("content", content.is_some()),
            ]
            .into_iter()
            .filter_map(|(name, set)| set.then_some(name))
            .collect();
            let present = if present.is_empty() {
                "only \"path\"".to_owned()
            } else {
                format!("\"path\" and {}", present.join(", "))
            };
            Err(format!(
                "edits[{index}] ({path}) has {present}; an edit must have exactly \
                 {{\"path\", \"search\", \"replace\"}} or exactly {{\"path\", \"content\"}} \
                 (non-null strings)"
            ))
        }
    }
}

/// Refuses paths that could name something outside the repository, so `materialize` never asks
/// its reader for such a file. These are the patch policy's own path rules (so an answer is
/// judged the same way whichever check sees it first, and the message names the rule); the
/// policy applies the rest (deny globs, symlinks, caps) once the edits are built.
fn check_path(index: usize, path: &str) -> Result<(), String> {
    check_repo_path(path).map_err(|(rule, detail)| {
        format!(
            "edits[{index}]: path {} is refused by the patch policy ({}): {detail}; paths must \
             be relative to the repository root, like \"Cargo.toml\" or \"web/package.json\"",
            serde_json::to_string(path).unwrap_or_default(),
            rule.name()
        )
    })
}

/// Applies the edits to the files' current text and returns one `(path, original, updated)` per
/// touched path, in order of first appearance. `original` is `None` for a new file.
pub fn materialize(
    edits: &[ModelEdit],
    read_original: impl Fn(&str) -> Option<String>,
) -> Result<Vec<(String, Option<String>, String)>, String> {
    // (path, original, current text; None until the file exists)
    let mut files: Vec<(String, Option<String>, Option<String>)> = Vec::new();
    for (index, edit) in edits.iter().enumerate() {
        check_path(index, edit.path())?;
        let slot = file_slot(&mut files, edit.path(), &read_original);
        apply_edit(index, edit, &mut files[slot].2)?;
    }
    files.into_iter().map(changed_file).collect()
}

/// Where `path` stands in `files`, read once on its first edit so later edits to the same file
/// apply to the text the earlier ones left.
fn file_slot(
    files: &mut Vec<(String, Option<String>, Option<String>)>,
    path: &str,
    read_original: impl Fn(&str) -> Option<String>,
) -> usize {
    if let Some(slot) = files.iter().position(|(p, _, _)| p == path) {
        return slot;
    }
    let original = read_original(path);
    files.push((path.to_owned(), original.clone(), original));
    files.len() - 1
}

/// Applies one edit to a file's current text (`None` while the file does not exist, which only
/// a whole-file write may change).
fn apply_edit(index: usize, edit: &ModelEdit, current: &mut Option<String>) -> Result<(), String> {
    match edit {
        ModelEdit::Write { content, .. } => *current = Some(content.clone()),
        ModelEdit::Replace {
            path,
            search,
            replace,
        } => {
            let Some(text) = current.as_mut() else {
                return Err(format!(
                    "edits[{index}] (replace in {path}): {MISSING_FILE}"
                ));
            };
            *text = replace_once(index, path, text, search, replace)?;
        }
    }
    Ok(())
}

/// The `(path, original, updated)` of one touched file; an edit that leaves it as it was is
/// refused, so the model does not spend a round on a no-op.
fn changed_file(
    (path, original, current): (String, Option<String>, Option<String>),
) -> Result<(String, Option<String>, String), String> {
    // Every slot was created by an edit that either wrote content or failed above.
    let Some(updated) = current else {
        return Err(format!("{path}: no content was produced"));
    };
    if original.as_deref() == Some(updated.as_str()) {
        return Err(format!(
            "the edits to {path} leave the file unchanged; remove them or change the file"
        ));
    }
    Ok((path, original, updated))
}

/// Why a replace in a file that does not exist is refused, and what to send instead.
const MISSING_FILE: &str = r#"the file does not exist; create it with {"path", "content"} instead"#;

fn replace_once(
    index: usize,
    path: &str,
    text: &str,
    search: &str,
    replace: &str,
) -> Result<String, String> {
    let mut count = count_occurrences(text, search);
    let (mut search, mut replace) = (search.to_owned(), replace.to_owned());
    // Models write "\n"; a file checked out with CRLF endings would otherwise never match.
    if count == 0 && text.contains("\r\n") && !search.contains('\r') {
        search = search.replace('\n', "\r\n");
        replace = replace.replace("\r\n", "\n").replace('\n', "\r\n");
        count = count_occurrences(text, &search);
    }
    match count {
        1 => Ok(text.replacen(&search, &replace, 1)),
        0 => Err(format!(
            "edits[{index}] (replace in {path}): the \"search\" text matches 0 times in the \
             file's current text (after earlier edits to it); it must match exactly once. Copy \
             it exactly from the file, including whitespace and indentation"
        )),
        n => Err(format!(
            "edits[{index}] (replace in {path}): the \"search\" text matches {n} times in the \
             file's current text; it must match exactly once. Include more surrounding lines so \
             it is unique"
        )),
    }
}

/// Counts overlapping occurrences too: "aa" in "aaa" is ambiguous, so it counts as two.
fn count_occurrences(text: &str, needle: &str) -> usize {
    let mut count = 0;
    let mut from = 0;
    while let Some(found) = text[from..].find(needle) {
        count += 1;
        let at = from + found;
        // Step one character forward, staying on a char boundary.
        from = at + text[at..].chars().next().map_or(1, char::len_utf8);
        if from > text.len() {
            break;
        }
    }
    count
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use super::*;

    fn replace(path: &str, search: &str, replace: &str) -> ModelEdit {
        ModelEdit::Replace {
            path: path.to_owned(),
            search: search.to_owned(),
            replace: replace.to_owned(),
        }
    }

    const GOOD: &str = r#"{"edits":[{"path":"Cargo.toml","search":"serde_yaml = \"0.8.1\"","replace":"serde_yaml = \"0.8.4\""},{"path":"NOTES.md","content":"bumped\n"}],"confidence":0.8,"explanation":"bump"}"#;

    #[test]
    fn parses_both_edit_shapes() {
        let answer = parse_answer(GOOD).unwrap();
        assert_eq!(answer.confidence, 0.8);
        assert_eq!(answer.explanation, "bump");
        assert_eq!(
            answer.edits,
            vec![
                replace(
                    "Cargo.toml",
                    "serde_yaml = \"0.8.1\"",
                    "serde_yaml = \"0.8.4\""
                ),
                ModelEdit::Write {
                    path: "NOTES.md".to_owned(),
                    content: "bumped\n".to_owned()
                }
            ]
        );
    }

    #[test]
    fn tolerates_one_json_fence() {
        let fenced = format!("```json\n{GOOD}\n```\n");
        assert_eq!(parse_answer(&fenced).unwrap(), parse_answer(GOOD).unwrap());
        let plain_fence = format!("```\n{GOOD}\n```");
        assert_eq!(
            parse_answer(&plain_fence).unwrap(),
            parse_answer(GOOD).unwrap()
        );
    }

    #[test]
    fn refuses_prose_around_the_json() {
        let err = parse_answer(&format!("Here is the fix:\n{GOOD}")).unwrap_err();
        assert!(err.contains("single JSON object"), "{err}");
        let err = parse_answer(&format!("```json\n{GOOD}\n```\nHope this helps")).unwrap_err();
        assert!(err.contains("not closed"), "{err}");
        let err = parse_answer(&format!("{GOOD} trailing")).unwrap_err();
        assert!(err.contains("trailing characters"), "{err}");
    }

    #[test]
    fn refuses_garbage_and_empty_answers() {
        assert!(parse_answer("   ").unwrap_err().contains("empty"));
        let err = parse_answer("{not json").unwrap_err();
        assert!(err.contains("not a valid answer object"), "{err}");
    }

    #[test]
    fn refuses_unknown_missing_and_duplicate_fields() {
        let err = parse_answer(r#"{"edits":[{"path":"a","content":"x"}],"confidence":0.5,"explanation":"e","run":"rm -rf /"}"#).unwrap_err();
        assert!(err.contains("unknown field `run`"), "{err}");
        let err = parse_answer(r#"{"edits":[{"path":"a","content":"x","mode":"755"}],"confidence":0.5,"explanation":"e"}"#).unwrap_err();
        assert!(err.contains("unknown field `mode`"), "{err}");
        let err = parse_answer(r#"{"edits":[{"path":"a","content":"x"}],"explanation":"e"}"#)
            .unwrap_err();
        assert!(err.contains("missing field `confidence`"), "{err}");
        let err = parse_answer(r#"{"edits":[{"path":"a","content":"x","path":"b"}],"confidence":0.5,"explanation":"e"}"#).unwrap_err();
        assert!(err.contains("duplicate field `path`"), "{err}");
    }

    #[test]
    fn refuses_bad_confidence_and_empty_edits() {
        let err = parse_answer(
            r#"{"edits":[{"path":"a","content":"x"}],"confidence":1.5,"explanation":"e"}"#,
        )
        .unwrap_err();
        assert_eq!(
            err,
            "\"confidence\" is 1.5; it must be a number from 0 to 1"
        );
        let err = parse_answer(r#"{"edits":[],"confidence":0.5,"explanation":"e"}"#).unwrap_err();
        assert!(err.contains("\"edits\" is empty"), "{err}");
    }

    #[test]
    fn each_edit_has_exactly_one_shape() {
        let err = parse_answer(r#"{"edits":[{"path":"a","content":"x"},{"path":"b","search":"s","replace":"r","content":"c"}],"confidence":0.5,"explanation":"e"}"#).unwrap_err();
        assert!(
            err.starts_with("edits[1] (b) has \"path\" and search, replace, content"),
            "{err}"
        );
        let err = parse_answer(
            r#"{"edits":[{"path":"a","search":"s"}],"confidence":0.5,"explanation":"e"}"#,
        )
        .unwrap_err();
        assert!(
            err.starts_with("edits[0] (a) has \"path\" and search;"),
            "{err}"
        );
        let err = parse_answer(r#"{"edits":[{"path":"a"}],"confidence":0.5,"explanation":"e"}"#)
            .unwrap_err();
        assert!(err.contains("has only \"path\""), "{err}");
        let err = parse_answer(r#"{"edits":[{"path":"a","search":"","replace":"r"}],"confidence":0.5,"explanation":"e"}"#).unwrap_err();
        assert!(err.contains("\"search\" is empty"), "{err}");
    }

    #[test]
    fn refuses_paths_outside_the_repository_naming_the_policy_rule() {
        for (bad, rule) in [
            ("/etc/passwd", "absolute_path"),
            ("C:/Windows/win.ini", "absolute_path"),
            ("../x", "parent_traversal"),
            ("a/../../b", "parent_traversal"),
            (".git/config", "git_directory"),
            ("sub/.GIT/hooks/pre-commit", "git_directory"),
            // Spellings a case-folding or Windows file system would resolve to `.git`.
            (".git./hooks/post-checkout", "git_directory"),
            ("GIT~1/config", "git_directory"),
            ("a\\b", "invalid_path"),
            ("", "invalid_path"),
            ("./a", "invalid_path"),
        ] {
            let raw = serde_json::json!({
                "edits": [{"path": bad, "content": "x"}],
                "confidence": 0.5,
                "explanation": "e"
            })
            .to_string();
            let err = parse_answer(&raw).unwrap_err();
            assert!(err.starts_with("edits[0]: path"), "{bad}: {err}");
            assert!(err.contains(&format!("({rule})")), "{bad}: {err}");
        }
    }

    fn reader(files: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> {
        let map: HashMap<String, String> = files
            .iter()
            .map(|(p, c)| ((*p).to_owned(), (*c).to_owned()))
            .collect();
        move |path| map.get(path).cloned()
    }

    #[test]
    fn chained_edits_to_one_file_apply_in_order() {
        let edits = vec![
            replace("Cargo.toml", "version = \"0.8.1\"", "version = \"0.8.4\""),
            // Only matches once the first edit has been applied.
            replace("Cargo.toml", "\"0.8.4\"", "\"0.8.4\", features = [\"x\"]"),
            replace("src/lib.rs", "old()", "new()"),
        ];
        let out = materialize(
            &edits,
            reader(&[
                (
                    "Cargo.toml",
                    "[dependencies]\nserde_yaml = { version = \"0.8.1\" }\n",
                ),
                ("src/lib.rs", "fn f() { old() }\n"),
            ]),
        )
        .unwrap();
        assert_eq!(
            out,
            vec![
                (
                    "Cargo.toml".to_owned(),
                    Some("[dependencies]\nserde_yaml = { version = \"0.8.1\" }\n".to_owned()),
                    "[dependencies]\nserde_yaml = { version = \"0.8.4\", features = [\"x\"] }\n"
                        .to_owned()
                ),
                (
                    "src/lib.rs".to_owned(),
                    Some("fn f() { old() }\n".to_owned()),
                    "fn f() { new() }\n".to_owned()
                ),
            ]
        );
    }

    #[test]
    fn write_creates_a_new_file_and_can_be_edited_further() {
        let edits = vec![
            ModelEdit::Write {
                path: "docs/SECURITY.md".to_owned(),
                content: "fixed in 1.0\n".to_owned(),
            },
            replace("docs/SECURITY.md", "1.0", "1.0.1"),
        ];
        let out = materialize(&edits, reader(&[])).unwrap();
        assert_eq!(
            out,
            vec![(
                "docs/SECURITY.md".to_owned(),
                None,
                "fixed in 1.0.1\n".to_owned()
            )]
        );
    }

    /// A replace the files cannot take: the file, what it holds (`None`: it does not exist),
    /// the search and replace text, and what the refusal must mention.
    type RefusedReplace<'a> = (&'a str, Option<&'a str>, (&'a str, &'a str), &'a [&'a str]);

    #[test]
    fn replaces_the_files_cannot_take_are_refused_saying_why() {
        let two_lodash = "{\"a\": \"4.17.1\",\n \"lodash\": \"4.17.1\"}\n";
        let cases: [RefusedReplace; 5] = [
            // No match and two matches name the path and the count.
            (
                "Cargo.toml",
                Some("serde = \"1\"\n"),
                ("serde = \"2\"", "serde = \"3\""),
                &["replace in Cargo.toml", "matches 0 times"],
            ),
            (
                "package.json",
                Some(two_lodash),
                ("\"4.17.1\"", "\"4.17.21\""),
                &["replace in package.json", "matches 2 times"],
            ),
            // Overlapping matches are ambiguous too.
            ("f", Some("aaa"), ("aa", "b"), &["matches 2 times"]),
            (
                "nope.txt",
                None,
                ("a", "b"),
                &["nope.txt", "does not exist"],
            ),
            ("f", Some("x\n"), ("x", "x"), &["leave the file unchanged"]),
        ];
        for (path, held, (search, replacement), mentions) in cases {
            let files: Vec<(&str, &str)> =
                held.map(|content| (path, content)).into_iter().collect();
            let edits = [replace(path, search, replacement)];
            let err = materialize(&edits, reader(&files)).unwrap_err();
            for part in mentions {
                assert!(err.contains(part), "{part:?} missing from: {err}");
            }
        }
    }

    #[test]
    fn crlf_files_match_lf_search_text() {
        let out = materialize(
            &[replace("req.txt", "a==1\nb==1\n", "a==1\nb==2\n")],
            reader(&[("req.txt", "a==1\r\nb==1\r\nc==3\r\n")]),
        )
        .unwrap();
        assert_eq!(out[0].2, "a==1\r\nb==2\r\nc==3\r\n");
    }

    #[test]
    fn materialize_never_reads_outside_the_repository() {
        let edits = [replace("../outside.txt", "a", "b")];
        let err = materialize(&edits, |path| panic!("read {path}")).unwrap_err();
        assert!(err.contains("(parent_traversal)"), "{err}");
    }
}
