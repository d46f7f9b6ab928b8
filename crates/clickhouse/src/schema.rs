//! The `spans` table in two profiles, chosen by probing `SELECT version()`:
//!
//! - **modern** (ClickHouse ≥ 20.1; tested on chDB 26.9): `LowCardinality`,
//!   `Map(String, String)` for attributes and tags, column codecs, bloom
//!   filter skip indexes on the ids, trigram bloom filters on the
//!   lowercased texts, a minmax index on `start_time`, and a table TTL when
//!   retention is set;
//! - **legacy** (Debian 12's ClickHouse 18.16): plain types, each map as a
//!   keys array and a values array, none of the above.
//!
//! Both are a `ReplacingMergeTree(_version)` keyed by what never changes
//! for a span: its project, the hour and day it was first filed under
//! (`filed_at`: its first known start, else end, else arrival time) and its
//! span id. Every write stores the whole merged row with a higher version;
//! reads say `FINAL`, so each span is read once, in its latest version,
//! whether or not the background merge has run. Times are `Int64`
//! nanoseconds in both profiles (exact for Loupe's whole range, one SQL
//! dialect for both); docs/CLICKHOUSE.md has the full DDL.

use crate::Error;
use crate::client::Client;

/// Which dialect the server speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Profile {
    /// Current ClickHouse (≥ 20.1).
    Modern,
    /// ClickHouse 18.16.
    Legacy,
}

impl Profile {
    /// The profile for a `version()` text (`18.16.1`, `26.9.2.1`).
    pub fn of_version(version: &str) -> Result<Self, Error> {
        let major: u32 = version
            .trim()
            .split('.')
            .next()
            .and_then(|m| m.parse().ok())
            .ok_or_else(|| Error::Decode(format!("version() answered {version:?}")))?;
        Ok(if major >= 20 {
            Profile::Modern
        } else {
            Profile::Legacy
        })
    }

    /// The name used in logs and docs.
    pub fn as_str(self) -> &'static str {
        match self {
            Profile::Modern => "modern",
            Profile::Legacy => "legacy",
        }
    }
}

/// Where the spans live: the table written and read, and the local table
/// under it when a cluster shards it.
#[derive(Debug, Clone)]
pub(crate) struct Layout {
    pub profile: Profile,
    pub database: String,
    pub cluster: Option<String>,
    pub retention_days: u32,
    /// `ReplicatedReplacingMergeTree` (ZooKeeper, `{shard}` and `{replica}`
    /// macros on every server).
    pub replicated: bool,
}

/// One stored column: its name and its type in each profile.
struct Col {
    name: &'static str,
    modern: &'static str,
    legacy: &'static str,
}

const fn col(name: &'static str, modern: &'static str, legacy: &'static str) -> Col {
    Col {
        name,
        modern,
        legacy,
    }
}

const S: &str = "Nullable(String)";
const LC: &str = "LowCardinality(Nullable(String))";
const ZS: &str = "Nullable(String) CODEC(ZSTD(3))";
const I64: &str = "Nullable(Int64)";
const T64: &str = "Nullable(Int64) CODEC(Delta, ZSTD(1))";

/// The stored columns besides the maps, in insert order.
const COLUMNS: &[Col] = &[
    col("project", "LowCardinality(String)", "String"),
    col("span_id", "String", "String"),
    col(
        "filed_at",
        "DateTime('UTC') CODEC(Delta, ZSTD(1))",
        "DateTime('UTC')",
    ),
    col("_version", "UInt64", "UInt64"),
    col("trace_id", S, S),
    col("parent_span_id", S, S),
    col("run_id", S, S),
    col("session_id", S, S),
    col("user_id", S, S),
    col("app_id", LC, S),
    col("app_name", LC, S),
    col("workflow_id", LC, S),
    col("workflow_version", LC, S),
    col("span_kind", LC, S),
    col("node_type", LC, S),
    col("name", LC, S),
    col("status", LC, S),
    col("raw_status", LC, S),
    col("error_message", ZS, S),
    col("error_class", LC, S),
    col("start_time", T64, I64),
    col("end_time", T64, I64),
    col("duration", I64, I64),
    col("model_name", LC, S),
    col("model_provider", LC, S),
    col("input_tokens", I64, I64),
    col("output_tokens", I64, I64),
    col("total_tokens", I64, I64),
    col("cost", "Nullable(Float64)", "Nullable(Float64)"),
    col("currency", LC, S),
    col("tool_name", LC, S),
    col("input", ZS, S),
    col("output", ZS, S),
    col("source", LC, S),
    col("ingest_version", "Nullable(UInt32)", "Nullable(UInt32)"),
];

