//! Typed ids for the values a function takes several of, so an assessment id can never be
//! passed where an operation id is expected. Each is a `Uuid` in SQL and in JSON.

macro_rules! uuid_id {
    ($(#[$meta:meta])* $name:ident) => {
        $(#[$meta])*
        #[derive(
            Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord,
            serde::Serialize, serde::Deserialize, diesel::expression::AsExpression, diesel::deserialize::FromSqlRow,
        )]
        #[diesel(sql_type = diesel::sql_types::Uuid)]
        #[serde(transparent)]
        pub struct $name(pub uuid::Uuid);

        impl $name {
            pub fn new_random() -> Self {
                $name(uuid::Uuid::new_v4())
            }
        }

        impl std::fmt::Display for $name {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                self.0.fmt(f)
            }
        }

        impl std::str::FromStr for $name {
            type Err = uuid::Error;

            fn from_str(text: &str) -> Result<Self, Self::Err> {
                uuid::Uuid::parse_str(text).map($name)
            }
        }

        impl From<uuid::Uuid> for $name {
            fn from(id: uuid::Uuid) -> Self {
                $name(id)
            }
        }

        impl From<$name> for uuid::Uuid {
            fn from(id: $name) -> Self {
                id.0
            }
        }

        impl diesel::serialize::ToSql<diesel::sql_types::Uuid, diesel::pg::Pg> for $name {
            fn to_sql<'b>(
                &'b self,
                out: &mut diesel::serialize::Output<'b, '_, diesel::pg::Pg>,
            ) -> diesel::serialize::Result {
                <uuid::Uuid as diesel::serialize::ToSql<diesel::sql_types::Uuid, diesel::pg::Pg>>::to_sql(
                    &self.0, out,
                )
            }
        }

        impl diesel::deserialize::FromSql<diesel::sql_types::Uuid, diesel::pg::Pg> for $name {
            fn from_sql(bytes: diesel::pg::PgValue<'_>) -> diesel::deserialize::Result<Self> {
                <uuid::Uuid as diesel::deserialize::FromSql<diesel::sql_types::Uuid, diesel::pg::Pg>>::from_sql(bytes)
                    .map($name)
            }
        }
    };
}

uuid_id!(
    /// An operation (`operations.id`): one remediation request and its job.
    OperationId
);
uuid_id!(
    /// An assessment (`assessments.id`): the resource an operation remediates.
    AssessmentId
);
uuid_id!(
    /// A project (`projects.id`): one repository.
    ProjectId
);
uuid_id!(
    /// An organisation (`organizations.id`): the tenant a token and every record belong to.
    OrganizationId
);
uuid_id!(
    /// A project version (`project_version_id` of a finding and of an operation): the scanned
    /// revision of a project, as the catalog names it. Carried through, never looked up here.
    ProjectVersionId
);
uuid_id!(
    /// A finding (`findings.id`): one vulnerability in one package of a project.
    FindingId
);
uuid_id!(
    /// A package fix (`remediation_fixes.id`): the unit of one pull request.
    FixId
);
