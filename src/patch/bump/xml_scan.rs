//! A small XML scanner for editing manifests in place: it lists the elements of a document
//! with their parents and the byte range of their contents, skipping comments, CDATA sections,
//! processing instructions and the doctype. It checks that tags nest, not the rest of XML
//! (entities, attribute syntax, namespaces are not interpreted), which is enough to find a
//! value and replace exactly its bytes.

use std::ops::Range;

/// One element of the document.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Element {
    /// The tag name as written, with any namespace prefix.
    pub name: String,
    pub parent: Option<usize>,
    /// Byte offset of the `<` of the start tag.
    pub start: usize,
    /// Bytes between the start tag and the end tag; empty for `<name/>`.
    pub inner: Range<usize>,
}

impl Element {
    /// The name without a namespace prefix.
    pub fn local_name(&self) -> &str {
        self.name
            .rsplit_once(':')
            .map_or(self.name.as_str(), |(_, local)| local)
    }
}

/// The elements of `text` in document order (a parent before its children). Errors name the
/// line where the structure breaks.
pub(super) fn scan(text: &str) -> Result<Vec<Element>, String> {
    let mut elements: Vec<Element> = Vec::new();
    // The elements whose end tag is still to come, innermost last.
    let mut open: Vec<usize> = Vec::new();
    let mut pos = 0;
    while let Some(offset) = text[pos..].find('<') {
        let start = pos + offset;
        let rest = &text[start..];
        pos = if rest.starts_with("<!--") {
            closed_at(text, start + 4, "-->", "a comment")? + 3
        } else if rest.starts_with("<![CDATA[") {
            closed_at(text, start + 9, "]]>", "a CDATA section")? + 3
        } else if rest.starts_with("<?") {
            closed_at(text, start + 2, "?>", "a processing instruction")? + 2
        } else if rest.starts_with("<!") {
            doctype_end(text, start)? + 1
        } else if rest.starts_with("</") {
            let close = closed_at(text, start, ">", "an end tag")?;
            let name = text[start + 2..close].trim();
            let element = open.pop().ok_or_else(|| {
                format!(
                    "`</{name}>` on line {} closes nothing",
                    line_of(text, start)
                )
            })?;
            close_element(text, &mut elements[element], name, start)?;
            close + 1
        } else {
            let tag = start_tag(text, start)?;
            elements.push(Element {
                name: tag.name.to_owned(),
                parent: open.last().copied(),
                start,
                inner: tag.end + 1..tag.end + 1,
            });
            if !tag.self_closing {
                open.push(elements.len() - 1);
            }
            tag.end + 1
        };
    }
    if let Some(&element) = open.last() {
        return Err(format!(
            "`<{}>` from line {} is never closed",
            elements[element].name,
            line_of(text, elements[element].start)
        ));
    }
    Ok(elements)
}

/// The offset of `needle` at or after `from`; an error naming `what` was left open, since a
/// construct that never ends swallows the rest of the file.
fn closed_at(text: &str, from: usize, needle: &str, what: &str) -> Result<usize, String> {
    text[from..]
        .find(needle)
        .map(|offset| from + offset)
        .ok_or_else(|| {
            format!(
                "{what} starting on line {} is not closed",
                line_of(text, from)
            )
        })
}

/// The offset of the `>` ending the declaration (a doctype) at `start`, skipping an internal
/// subset in brackets, whose own declarations hold `>` too.
fn doctype_end(text: &str, start: usize) -> Result<usize, String> {
    let mut depth = 0usize;
    for (i, byte) in text.bytes().enumerate().skip(start + 2) {
        match byte {
            b'[' => depth += 1,
            b']' => depth = depth.saturating_sub(1),
            b'>' if depth == 0 => return Ok(i),
            _ => {}
        }
    }
    Err(format!(
        "a declaration starting on line {} is not closed",
        line_of(text, start)
    ))
}

/// Ends `element` at the end tag `</name>` found at `start`, refusing a tag that closes
/// another element: the contents of a mis-nested element are not a value to replace.
fn close_element(
    text: &str,
    element: &mut Element,
    name: &str,
    start: usize,
) -> Result<(), String> {
    if element.name != name {
        return Err(format!(
            "`</{name}>` on line {} does not close `<{}>` from line {}",
            line_of(text, start),
            element.name,
            line_of(text, element.start)
        ));
    }
    element.inner.end = start;
    Ok(())
}

/// A start tag as read: its name, the offset of its closing `>`, and whether it is `<name/>`.
struct StartTag<'a> {
    name: &'a str,
    end: usize,
    self_closing: bool,
}

