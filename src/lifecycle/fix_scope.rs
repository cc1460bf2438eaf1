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

    /// Package names of every shape the ecosystems have: scoped npm names, dotted and dashed
    /// PyPI names, Go module paths, Maven coordinates, and names that start or end with
    /// characters near the group key.
    const PACKAGE_NAMES: &[&str] = &[
        "lodash",
        "@types/node",
        "zope.interface",
        "typing-extensions",
        "golang.org/x/net",
        "github.com/gin-gonic/gin/v2",
        "org.apache.commons:commons-lang3",
        "serde_json",
        "a",
        "**",
        " *",
        "*lodash",
        "lodash*",
    ];

    #[test]
    fn the_group_is_stored_under_the_star() {
        assert_eq!(FixScope::Group.key(), "*");
        assert_eq!(FixScope::of_key(FixScope::Group.key()), FixScope::Group);
    }

    #[test]
    fn a_package_is_stored_under_its_name_and_read_back_as_that_package() {
        for &name in PACKAGE_NAMES {
            let scope = FixScope::Package(name);
            assert_eq!(scope.key(), name);
            assert_eq!(FixScope::of_key(scope.key()), scope, "{name:?}");
        }
    }

    #[test]
    fn no_package_name_is_read_back_as_the_group() {
        for &name in PACKAGE_NAMES {
            assert_ne!(FixScope::of_key(name), FixScope::Group, "{name:?}");
            assert_ne!(
                FixScope::Package(name).key(),
                FixScope::Group.key(),
                "{name:?}"
            );
        }
    }

    #[test]
    fn messages_name_the_package_or_the_grouped_fix() {
        assert_eq!(FixScope::Package("lodash").to_string(), "lodash");
        assert_eq!(FixScope::Group.to_string(), "the grouped fix");
    }
}
