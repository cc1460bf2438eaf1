//! A repository-grouped job (`worker.group = "repository"`), as Dependabot's grouped security
//! updates: one pull request per repository and ecosystem carrying every pending version fix.
//! The job plans one fix per package (`fix_plan::plan_repository`), generates and locks them
//! one after the other in the same clone (each package's patcher reads the manifests as the
//! previous package left them), tests them together (with the LLM's repair rounds when a test
//! regresses, told of every package moved), commits them together and goes on exactly as a
//! package job does, under the fix lock of the group ([`FixScope::Group`]). Packages go by name, so
//! the same set of fixes reads the same whichever advisory triggered it. A package other than
//! the trigger's that cannot be fixed is left out and named in the pull request.

use crate::ecosystem::Ecosystem;
use serde_json::json;

use super::confidence::Evidence;
use super::context::Pipeline;
use super::failure::StepFailure;
use super::patcher::{PatchAuthor, ProposedPatch};
use super::publish::{Publication, Published, publish};
use super::steps::clone::Checkout;
use super::steps::lock::Locked;
use super::steps::test::{FixFacts, Tested};
use super::steps::write_back::{self, Finished, JobSuccess};
use super::steps::{self, StepDriver};
use crate::db::fixes;
use crate::db::models::{FindingFacts, RemediationTarget};
use crate::lifecycle::fix_plan::{self, Advisory, PackagePlan, Remaining};
use crate::lifecycle::{FixScope, OperationId, Step};
use crate::llm::VulnerabilityFacts;
use crate::lockfile::Verification;
use crate::pr_text::{self, AdvisoryFacts, GroupedPackage, NotFixed, PrFacts};

/// One package the job fixed.
struct Fixed {
    package: PackagePlan,
    target: RemediationTarget,
    patch: ProposedPatch,
    locked: Locked,
}

impl Pipeline {
    pub(super) async fn run_grouped(
        &self,
        driver: &mut StepDriver<'_>,
        operation_id: OperationId,
        target: RemediationTarget,
    ) -> Result<JobSuccess, StepFailure> {
        let plans = self.plan_grouped(&target).await?;
        let branch = pr_text::group_branch_name(target.facts.ecosystem.as_str());
        let checkout = driver
            .step(Step::Clone, steps::clone::run(self, &target))
            .await?;
        let (fixed, left_out) = self.fix_packages(driver, &checkout, &target, plans).await?;
        let packages: Vec<PackagePlan> = fixed.iter().map(|f| f.package.clone()).collect();
        let mut plan = fix_plan::merge(&packages);
        plan.remaining.extend(left_out);

        let changed_files = changed_files(&fixed);
        // One test run for the packages together: the branch's tree is all of them, and a
        // repair is told of every package it moved.
        let tested = self
            .test_group(driver, &checkout, &target, &fixed, &changed_files)
            .await?;
        // The commit carries the repair beside the fixes, as a package job's does.
        let changed_files = steps::commit::with_repairs(changed_files, &tested);
        let (title, body) = text(
            &target.facts.ecosystem,
            &fixed,
            &plan,
            &tested,
            operation_id,
        );
        let message = format!(
            "{title}\n\nRemediates {} (operation {operation_id}).",
            plan.advisory_ids().join(", ")
        );
        let commit_step = steps::commit::commit_text(
            self,
            &checkout,
            &branch,
            title,
            body,
            changed_files,
            message,
        );
        let committed = driver.step(Step::Commit, commit_step).await?;
        let draft =
            tested.draft_reason.is_some() || fixed.iter().any(|f| self.unsure(&f.patch, &f.locked));
        let publication = Publication {
            checkout,
            target: &target,
            scope: FixScope::Group,
            branch: &branch,
            committed,
            plan: &plan,
            draft,
        };
        let published = publish(self, driver, publication).await?;
        let timings = driver.timings_json();
        Ok(success(fixed, branch, published, tested, &plan, timings))
    }

    /// The test step for the packages together, with the facts a repair round gives the model
    /// about each.
    async fn test_group(
        &self,
        driver: &mut StepDriver<'_>,
        checkout: &Checkout,
        target: &RemediationTarget,
        fixed: &[Fixed],
        changed: &[String],
    ) -> Result<Tested, StepFailure> {
        let facts: Vec<(VulnerabilityFacts, String)> = fixed
            .iter()
            .map(|f| steps::test::package_facts(&f.target, &f.patch))
            .collect();
        let fixes: Vec<FixFacts<'_>> = fixed
            .iter()
            .zip(&facts)
            .map(|(f, (facts, version))| FixFacts {
                facts,
                fixed_version: version,
                edits: &f.patch.edits,
            })
            .collect();
        let catalog = target.test_commands.as_ref();
        let test = steps::test::run(self, checkout, catalog, changed, &fixes);
        driver.step(Step::Test, test).await
    }