/// The two map columns (`attributes`, `tags`).
pub(crate) const MAPS: [&str; 2] = ["attributes", "tags"];

#[cfg(test)]
impl Layout {
    /// Database `loupe`, one server, no retention: what the row and SQL
    /// tests need.
    pub(crate) fn plain(profile: Profile) -> Self {
        Self {
            profile,
            database: "loupe".into(),
            cluster: None,
            retention_days: 0,
            replicated: false,
        }
    }
}

impl Layout {
    /// The table reads and writes go through (`spans`: the table itself,
    /// or the `Distributed` table over a cluster).
    pub fn table(&self) -> String {
        format!("{}.spans", self.database)
    }

    /// The MergeTree table (`spans_local` under a cluster).
    fn local(&self) -> String {
        self.local_of("spans")
    }

    /// The MergeTree table under `table`: `<table>_local` under a cluster
    /// (the `Distributed` table takes the name), else `table` itself.
    pub(crate) fn local_of(&self, table: &str) -> String {
        match self.cluster {
            Some(_) => format!("{}.{table}_local", self.database),
            None => format!("{}.{table}", self.database),
        }
    }

    /// The columns of the table, in the profile's types.
    fn column_defs(&self) -> Vec<String> {
        let mut defs: Vec<String> = COLUMNS
            .iter()
            .map(|c| {
                let ty = match self.profile {
                    Profile::Modern => c.modern,
                    Profile::Legacy => c.legacy,
                };
                format!("    {} {ty}", c.name)
            })
            .collect();
        for m in MAPS {
            match self.profile {
                Profile::Modern => {
                    defs.push(format!("    {m} Map(String, String) CODEC(ZSTD(1))"));
                }
                Profile::Legacy => {
                    defs.push(format!("    {m}_keys Array(String)"));
                    defs.push(format!("    {m}_values Array(String)"));
                }
            }
        }
        if self.profile == Profile::Modern {
            for (name, expr, ty) in [
                ("span_id", "span_id", "bloom_filter(0.01)"),
                ("trace_id", "trace_id", "bloom_filter(0.01)"),
                ("run_id", "run_id", "bloom_filter(0.01)"),
                ("start_time", "start_time", "minmax"),
            ] {
                defs.push(format!(
                    "    INDEX idx_{name} {expr} TYPE {ty} GRANULARITY 1"
                ));
            }
            // Full text: trigram blooms of the lowercased texts, the
            // expression `sql.rs` searches with `LIKE`.
            for c in crate::sql::TEXT_COLUMNS {
                defs.push(format!(
                    "    INDEX idx_text_{c} lowerUTF8(ifNull({c}, '')) \
                     TYPE ngrambf_v1(3, 32768, 2, 0) GRANULARITY 1"
                ));
            }
        }
        defs
    }

    /// `CREATE TABLE` of the MergeTree table.
    pub fn create_local(&self) -> String {
        let on = self.on_cluster();
        let ttl = match (self.profile, self.retention_days) {
            (Profile::Modern, d) if d > 0 => format!("\nTTL filed_at + INTERVAL {d} DAY"),
            _ => String::new(),
        };
        format!(
            "CREATE TABLE IF NOT EXISTS {}{on} (\n{}\n)\nENGINE = {}\n\
             PARTITION BY toYYYYMMDD(filed_at)\n\
             ORDER BY (project, toStartOfHour(filed_at), span_id){ttl}\n\
             SETTINGS index_granularity = 8192",
            self.local(),
            self.column_defs().join(",\n"),
            self.engine(),
        )
    }

