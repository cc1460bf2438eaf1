//! The records of an import file that refer to another record, named as errors name them:
//! the record, the list and field of the file that holds the reference, and what it refers to.
//! The tenancy check and the writer both report a bad reference by these names.

/// What kind of record a check is about, and the field of the file that places it.
#[derive(Debug, Clone, Copy)]
pub(super) struct Record {
    pub what: &'static str,
    pub list: &'static str,
    pub field: &'static str,
    /// What the field refers to.
    pub refers_to: &'static str,
}

impl Record {
    pub const PROJECT: Record = Record {
        what: "project",
        list: "projects",
        field: "organization_id",
        refers_to: "organisation",
    };
    pub const FINDING: Record = Record {
        what: "finding",
        list: "findings",
        field: "project_id",
        refers_to: "project",
    };
    pub const ASSESSMENT: Record = Record {
        what: "assessment",
        list: "assessments",
        field: "finding_id",
        refers_to: "finding",
    };
}
