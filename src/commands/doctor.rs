//! `remediator doctor`: whether this machine can run the worker's lock step. Checks the
//! sandbox (bubblewrap, the egress forwarder's Python, the CA bundle), then finds every lock
//! tool as the worker does and runs it inside the sandbox, printing where each was found, its
//! version, and what to do about each one that is not ready.

use std::fmt::Write as _;

use crate::config::Settings;
use crate::lockfile::inventory::{self, Report};
use crate::sandbox::Sandbox;

/// The report, and whether everything is ready.
pub async fn run(settings: &Settings) -> (String, bool) {
    let sandbox = Sandbox::new(
        settings.sandbox.clone(),
        crate::lockfile::registries::endpoints(&settings.lockfiles),
    );
    let mut text = String::new();
    let sandbox_ready = match sandbox.check() {
        Ok(()) => {
            let _ = writeln!(text, "sandbox: ready ({:?})", settings.sandbox.mode);
            true
        }
        Err(error) => {
            let _ = writeln!(text, "sandbox: NOT READY: {error}");
            false
        }
    };
    let named: Vec<String> = sandbox
        .reach()
        .named()
        .iter()
        .map(ToString::to_string)
        .collect();
    let others = match settings.sandbox.allowed_hosts.is_empty() {
        true => "any other public host on ports 443 and 80 (set sandbox.allowed_hosts to close it)",
        false => "nothing else (sandbox.allowed_hosts is set)",
    };
    let _ = writeln!(
        text,
        "sandbox network: {}; {others}",
        match named.is_empty() {
            true => "no configured registry".to_owned(),
            false => format!("the configured registries {}", named.join(", ")),
        }
    );
    let reports = inventory::check(&sandbox, &settings.lockfiles).await;
    text.push_str(&table(&reports));
    let ready = reports.iter().filter(|r| r.ready()).count();
    let _ = writeln!(text, "\n{ready} of {} lock tools ready", reports.len());
    for report in reports.iter().filter(|r| !r.ready()) {
        let _ = writeln!(
            text,
            "  {}: {}",
            report.entry.setting,
            report.fix().unwrap_or_default()
        );
    }
    (text, sandbox_ready && ready == reports.len())
}

fn table(reports: &[Report]) -> String {
    let rows: Vec<[String; 4]> = reports
        .iter()
        .map(|report| {
            let (path, found) = match &report.found {
                Ok(tool) => (tool.path.display().to_string(), tool.found.to_string()),
                Err(_) => ("-".to_owned(), "not found".to_owned()),
            };
            let version = match &report.version {
                Ok(version) => version.clone(),
                Err(_) if report.found.is_err() => "-".to_owned(),
                Err(_) => "does not run in the sandbox".to_owned(),
            };
            [report.entry.setting.to_owned(), version, path, found]
        })
        .collect();
    let header = ["tool", "version (in the sandbox)", "path", "found"].map(String::from);
    let mut widths = header.clone().map(|h| h.len());
    for row in &rows {
        for (width, cell) in widths.iter_mut().zip(row) {
            *width = (*width).max(cell.chars().count());
        }
    }
    let mut text = String::new();
    for row in std::iter::once(&header).chain(&rows) {
        let line: Vec<String> = row
            .iter()
            .zip(widths)
            .map(|(cell, width)| format!("{cell:width$}"))
            .collect();
        let _ = writeln!(text, "{}", line.join("  ").trim_end());
    }
    text
}