    /// The table engine: replicated through ZooKeeper when asked, under a
    /// path naming the database and table (the server's `{shard}` macro
    /// keeps shards apart, `{replica}` names this server).
    fn engine(&self) -> String {
        self.engine_of("spans", "ReplacingMergeTree", "_version")
    }

    /// `family(args)` for the MergeTree table under `table`, or its
    /// `Replicated` form under the path `engine` describes.
    pub(crate) fn engine_of(&self, table: &str, family: &str, args: &str) -> String {
        if self.replicated {
            let local = self.local_of(table);
            let name = local.rsplit('.').next().unwrap_or(&local);
            format!(
                "Replicated{family}('/clickhouse/tables/{{shard}}/{}/{name}', '{{replica}}', {args})",
                self.database
            )
        } else {
            format!("{family}({args})")
        }
    }

    /// `CREATE TABLE` of the `Distributed` table, under a cluster. Rows are
    /// sharded by span id, so every version of a span lands on one shard
    /// and `FINAL` there sees them all.
    pub fn create_distributed(&self) -> Option<String> {
        self.distributed_over("spans", "cityHash64(project, span_id)")
    }

    /// `CREATE TABLE` of the `Distributed` table `table` over
    /// `<table>_local`, sharded by `key`, under a cluster.
    pub(crate) fn distributed_over(&self, table: &str, key: &str) -> Option<String> {
        let cluster = self.cluster.as_ref()?;
        Some(format!(
            "CREATE TABLE IF NOT EXISTS {}.{table}{} AS {} \
             ENGINE = Distributed({cluster}, {}, {table}_local, {key})",
            self.database,
            self.on_cluster(),
            self.local_of(table),
            self.database,
        ))
    }

    fn on_cluster(&self) -> String {
        // Without ZooKeeper (the Debian servers) `ON CLUSTER` cannot run:
        // each server gets the DDL itself (docs/CLICKHOUSE.md, "Cluster").
        String::new()
    }

    /// Every statement that makes the schema, in order.
    pub fn ddl(&self) -> Vec<String> {
        let mut out = vec![format!("CREATE DATABASE IF NOT EXISTS {}", self.database)];
        out.push(self.create_local());
        out.extend(self.create_distributed());
        out.push(self.create_hours_local());
        out.extend(self.create_hours_distributed());
        out
    }

    /// SQL of a map column's keys and values arrays.
    pub fn map_arrays(&self, map: &str) -> (String, String) {
        match self.profile {
            Profile::Modern => (format!("mapKeys({map})"), format!("mapValues({map})")),
            Profile::Legacy => (format!("{map}_keys"), format!("{map}_values")),
        }
    }

    /// SQL of `map[key]`: null when the key is absent.
    pub fn map_get(&self, map: &str, key_literal: &str) -> String {
        match self.profile {
            Profile::Modern => {
                format!("if(mapContains({map}, {key_literal}), {map}[{key_literal}], NULL)")
            }
            Profile::Legacy => format!(
                "if(has({map}_keys, {key_literal}), {map}_values[indexOf({map}_keys, {key_literal})], NULL)"
            ),
        }
    }

    /// SQL of "the map holds the key".
    pub fn map_has(&self, map: &str, key_literal: &str) -> String {
        match self.profile {
            Profile::Modern => format!("mapContains({map}, {key_literal})"),
            Profile::Legacy => format!("has({map}_keys, {key_literal})"),
        }
    }
}

/// Asks the server its version and picks the profile.
pub(crate) async fn probe(client: &Client) -> Result<(String, Profile), Error> {
    let text = client.execute("SELECT version()", false).await?;
    let version = text.trim().to_owned();
    let profile = Profile::of_version(&version)?;
    Ok((version, profile))
}

