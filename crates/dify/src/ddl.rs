//! Dify 1.14.1's DDL for the tables this connector reads and cleans, with
//! Dify's indexes: what the connector tests create in a scratch database
//! and what `loupe-bench` loads generated rows into. It lives in `src/`
//! (not a test directory) because both the tests and the benchmark build
//! on it; it is plain text, so it costs nothing where unused.

/// The whole script: `CREATE TABLE` statements, then `CREATE INDEX`.
pub const DIFY_1_14_1: &str = include_str!("ddl/dify_1_14_1.sql");

/// The script's statements, comments dropped, split into tables and
/// indexes: a bulk load creates the tables, loads, then builds the indexes
/// (as a settled production database has them, densely packed).
pub fn statements() -> (Vec<String>, Vec<String>) {
    let text: String = DIFY_1_14_1
        .lines()
        .filter(|l| !l.trim_start().starts_with("--"))
        .collect::<Vec<_>>()
        .join("\n");
    text.split(';')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(str::to_owned)
        .partition(|s| !s.to_ascii_uppercase().starts_with("CREATE INDEX"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tables_come_before_indexes_and_cover_every_required_table() {
        let (tables, indexes) = statements();
        assert!(!indexes.is_empty());
        assert!(indexes.iter().all(|s| s.starts_with("CREATE INDEX")));
        for (table, _) in crate::schema::REQUIRED {
            let create = format!("CREATE TABLE {table} (");
            assert!(
                tables.iter().any(|s| s.starts_with(&create)),
                "no {create} in the DDL"
            );
        }
    }
}