    /// Generates and locks each package's fix in turn, in the same clone. A package other
    /// than the trigger's whose fix cannot be written is left out, named, with its advisories.
    async fn fix_packages(
        &self,
        driver: &mut StepDriver<'_>,
        checkout: &Checkout,
        target: &RemediationTarget,
        plans: Vec<PackagePlan>,
    ) -> Result<(Vec<Fixed>, Vec<Remaining>), StepFailure> {
        let mut fixed: Vec<Fixed> = Vec::new();
        let mut left_out: Vec<Remaining> = Vec::new();
        for package in plans {
            let is_trigger = package.package == target.facts.package_name;
            let package_target = package_target(target, &package);
            let generate = steps::generate::run(self, checkout, &package_target);
            let patch = match driver.step(Step::Generate, generate).await {
                Ok(patch) => patch,
                // Nothing was written yet: another package's failure leaves it out, named.
                Err(failure) if !is_trigger && !failure.is_transient() => {
                    left_out.extend(package.plan.covered.iter().map(|a| Remaining {
                        advisory: a.clone(),
                        reason: format!("{} was left out: {}", package.package, failure.describe()),
                    }));
                    continue;
                }
                Err(failure) => return Err(failure),
            };
            let lock = steps::lock::run(self, checkout, &package_target, &patch);
            let locked = driver.step(Step::Lock, lock).await?;
            fixed.push(Fixed {
                package,
                target: package_target,
                patch,
                locked,
            });
        }
        Ok((fixed, left_out))
    }

    /// Every AFFECTED advisory of the ecosystem in the project, one plan per package; refuses
    /// at once when the group's pull request was closed by a person.
    async fn plan_grouped(
        &self,
        target: &RemediationTarget,
    ) -> Result<Vec<PackagePlan>, StepFailure> {
        let db = |e: diesel::result::Error| StepFailure::from_database(Step::Claim, e);
        let mut conn = self
            .pool
            .get()
            .await
            .map_err(|e| StepFailure::from_database(Step::Claim, e))?;
        let advisories =
            fixes::ecosystem_advisories(&mut conn, target.project_id, &target.facts.ecosystem)
                .await
                .map_err(db)?;
        let plans =
            fix_plan::plan_repository(&target.facts.package_name, &trigger_of(target), &advisories);
        let merged = fix_plan::merge(&plans);
        super::pipeline::refuse_if_closed(
            &mut conn,
            target,
            FixScope::Group,
            merged.target_version.as_deref(),
        )
        .await?;
        tracing::info!(
            packages = plans.len(),
            "planned the repository's grouped fix"
        );
        Ok(plans)
    }
}

/// Every file the packages' patches and lock updates changed, once each.
fn changed_files(fixed: &[Fixed]) -> Vec<String> {
    let mut changed: Vec<String> = Vec::new();
    for f in fixed {
        // Packages of one manifest change the same files.
        steps::commit::add_new(&mut changed, steps::commit::fix_files(&f.patch, &f.locked));
    }
    changed
}

/// The grouped job's result: the package job's, with the group and each package's part.
fn success(
    fixed: Vec<Fixed>,
    branch: String,
    published: Published,
    tested: Tested,
    plan: &fix_plan::FixPlan,
    timings: serde_json::Value,
) -> JobSuccess {
    let per_package: Vec<serde_json::Value> = fixed
        .iter()
        .map(|f| {
            json!({
                "package": f.package.package,
                "target_version": f.patch.target_version,
                "advisories": f.package.plan.advisory_ids(),
                "verification": f.locked.verification,
                "draft_reason": f.locked.draft_reason,
            })
        })
        .collect();
    let checks: Vec<Option<Verification>> = fixed
        .iter()
        .map(|f| f.locked.verification.clone())
        .collect();
    let tests = tested.report.clone();
    let (patch, locked) = combined(fixed);
    let author = patch.confidence();
    let mut success = write_back::success(Finished {
        published,
        branch,
        patch,
        locked,
        tested,
        plan,
        timings,
    });
    let checks: Vec<Option<&Verification>> = checks.iter().map(Option::as_ref).collect();
    success.rescore(Evidence {
        author,
        locks: &checks,
        tests: tests.as_ref(),
    });
    if let Some(output) = success.output.as_object_mut() {
        output.insert("group".to_owned(), json!("repository"));
        output.insert("packages".to_owned(), json!(per_package));
    }
    success
}

