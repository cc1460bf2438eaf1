//! The status vocabularies of the lifecycle, spelled as Chainloop's API spells them, and
//! mapped to SQL text columns: a row holds one of these spellings or reading it fails loudly
//! (the migrations add CHECK constraints with the same lists). Renaming a variant does not
//! compile until every use follows.

/// A type spelled by its `as_str`: `Display`, serde's `Serialize`, and diesel's `ToSql`/`FromSql`
/// for `Text` (reading with `$read`, a `fn(&str) -> diesel::deserialize::Result<$name>`), so
/// queries take and return the type itself. The type derives `AsExpression` and `FromSqlRow`
/// with `sql_type = Text`.
macro_rules! stored_as_text {
    ($name:ty, $read:expr) => {
        impl std::fmt::Display for $name {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str(self.as_str())
            }
        }

        impl serde::Serialize for $name {
            fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
                serializer.serialize_str(self.as_str())
            }
        }

        impl diesel::serialize::ToSql<diesel::sql_types::Text, diesel::pg::Pg> for $name {
            fn to_sql<'b>(
                &'b self,
                out: &mut diesel::serialize::Output<'b, '_, diesel::pg::Pg>,
            ) -> diesel::serialize::Result {
                <str as diesel::serialize::ToSql<diesel::sql_types::Text, diesel::pg::Pg>>::to_sql(
                    self.as_str(),
                    out,
                )
            }
        }

        impl diesel::deserialize::FromSql<diesel::sql_types::Text, diesel::pg::Pg> for $name {
            fn from_sql(bytes: diesel::pg::PgValue<'_>) -> diesel::deserialize::Result<Self> {
                let text = <String as diesel::deserialize::FromSql<
                    diesel::sql_types::Text,
                    diesel::pg::Pg,
                >>::from_sql(bytes)?;
                let read: fn(&str) -> diesel::deserialize::Result<$name> = $read;
                read(&text)
            }
        }
    };
}
pub(crate) use stored_as_text;

