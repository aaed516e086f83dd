//! Shard and action-category inference from a tool's name prefix (SPEC §3).
//!
//! | prefix | shard | category |
//! |---|---|---|
//! | `ad_`, `entra_` | `identity` | `READ` |
//! | `workday_` | `workday` | `READ` |
//! | `helix_` | `itsm` | `READ` |
//! | `lansweeper_`, `intune_` | `assets` | `READ` |
//! | `fedex_` | `logistics` | `READ` |
//! | `audit_` | `audit` | `AUDIT` |
//! | `generate_` | `audit` | `REPORT` |
//! | anything else | `unknown` | `READ` |
//!
//! Both tables are configurable; the first matching prefix wins, after the whole tool names of
//! [`Taxonomy::tool_categories`].

/// Prefix tables used to fill `shard` and `action_category` when a record does not give them.
///
/// ```
/// let taxonomy = nexus_audit::Taxonomy::default()
///     .with_shard("jira_", "itsm")
///     .with_category("jira_create_", "WRITE");
/// assert_eq!(taxonomy.shard_for("jira_create_issue"), "itsm");
/// assert_eq!(taxonomy.category_for("jira_create_issue"), "WRITE");
/// assert_eq!(taxonomy.shard_for("ad_get_user"), "identity");
/// ```
#[derive(Clone, Debug)]
#[non_exhaustive]
pub struct Taxonomy {
    /// `(tool name prefix, shard)`, first match wins.
    pub shards: Vec<(String, String)>,
    /// Shard of a tool that matches no prefix.
    pub default_shard: String,
    /// `(tool name prefix, category)`, first match wins.
    pub categories: Vec<(String, String)>,
    /// `(whole tool name, category)`, tried before `categories`.
    pub tool_categories: Vec<(String, String)>,
    /// Category of a tool that matches no prefix.
    pub default_category: String,
}

impl Default for Taxonomy {
    fn default() -> Self {
        let pairs = |list: &[(&str, &str)]| {
            list.iter()
                .map(|(p, v)| ((*p).to_owned(), (*v).to_owned()))
                .collect()
        };
        Taxonomy {
            shards: pairs(&[
                ("ad_", "identity"),
                ("entra_", "identity"),
                ("workday_", "workday"),
                ("helix_", "itsm"),
                ("lansweeper_", "assets"),
                ("intune_", "assets"),
                ("fedex_", "logistics"),
                ("audit_", "audit"),
                ("generate_", "audit"),
            ]),
            default_shard: "unknown".to_owned(),
            categories: pairs(&[("audit_", "AUDIT"), ("generate_", "REPORT")]),
            tool_categories: Vec::new(),
            default_category: "READ".to_owned(),
        }
    }
}

impl Taxonomy {
    /// No prefixes: every tool gets shard `unknown` and category `READ`.
    #[must_use]
    pub fn empty() -> Self {
        Taxonomy {
            shards: Vec::new(),
            categories: Vec::new(),
            ..Taxonomy::default()
        }
    }

    /// Maps tools starting with `prefix` to `shard`, before every rule already there.
    #[must_use]
    pub fn with_shard(mut self, prefix: impl Into<String>, shard: impl Into<String>) -> Self {
        self.shards.insert(0, (prefix.into(), shard.into()));
        self
    }

    /// Maps tools starting with `prefix` to `category`, before every rule already there.
    #[must_use]
    pub fn with_category(mut self, prefix: impl Into<String>, category: impl Into<String>) -> Self {
        self.categories.insert(0, (prefix.into(), category.into()));
        self
    }

    /// Sets the shard of a tool that matches no prefix.
    #[must_use]
    pub fn with_default_shard(mut self, shard: impl Into<String>) -> Self {
        self.default_shard = shard.into();
        self
    }

    /// Sets the category of a tool that matches no prefix.
    #[must_use]
    pub fn with_default_category(mut self, category: impl Into<String>) -> Self {
        self.default_category = category.into();
        self
    }

    /// The shard of a tool.
    #[must_use]
    pub fn shard_for(&self, tool: &str) -> &str {
        lookup(&self.shards, tool).unwrap_or(&self.default_shard)
    }

    /// The action category of a tool.
    #[must_use]
    pub fn category_for(&self, tool: &str) -> &str {
        self.tool_categories
            .iter()
            .find(|(name, _)| name == tool)
            .map(|(_, v)| v.as_str())
            .or_else(|| lookup(&self.categories, tool))
            .unwrap_or(&self.default_category)
    }
}

fn lookup<'a>(table: &'a [(String, String)], tool: &str) -> Option<&'a str> {
    table
        .iter()
        .find(|(prefix, _)| tool.starts_with(prefix.as_str()))
        .map(|(_, v)| v.as_str())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_tables_follow_the_spec() {
        let t = Taxonomy::default();
        assert_eq!(t.shard_for("entra_get_user"), "identity");
        assert_eq!(t.shard_for("workday_get_worker"), "workday");
        assert_eq!(t.shard_for("helix_create_ticket"), "itsm");
        assert_eq!(t.shard_for("intune_list_devices"), "assets");
        assert_eq!(t.shard_for("fedex_track"), "logistics");
        assert_eq!(t.shard_for("generate_report"), "audit");
        assert_eq!(t.shard_for("search"), "unknown");
        assert_eq!(t.category_for("audit_log_stats"), "AUDIT");
        assert_eq!(t.category_for("generate_report"), "REPORT");
        assert_eq!(t.category_for("ad_get_user"), "READ");
    }
}