/// The triggering assessment as an advisory.
pub(super) fn trigger_of(target: &RemediationTarget) -> Advisory {
    Advisory {
        assessment_id: target.assessment_id,
        vulnerability_id: target.facts.vulnerability_id.clone(),
        aliases: target.facts.aliases.clone(),
        severity: target.facts.severity.clone(),
        summary: target.facts.summary.clone(),
        installed_version: target.facts.installed_version.clone(),
        fixed_versions: target.facts.fixed_versions.clone(),
    }
}

/// What the patcher and the lock step need for one package of the group: its first covered
/// advisory, aimed at the package plan's version.
fn package_target(target: &RemediationTarget, package: &PackagePlan) -> RemediationTarget {
    let first = &package.plan.covered[0];
    RemediationTarget {
        assessment_id: first.assessment_id,
        facts: FindingFacts {
            package_name: package.package.clone(),
            vulnerability_id: first.vulnerability_id.clone(),
            aliases: first.aliases.clone(),
            severity: first.severity.clone(),
            summary: first.summary.clone(),
            installed_version: first.installed_version.clone(),
            fixed_versions: package.plan.fixed_versions(&[]),
            ..target.facts.clone()
        },
        planned_version: package.plan.target_version.clone(),
        ..target.clone()
    }
}

/// The grouped pull request's title and body.
fn text(
    ecosystem: &Ecosystem,
    fixed: &[Fixed],
    plan: &fix_plan::FixPlan,
    tested: &Tested,
    operation_id: OperationId,
) -> (String, String) {
    let others: Vec<Vec<AdvisoryFacts<'_>>> = fixed
        .iter()
        .map(|f| {
            f.package.plan.covered[1..]
                .iter()
                .map(AdvisoryFacts::from)
                .collect()
        })
        .collect();
    let not_fixed: Vec<NotFixed<'_>> = plan.remaining.iter().map(NotFixed::from).collect();
    let changed: Vec<Vec<String>> = fixed
        .iter()
        .map(|f| steps::commit::fix_files(&f.patch, &f.locked))
        .collect();
    let packages: Vec<GroupedPackage<'_>> = fixed
        .iter()
        .enumerate()
        .map(|(i, f)| GroupedPackage {
            facts: PrFacts {
                advisory: AdvisoryFacts::from(&f.target),
                package: &f.target.facts.package_name,
                ecosystem: f.target.facts.ecosystem.as_str(),
                from_version: &f.target.facts.installed_version,
                to_version: f.patch.target_version.as_deref(),
                changed_files: &changed[i],
                explanation: Some(&f.patch.explanation),
                operation_id,
                written_by_llm: f.patch.model(),
                confidence: f.patch.confidence(),
                also_fixes: &others[i],
                // The group's unfixed advisories are listed once, after the packages.
                not_fixed: &[],
                lock: f.locked.pr_facts(),
                // The group's tests are one section, after the packages.
                tests: None,
            },
        })
        .collect();
    let title = pr_text::group_title(ecosystem.as_str(), &packages);
    let mut body = pr_text::group_body(
        ecosystem.as_str(),
        &packages,
        &not_fixed,
        tested.report.as_ref(),
        operation_id,
    );
    body.truncate(body.trim_end().len());
    body.push('\n');
    (title, body)
}

/// The packages' patches and lock results as one, for the write-back and the output (the
/// per-package verification goes into `output.packages`).
fn combined(fixed: Vec<Fixed>) -> (ProposedPatch, Locked) {
    let mut patch = ProposedPatch {
        edits: Vec::new(),
        author: PatchAuthor::Bump,
        target_version: None,
        explanation: String::new(),
    };
    let mut locked = Locked::default();
    let mut versions = Vec::new();
    let mut explanations = Vec::new();
    let mut drafts = Vec::new();
    for f in fixed {
        if let Some(version) = &f.patch.target_version {
            versions.push(format!("{} {version}", f.package.package));
        }
        explanations.push(format!("{}: {}", f.package.package, f.patch.explanation));
        // The least confident model answer speaks for the whole pull request.
        let less_confident = match (&patch.author, f.patch.confidence()) {
            (PatchAuthor::Bump, Some(_)) => true,
            (_, Some(c)) => patch.confidence().is_some_and(|mine| c < mine),
            _ => false,
        };
        if less_confident {
            patch.author = f.patch.author.clone();
        }
        patch.edits.extend(f.patch.edits);
        locked.changed.extend(f.locked.changed);
        if let Some(reason) = f.locked.draft_reason {
            drafts.push(format!("{}: {reason}", f.package.package));
        }
    }
    patch.target_version = Some(versions.join(", "));
    patch.explanation = explanations.join("; ");
    locked.draft_reason = (!drafts.is_empty()).then(|| drafts.join("; "));
    (patch, locked)
}