/// Reads the start tag at `start`. Its end is the first `>` outside a quoted attribute
/// value, since attribute values may hold `>`.
fn start_tag(text: &str, start: usize) -> Result<StartTag<'_>, String> {
    let bytes = text.as_bytes();
    let name_end = text[start + 1..]
        .find(|c: char| c.is_whitespace() || c == '/' || c == '>')
        .map_or(text.len(), |i| start + 1 + i);
    let name = &text[start + 1..name_end];
    if name.is_empty() {
        return Err(format!("a stray `<` on line {}", line_of(text, start)));
    }
    let mut quote = None;
    for (i, &byte) in bytes.iter().enumerate().skip(name_end) {
        match (quote, byte) {
            (Some(q), _) if byte == q => quote = None,
            (Some(_), _) => {}
            (None, b'"' | b'\'') => quote = Some(byte),
            (None, b'>') => {
                return Ok(StartTag {
                    name,
                    end: i,
                    self_closing: bytes[i - 1] == b'/',
                });
            }
            _ => {}
        }
    }
    Err(format!(
        "the tag `<{name}` on line {} is not closed",
        line_of(text, start)
    ))
}

/// The direct children of `parent`, in document order.
pub(super) fn children(elements: &[Element], parent: usize) -> impl Iterator<Item = usize> + '_ {
    elements
        .iter()
        .enumerate()
        .skip(parent + 1)
        .filter(move |(_, element)| element.parent == Some(parent))
        .map(|(index, _)| index)
}

/// The names from the root down to `index`, local names only.
pub(super) fn path(elements: &[Element], index: usize) -> Vec<&str> {
    let mut names = Vec::new();
    let mut current = Some(index);
    while let Some(i) = current {
        names.push(elements[i].local_name());
        current = elements[i].parent;
    }
    names.reverse();
    names
}

/// The trimmed text of an element that holds only text; `None` when it holds markup
/// (children, comments, CDATA), whose bytes are not a plain value.
pub(super) fn plain_text(text: &str, element: &Element) -> Option<Range<usize>> {
    let inner = text.get(element.inner.clone())?;
    if inner.contains('<') {
        return None;
    }
    let start = element.inner.start + (inner.len() - inner.trim_start().len());
    let end = element.inner.end - (inner.len() - inner.trim_end().len());
    Some(start..end.max(start))
}

/// 1-based line of a byte offset.
pub(super) fn line_of(text: &str, offset: usize) -> usize {
    text.get(..offset)
        .map_or(0, |before| before.matches('\n').count())
        + 1
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lists_elements_with_parents_and_contents() {
        let text = "<?xml version=\"1.0\"?>\n<!DOCTYPE x [<!ENTITY a \"b\">]>\n<a x=\"1>2\">\n  <!-- <b>not</b> -->\n  <b> 1.0 </b><c/><![CDATA[<d>]]>\n</a>\n";
        let elements = scan(text).expect("well-formed");
        let names: Vec<&str> = elements.iter().map(|e| e.name.as_str()).collect();
        assert_eq!(names, ["a", "b", "c"]);
        assert_eq!(elements[1].parent, Some(0));
        assert_eq!(
            elements[2].inner,
            elements[2].inner.start..elements[2].inner.start
        );
        let value = plain_text(text, &elements[1]).expect("plain");
        assert_eq!(&text[value], "1.0");
        assert_eq!(plain_text(text, &elements[0]), None);
        assert_eq!(children(&elements, 0).collect::<Vec<_>>(), [1, 2]);
        assert_eq!(path(&elements, 1), ["a", "b"]);
        assert_eq!(line_of(text, elements[1].start), 5);
    }

    #[test]
    fn namespace_prefixes_are_dropped_from_local_names() {
        let elements = scan("<m:project xmlns:m=\"u\"><m:version>1</m:version></m:project>")
            .expect("well-formed");
        assert_eq!(path(&elements, 1), ["project", "version"]);
    }

    #[test]
    fn broken_structure_is_reported_with_its_line() {
        assert_eq!(
            scan("<a>\n<b>\n</a>"),
            Err("`</a>` on line 3 does not close `<b>` from line 2".to_owned())
        );
        assert_eq!(
            scan("<a>\n<b></b>"),
            Err("`<a>` from line 1 is never closed".to_owned())
        );
        assert!(scan("<a><!-- open</a>").is_err());
        assert!(scan("</a>").is_err());
        assert!(scan("<a attr=\"x></a>").is_err());
        assert!(scan("a < b").is_err());
    }
}
