//! What one fix (one pull request, one row of `remediation_fixes`) covers: one package, or
//! every pending version fix of an ecosystem in the project (`worker.group = "repository"`).
//! The table keys a fix by package name; a group is kept under a name no package can have.

/// The package column of a grouped fix: not a valid package name in any ecosystem.
const GROUP_KEY: &str = "*";

/// One package's fix, or the ecosystem's group.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FixScope<'a> {
    Package(&'a str),
    Group,
}

impl<'a> FixScope<'a> {
    /// The scope a stored package column names.
    pub fn of_key(key: &'a str) -> Self {
        if key == GROUP_KEY {
            FixScope::Group
        } else {
            FixScope::Package(key)
        }
    }

    /// The package column the fix is kept under.
    pub fn key(self) -> &'a str {
        match self {
            FixScope::Package(name) => name,
            FixScope::Group => GROUP_KEY,
        }
    }
}

impl std::fmt::Display for FixScope<'_> {
    /// How messages name it: the package, or "the grouped fix".
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            FixScope::Package(name) => f.write_str(name),
            FixScope::Group => f.write_str("the grouped fix"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_group_and_a_package_round_trip_through_the_stored_key() {
        assert_eq!(FixScope::of_key(FixScope::Group.key()), FixScope::Group);
        assert_eq!(FixScope::of_key("lodash"), FixScope::Package("lodash"));
        assert_eq!(FixScope::Package("lodash").key(), "lodash");
        assert_ne!(FixScope::Group.key(), "");
    }
}
