//! What a dead-letter page or action applies to: the filter fields (as typed, to fill the
//! forms again, and parsed), and for an action the ticked ids or every message that matches.

use maud::{Markup, html};

use crate::console::ConsoleError;
use crate::console::form::Form;
use crate::lifecycle::{OperationId, ProjectId};
use crate::queue::dead_letters::{DeadLetterReason, Filter};

/// The filter fields, as typed (to fill forms again) and parsed.
pub(super) struct DlqFilter {
    raw: Vec<(&'static str, String)>,
    pub(super) filter: Filter,
}

impl DlqFilter {
    pub(super) fn parse(get: impl Fn(&str) -> Option<String>) -> Result<DlqFilter, ConsoleError> {
        let mut raw = Vec::new();
        let mut filter = Filter::default();
        if let Some(reason) = get("reason") {
            crate::api::guard::check_text("reason", &reason).map_err(ConsoleError::from)?;
            filter.reason = Some(DeadLetterReason::parse(&reason));
            raw.push(("reason", reason));
        }
        if let Some(project) = get("project") {
            let id: ProjectId = project.parse().map_err(|_| {
                ConsoleError::BadRequest(format!(
                    "project must be a project id (UUID), got {project:?}"
                ))
            })?;
            filter.project = Some(id);
            raw.push(("project", project));
        }
        if let Some(age) = get("older_than") {
            filter.older_than =
                Some(crate::commands::dlq::parse_age(&age).map_err(ConsoleError::BadRequest)?);
            raw.push(("older_than", age));
        }
        Ok(DlqFilter { raw, filter })
    }

    pub(super) fn describe(&self) -> String {
        if self.raw.is_empty() {
            "all".to_owned()
        } else {
            let parts: Vec<String> = self.raw.iter().map(|(k, v)| format!("{k}={v}")).collect();
            format!("all matching {}", parts.join(" "))
        }
    }

    pub(super) fn value(&self, key: &str) -> String {
        self.raw
            .iter()
            .find(|(k, _)| *k == key)
            .map(|(_, v)| v.clone())
            .unwrap_or_default()
    }

    pub(super) fn hidden_fields(&self) -> Markup {
        html! { @for (key, value) in &self.raw { input type="hidden" name=(key) value=(value); } }
    }
}

/// What an action applies to: the ticked ids, or every message matching a filter.
pub(super) struct Target {
    filter: DlqFilter,
    ids: Vec<OperationId>,
    all: bool,
}

impl Target {
    pub(super) fn from_form(form: &Form) -> Result<Target, ConsoleError> {
        let all = form.get("mode") == Some("all");
        let filter = DlqFilter::parse(|k| {
            if all {
                form.get(k).map(str::to_owned)
            } else {
                None
            }
        })?;
        let ids = form
            .all("id")
            .into_iter()
            .map(|id| {
                id.parse::<OperationId>().map_err(|_| {
                    ConsoleError::BadRequest(format!("id must be an operation id, got {id:?}"))
                })
            })
            .collect::<Result<Vec<_>, _>>()?;
        if !all && ids.is_empty() {
            return Err(ConsoleError::BadRequest(
                "select at least one dead letter (or use the \"all matching\" buttons)".into(),
            ));
        }
        Ok(Target { filter, ids, all })
    }

    pub(super) fn filter(&self) -> Filter {
        let mut filter = self.filter.filter.clone();
        if !self.all {
            filter.operation_ids = self.ids.clone();
        }
        filter
    }

    pub(super) fn describe(&self) -> String {
        if self.all {
            self.filter.describe()
        } else if let [one] = self.ids.as_slice() {
            one.to_string()
        } else {
            format!("{} selected", self.ids.len())
        }
    }

    pub(super) fn hidden_fields(&self) -> Markup {
        html! {
            input type="hidden" name="mode" value=(if self.all { "all" } else { "selected" });
            @if self.all { (self.filter.hidden_fields()) }
            @for id in &self.ids { input type="hidden" name="id" value=(id); }
        }
    }
}
