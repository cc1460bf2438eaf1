//! Step `generate`: the patcher reads what it needs from the clone and writes the fix (the
//! deterministic bump, or the LLM), and the patch policy checks it before it is returned.

use super::clone::Checkout;
use crate::db::models::RemediationTarget;
use crate::worker::context::Pipeline;
use crate::worker::failure::StepFailure;
use crate::worker::patcher::ProposedPatch;

pub async fn run(
    pipeline: &Pipeline,
    checkout: &Checkout,
    target: &RemediationTarget,
) -> Result<ProposedPatch, StepFailure> {
    pipeline
        .patcher
        .write_fix(&checkout.work_tree, &checkout.git, target)
        .await
}