/// An enum stored as text: `as_str`/`parse`, and what [`stored_as_text`] gives, so queries
/// take and return the enum itself; reading an unknown spelling fails.
macro_rules! sql_text_enum {
    ($(#[$meta:meta])* $name:ident { $($(#[$vmeta:meta])* $variant:ident => $text:literal),+ $(,)? }) => {
        $(#[$meta])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, diesel::expression::AsExpression, diesel::deserialize::FromSqlRow)]
        #[diesel(sql_type = diesel::sql_types::Text)]
        pub enum $name { $($(#[$vmeta])* $variant),+ }

        impl $name {
            pub const ALL: &'static [$name] = &[$($name::$variant),+];

            pub fn as_str(self) -> &'static str {
                match self { $($name::$variant => $text),+ }
            }

            pub fn parse(text: &str) -> Option<Self> {
                match text { $($text => Some($name::$variant),)+ _ => None }
            }
        }

        $crate::lifecycle::status::stored_as_text!($name, |text: &str| {
            $name::parse(text).ok_or_else(|| {
                format!(concat!("unknown ", stringify!($name), " {:?} in the database"), text)
                    .into()
            })
        });
    };
}
pub(crate) use sql_text_enum;

sql_text_enum!(
    /// AsyncOperationResult status.
    OperationStatus {
        Pending => "ASYNC_OPERATION_STATUS_PENDING",
        Running => "ASYNC_OPERATION_STATUS_RUNNING",
        Succeeded => "ASYNC_OPERATION_STATUS_SUCCEEDED",
        Failed => "ASYNC_OPERATION_STATUS_FAILED",
        Cancelled => "ASYNC_OPERATION_STATUS_CANCELLED",
    }
);

impl OperationStatus {
    /// The statuses of an operation that has not ended; at most one per assessment (invariant 3).
    pub const LIVE: [OperationStatus; 2] = [OperationStatus::Pending, OperationStatus::Running];

    pub fn is_live(self) -> bool {
        Self::LIVE.contains(&self)
    }
}

sql_text_enum!(
    /// The worker pipeline's steps, in order; recorded on the operation as each starts.
    Step {
        /// Taking the operation (PENDING -> RUNNING) and loading what the job needs.
        Claim => "claim",
        Clone => "clone",
        /// Reading the repository and writing the fix (bump or LLM), checked by the policy.
        Generate => "generate",
        /// Updating the lock files with the ecosystem's tool, in the sandbox, and verifying.
        Lock => "lock",
        /// Running the project's own tests in the sandbox, on the fixed tree and on the
        /// default branch's (the baseline), and comparing them.
        Test => "test",
        Commit => "commit",
        Push => "push",
        PullRequest => "pull_request",
        WriteBack => "write_back",
    }
);

impl Step {
    /// Steps after which a cancel is refused: the branch may already be on the remote.
    pub const POINT_OF_NO_RETURN: [Step; 3] = [Step::Push, Step::PullRequest, Step::WriteBack];

    pub fn is_past_point_of_no_return(self) -> bool {
        Self::POINT_OF_NO_RETURN.contains(&self)
    }
}

sql_text_enum!(
    /// `assessments.remediation_status`: where the assessment's fix stands.
    RemediationStatus {
        /// A pull request is open for the fix.
        PrOpen => "PR_OPEN",
        /// The branch is pushed to a remote that has no pull requests (plain git).
        BranchPushed => "BRANCH_PUSHED",
        /// The pull request was merged (seen by a webhook or the reconciler).
        PrMerged => "PR_MERGED",
        /// The pull request was closed without merging; a later trigger for the same fix is
        /// refused rather than reopening it.
        PrClosed => "PR_CLOSED",
        /// The last remediation failed.
        Failed => "FAILED",
    }
);

sql_text_enum!(
    /// `operation_events.kind`: what one line of an operation's history records.
    EventKind {
        /// The operation's status changed (the event's `status` says to what).
        Status => "status",
        /// A step started (the event's `step` says which).
        Step => "step",
        /// An attempt failed (the event's `attempt` and `message` say which and why).
        AttemptError => "attempt_error",
        /// Free text: a cancel request, a skipped duplicate delivery, a discarded dead letter.
        Note => "note",
    }
);

impl RemediationStatus {
    /// What a fix's pull request can be on the forge (`remediation_fixes.state`); `Failed`
    /// belongs to an assessment's last job, never to a pull request.
    pub const PULL_REQUEST_STATES: [RemediationStatus; 4] = [
        RemediationStatus::PrOpen,
        RemediationStatus::BranchPushed,
        RemediationStatus::PrMerged,
        RemediationStatus::PrClosed,
    ];

    /// Merged or closed: the pull request no longer counts as open on the forge.
    pub fn is_settled_pull_request(self) -> bool {
        matches!(
            self,
            RemediationStatus::PrMerged | RemediationStatus::PrClosed
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_spelling_parses_back() {
        for status in OperationStatus::ALL {
            assert_eq!(OperationStatus::parse(status.as_str()), Some(*status));
        }
        for step in Step::ALL {
            assert_eq!(Step::parse(step.as_str()), Some(*step));
        }
        for status in RemediationStatus::ALL {
            assert_eq!(RemediationStatus::parse(status.as_str()), Some(*status));
        }
        for kind in EventKind::ALL {
            assert_eq!(EventKind::parse(kind.as_str()), Some(*kind));
        }
        assert_eq!(Step::parse("context"), None);
    }

    #[test]
    fn only_pending_and_running_are_live() {
        let live: Vec<_> = OperationStatus::ALL
            .iter()
            .filter(|s| s.is_live())
            .collect();
        assert_eq!(live, [&OperationStatus::Pending, &OperationStatus::Running]);
    }
}