/// Version of the tables' layout this build writes and reads; recorded in
/// `<database>.loupe_meta` with the profile. A later build that changes
/// the layout raises it and migrates (or refuses) older databases.
pub const SCHEMA_VERSION: u32 = 1;

/// Reads `loupe_meta`, the profile a database was made with: `None` for a
/// database Loupe has not set up yet.
/// A database holding a `spans` table but no record is refused (not made
/// by Loupe, or by a build before records), as is one from another schema
/// version.
pub(crate) async fn recorded(client: &Client, database: &str) -> Result<Option<Profile>, Error> {
    let exists = |table: &str| format!("EXISTS TABLE {database}.{table}");
    if client.execute(&exists("loupe_meta"), false).await?.trim() != "1" {
        if client.execute(&exists("spans"), false).await?.trim() == "1" {
            return Err(Error::Config(format!(
                "store.clickhouse.database: {database}.spans exists but {database}.loupe_meta \
                 does not: the table was not made by this version of Loupe; use another database"
            )));
        }
        return Ok(None);
    }
    let rows = client
        .select(&format!("SELECT key, value FROM {database}.loupe_meta"))
        .await?
        .rows;
    let get = |key: &str| {
        rows.iter()
            .find(|r| r.first().and_then(|k| k.as_str()) == Some(key))
            .and_then(|r| r.get(1))
            .and_then(|v| v.as_str())
            .map(str::to_owned)
    };
    let version = get("schema_version")
        .and_then(|v| v.parse::<u32>().ok())
        .ok_or_else(|| Error::Decode(format!("{database}.loupe_meta has no schema_version")))?;
    let profile = match get("profile").as_deref() {
        Some("modern") => Profile::Modern,
        Some("legacy") => Profile::Legacy,
        other => {
            return Err(Error::Decode(format!(
                "{database}.loupe_meta names profile {other:?}"
            )));
        }
    };
    if version != SCHEMA_VERSION {
        return Err(Error::Config(format!(
            "store.clickhouse.database: {database} holds schema version {version}; this build \
             reads version {SCHEMA_VERSION} (use a build of that version, or another database)"
        )));
    }
    Ok(Some(profile))
}

