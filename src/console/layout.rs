//! The page shell (head, navigation, who is logged in, the logout form) and the small pieces
//! every page uses: status badges, step progress, times and ages. maud escapes everything
//! interpolated, so text from the database or a queue message cannot become markup.

use chrono::{DateTime, Utc};
use maud::{DOCTYPE, Markup, html};

use super::session::Session;
use crate::db::operations::OperationEvent;
use crate::lifecycle::{EventKind, OperationStatus, Step};

/// The navigation's areas.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Area {
    Overview,
    Operations,
    DeadLetters,
    Repositories,
    Audit,
}

/// A whole page for a logged-in session.
pub fn page(session: &Session, area: Area, title: &str, refresh_ms: u64, body: Markup) -> Markup {
    let link = |target: Area, href: &str, label: &str| {
        html! {
            a href=(href) aria-current=[(target == area).then_some("page")] { (label) }
        }
    };
    html! {
        (DOCTYPE)
        html lang="en" {
            (head(title, Some(refresh_ms)))
            body {
                header.top {
                    a.brand href="/console/" { "Remediator" }
                    nav {
                        (link(Area::Overview, "/console/", "Overview"))
                        (link(Area::Operations, "/console/operations", "Operations"))
                        (link(Area::DeadLetters, "/console/dead-letters", "Dead letters"))
                        (link(Area::Repositories, "/console/repositories", "Repositories"))
                        @if session.admin {
                            (link(Area::Audit, "/console/audit", "Audit"))
                        }
                    }
                    div.who {
                        span title="token subject" { (session.caller.subject) }
                        " · "
                        @if session.admin {
                            span.role data-role="admin" { "all organisations (admin)" }
                        } @else {
                            span.role data-role="read" {
                                "organisation " code { (session.caller.organization) } " (read-only)"
                            }
                        }
                        form.inline method="post" action="/console/logout" {
                            input type="hidden" name="csrf" value=(session.csrf);
                            button type="submit" { "Log out" }
                        }
                    }
                }
                main {
                    h1 { (title) }
                    (body)
                }
            }
        }
    }
}

/// A page without a session: the login form and error pages.
pub fn bare(title: &str, body: Markup) -> Markup {
    html! {
        (DOCTYPE)
        html lang="en" {
            (head(title, None))
            body {
                header.top { a.brand href="/console/" { "Remediator" } }
                main.narrow { h1 { (title) } (body) }
            }
        }
    }
}

/// The `head` of every page; a page with a session (`refresh_ms`) also gets the refresh script.
fn head(title: &str, refresh_ms: Option<u64>) -> Markup {
    html! {
        head {
            meta charset="utf-8";
            meta name="viewport" content="width=device-width, initial-scale=1";
            @if let Some(refresh_ms) = refresh_ms {
                meta name="console-refresh-ms" content=(refresh_ms);
            }
            title { (title) " · Remediator console" }
            link rel="stylesheet" href="/console/static/console.css";
            @if refresh_ms.is_some() {
                script src="/console/static/console.js" defer {}
            }
        }
    }
}

pub fn error_page(title: &str, message: &str) -> Markup {
    bare(
        title,
        html! {
            p.error role="alert" { (message) }
            p { a href="/console/" { "Back to the console" } }
        },
    )
}

/// A notice at the top of a page (after an action).
pub fn notice(text: &str) -> Markup {
    html! { p.notice role="status" { (text) } }
}

/// The status without the API's prefix: `RUNNING`.
pub fn short_status(status: OperationStatus) -> &'static str {
    status
        .as_str()
        .trim_start_matches("ASYNC_OPERATION_STATUS_")
}

pub fn status_badge(status: OperationStatus) -> Markup {
    let short = short_status(status);
    html! { span class=(format!("badge s-{}", short.to_lowercase())) { (short) } }
}