/// Creates the database and tables when missing, recording the schema
/// version and profile first.
pub(crate) async fn ensure(client: &Client, layout: &Layout) -> Result<(), Error> {
    let db = &layout.database;
    let mut statements = layout.ddl();
    let tables = statements.split_off(1);
    for statement in statements {
        client.execute(&statement, false).await?;
    }
    if recorded(client, db).await?.is_none() {
        client
            .execute(
                &format!("CREATE TABLE IF NOT EXISTS {db}.loupe_meta (key String, value String) ENGINE = TinyLog"),
                false,
            )
            .await?;
        let rows = format!(
            "{{\"key\":\"schema_version\",\"value\":\"{SCHEMA_VERSION}\"}}\n\
             {{\"key\":\"profile\",\"value\":\"{}\"}}\n",
            layout.profile.as_str()
        );
        client
            .insert("loupe_meta", rows.into_bytes(), false)
            .await?;
    }
    for statement in tables {
        client.execute(&statement, false).await?;
    }
    // `IF NOT EXISTS` keeps a table made before: it must be what the
    // config asks for, or writes would not be replicated as promised.
    let local = layout.local();
    let name = local.rsplit('.').next().unwrap_or(&local);
    let engine = client
        .execute(
            &format!(
                "SELECT engine FROM system.tables WHERE database = '{db}' AND name = '{name}'"
            ),
            false,
        )
        .await?;
    let engine = engine.trim();
    if engine.starts_with("Replicated") != layout.replicated {
        return Err(Error::Config(format!(
            "store.clickhouse.replicated: {local} is a {engine} table, made with replicated = {}; \
             set that, or use another database",
            !layout.replicated
        )));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn layout(profile: Profile, cluster: Option<&str>) -> Layout {
        Layout {
            profile,
            database: "loupe".into(),
            cluster: cluster.map(str::to_owned),
            retention_days: 30,
            replicated: false,
        }
    }

    #[test]
    fn versions_pick_the_profile() {
        assert_eq!(Profile::of_version("18.16.1").ok(), Some(Profile::Legacy));
        assert_eq!(
            Profile::of_version("26.9.2.1\n").ok(),
            Some(Profile::Modern)
        );
        assert!(Profile::of_version("garbage").is_err());
    }

    #[test]
    fn the_legacy_schema_uses_nothing_18_16_lacks() {
        let ddl = layout(Profile::Legacy, None).ddl().join("\n");
        for absent in [
            "LowCardinality",
            "Map(",
            "CODEC",
            "INDEX",
            "TTL",
            "DateTime64",
        ] {
            assert!(!ddl.contains(absent), "{absent} in {ddl}");
        }
        assert!(ddl.contains("attributes_keys Array(String)"));
    }

    #[test]
    fn the_modern_schema_has_codecs_indexes_maps_and_ttl() {
        let ddl = layout(Profile::Modern, None).ddl().join("\n");
        for present in [
            "LowCardinality(String)",
            "Map(String, String)",
            "CODEC(ZSTD",
            "bloom_filter",
            "TTL filed_at + INTERVAL 30 DAY",
            "ReplacingMergeTree(_version)",
            "PARTITION BY toYYYYMMDD(filed_at)",
        ] {
            assert!(ddl.contains(present), "{present} missing in {ddl}");
        }
    }

    #[test]
    fn a_cluster_gets_a_local_table_and_a_distributed_one() {
        let l = layout(Profile::Legacy, Some("two_shards"));
        let ddl = l.ddl();
        assert_eq!(ddl.len(), 5);
        assert!(ddl[1].contains("loupe.spans_local"));
        assert!(ddl[2].contains("Distributed(two_shards, loupe, spans_local"));
        assert_eq!(l.table(), "loupe.spans");
        // The hour tier the same way.
        assert!(ddl[3].contains("loupe.span_hours_local"));
        assert!(ddl[4].contains("Distributed(two_shards, loupe, span_hours_local"));
    }

    #[test]
    fn a_replicated_table_names_its_database_table_and_the_server_macros() {
        let mut l = layout(Profile::Legacy, Some("replicas"));
        l.replicated = true;
        let ddl = l.ddl();
        assert!(
            ddl[1].contains(
                "ENGINE = ReplicatedReplacingMergeTree('/clickhouse/tables/{shard}/loupe/spans_local', '{replica}', _version)"
            ),
            "{}",
            ddl[1]
        );
        let mut one = layout(Profile::Modern, None);
        one.replicated = true;
        assert!(
            one.create_local()
                .contains("/clickhouse/tables/{shard}/loupe/spans'")
        );
    }
}

#[cfg(test)]
mod docs {
    use super::*;

    /// The DDL of a profile as docs/CLICKHOUSE.md shows it (database
    /// `loupe`, retention 90 days).
    fn documented(profile: Profile) -> String {
        let l = Layout {
            profile,
            database: "loupe".into(),
            cluster: None,
            retention_days: 90,
            replicated: false,
        };
        format!(
            "```sql\n{};\n```\n\nand its hour tier:\n\n```sql\n{};\n```",
            l.create_local(),
            l.create_hours_local()
        )
    }

    #[test]
    fn docs_show_the_ddl_the_code_runs() {
        let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../../docs/CLICKHOUSE.md");
        let doc = std::fs::read_to_string(path).unwrap_or_default();
        let mut missing = Vec::new();
        for p in [Profile::Modern, Profile::Legacy] {
            let want = documented(p);
            if std::env::var_os("UPDATE_GOLDEN").is_some() {
                println!("<<{}>>\n{want}\n<<end>>", p.as_str());
            }
            if !doc.contains(&want) {
                missing.push(p.as_str());
            }
        }
        assert!(
            missing.is_empty(),
            "docs/CLICKHOUSE.md lacks the DDL of {missing:?} (UPDATE_GOLDEN=1 \
             cargo test -p loupe-clickhouse docs_show -- --nocapture prints it)"
        );
    }
}