/// The step a RUNNING job is at, as a progress bar over the pipeline's steps.
pub fn step_progress(step: Option<Step>) -> Markup {
    let Some(step) = step else {
        return html! { span.muted { "-" } };
    };
    let position = Step::ALL.iter().position(|s| *s == step).unwrap_or(0) + 1;
    html! {
        span.step {
            progress value=(position) max=(Step::ALL.len()) title=(format!("step {position} of {}", Step::ALL.len())) {
                (position) "/" (Step::ALL.len())
            }
            " " span.step-name { (step.as_str()) }
        }
    }
}

pub fn time(at: DateTime<Utc>) -> Markup {
    html! {
        time datetime=(at.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)) title=(at.to_rfc3339_opts(chrono::SecondsFormat::Millis, true)) {
            (at.format("%Y-%m-%d %H:%M:%S")) " UTC"
        }
    }
}

/// An event of an operation's history as table cells after its time: what happened (status,
/// step, note or failed attempt), the attempt and the message.
pub fn event_cells(event: &OperationEvent) -> Markup {
    html! {
        td {
            @if let Some(status) = event.status { (status_badge(status)) }
            @if let Some(step) = event.step { "step " code { (step.as_str()) } }
            @if event.kind == EventKind::Note { span.muted { "note" } }
            @if event.kind == EventKind::AttemptError { span.error { "attempt failed" } }
        }
        td { @if let Some(a) = event.attempt { (a) } }
        td { @if let Some(m) = &event.message { (m) } }
    }
}

/// An operation's history as a table, an event a row, its time shown by `time`. The operation
/// page tags each row with its kind (`tag_kind`); the dead-letter page does not.
pub fn history_table(
    history: &[OperationEvent],
    time: fn(DateTime<Utc>) -> Markup,
    tag_kind: bool,
) -> Markup {
    html! {
        table #timeline {
            thead { tr { th { "at (UTC)" } th { "event" } th { "attempt" } th { "message" } } }
            tbody {
                @for event in history {
                    tr data-kind=[tag_kind.then_some(&event.kind)] {
                        td { (time(event.at)) }
                        (event_cells(event))
                    }
                }
            }
        }
    }
}

/// `3m 20s`, `2h 5m`, `4d 1h`: how long ago, or how long something took.
pub fn duration(d: chrono::Duration) -> String {
    let secs = d.num_seconds().max(0);
    match secs {
        0..60 => {
            let ms = d.num_milliseconds().max(0);
            if secs == 0 && ms < 1000 {
                format!("{ms} ms")
            } else {
                format!("{secs}s")
            }
        }
        60..3600 => format!("{}m {}s", secs / 60, secs % 60),
        3600..86_400 => format!("{}h {}m", secs / 3600, secs % 3600 / 60),
        _ => format!("{}d {}h", secs / 86_400, secs % 86_400 / 3600),
    }
}

pub fn age(at: DateTime<Utc>) -> String {
    duration(Utc::now() - at)
}

/// A short form of a UUID for tables (the full one is in the link and its title).
pub fn short_id(id: impl std::fmt::Display) -> String {
    let text = id.to_string();
    text.chars().take(8).collect()
}

/// At most `max` characters of `text`, with an ellipsis when cut.
pub fn clip(text: &str, max: usize) -> String {
    if text.chars().count() <= max {
        text.to_owned()
    } else {
        let cut: String = text.chars().take(max).collect();
        format!("{cut}…")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_read_as_people_say_them() {
        assert_eq!(duration(chrono::Duration::milliseconds(250)), "250 ms");
        assert_eq!(duration(chrono::Duration::seconds(42)), "42s");
        assert_eq!(duration(chrono::Duration::seconds(200)), "3m 20s");
        assert_eq!(duration(chrono::Duration::seconds(7500)), "2h 5m");
        assert_eq!(duration(chrono::Duration::seconds(90_000)), "1d 1h");
        assert_eq!(clip("abcdef", 3), "abc…");
        assert_eq!(short_status(OperationStatus::Running), "RUNNING");
    }

    #[test]
    fn interpolated_text_is_escaped() {
        let markup = notice("<script>alert(1)</script>").into_string();
        assert!(!markup.contains("<script>"), "{markup}");
        assert!(markup.contains("&lt;script&gt;"), "{markup}");
    }
}
