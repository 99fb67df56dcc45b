//! [`install_notify_trigger`]: the statement-level triggers that announce a
//! table's changed ids on a `NOTIFY` channel.

use sqlx::postgres::PgConnection;
use sqlx::{Acquire, AssertSqlSafe, Postgres};

use crate::error::{Error, ErrorKind, Result};

/// The longest identifier PostgreSQL keeps whole (`NAMEDATALEN - 1`); a
/// longer one is silently truncated, so two long names could meet.
const MAX_IDENTIFIER_BYTES: usize = 63;

/// A `NOTIFY` payload must stay under 8000 bytes; the trigger keeps its
/// chunks under this, leaving room for the closing brackets.
pub(crate) const PAYLOAD_BUDGET: usize = 7900;

/// The name of the shared trigger function, created in the first schema of
/// the `search_path` (where the table usually lives).
pub const NOTIFY_FUNCTION: &str = "larder_notify_change";

/// The trigger function: one body for every table, told by its arguments
/// which channel to notify, under which name, and which column holds the
/// id (`TG_ARGV[0..3]`). Statement-level, with transition tables: one
/// `UPDATE` of 10,000 rows sends ten ~8 KB notifications instead of 10,000
/// (see the module docs for the measurements).
///
/// Its own `search_path` (`pg_catalog`, then `pg_temp` so that no
/// temporary object comes first) and qualified calls: it runs in every
/// writer's session, and a writer's `search_path` must not swap in a
/// `to_json(text)` of its own (an exact match beats `pg_catalog`'s
/// polymorphic one wherever it sits in the path).
fn function_sql() -> String {
    let budget = PAYLOAD_BUDGET;
    format!(
        r#"CREATE OR REPLACE FUNCTION {NOTIFY_FUNCTION}() RETURNS trigger
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $larder$
DECLARE
  chan text := TG_ARGV[0];
  head text := '{{"table":' || pg_catalog.to_json(TG_ARGV[1])::text || ',"ids":[';
  everything text := '{{"table":' || pg_catalog.to_json(TG_ARGV[1])::text || ',"all":true}}';
  id_col text := TG_ARGV[2];
  chunk text := '';
  item text;
  ids_sql text;
BEGIN
  IF TG_OP = 'TRUNCATE' THEN
    PERFORM pg_catalog.pg_notify(chan, everything);
    RETURN NULL;
  ELSIF TG_OP = 'INSERT' THEN
    ids_sql := pg_catalog.format('SELECT DISTINCT pg_catalog.to_json(%1$I::pg_catalog.text)::pg_catalog.text FROM larder_new WHERE %1$I IS NOT NULL', id_col);
  ELSIF TG_OP = 'DELETE' THEN
    ids_sql := pg_catalog.format('SELECT DISTINCT pg_catalog.to_json(%1$I::pg_catalog.text)::pg_catalog.text FROM larder_old WHERE %1$I IS NOT NULL', id_col);
  ELSE
    -- The old ids as well as the new: an UPDATE may change a row's id.
    ids_sql := pg_catalog.format('SELECT pg_catalog.to_json(%1$I::pg_catalog.text)::pg_catalog.text FROM larder_old WHERE %1$I IS NOT NULL '
                      'UNION SELECT pg_catalog.to_json(%1$I::pg_catalog.text)::pg_catalog.text FROM larder_new WHERE %1$I IS NOT NULL', id_col);
  END IF;
  FOR item IN EXECUTE ids_sql LOOP
    IF pg_catalog.octet_length(head) + pg_catalog.octet_length(item) + 2 > {budget} THEN
      -- An id too long for any payload: the listener drops the whole model.
      PERFORM pg_catalog.pg_notify(chan, everything);
      CONTINUE;
    END IF;
    IF chunk <> '' AND pg_catalog.octet_length(head) + pg_catalog.octet_length(chunk) + pg_catalog.octet_length(item) + 3 > {budget} THEN
      PERFORM pg_catalog.pg_notify(chan, head || chunk || ']}}');
      chunk := '';
    END IF;
    IF chunk = '' THEN chunk := item; ELSE chunk := chunk || ',' || item; END IF;
  END LOOP;
  IF chunk <> '' THEN
    PERFORM pg_catalog.pg_notify(chan, head || chunk || ']}}');
  END IF;
  RETURN NULL;
END
$larder$"#
    )
}

/// The triggers on `target` (a quoted, maybe qualified, name: the watched
/// table or one of its partitions) that announce `table`'s ids: a
/// statement-level trigger may carry transition tables for one event only,
/// so there is one per event. Each is `ENABLE ALWAYS`: it fires in
/// `session_replication_role = replica` sessions too (pg_restore,
/// logical replication, ETL tools), whose writes a cache must hear of.
fn trigger_sql(target: &str, table: &str, id_column: &str, channel: &str) -> Result<Vec<String>> {
    quote_identifier("id column", id_column)?;
    quote_identifier("channel", channel)?;
    let args = format!(
        "{}, {}, {}",
        quote_literal(channel),
        quote_literal(table),
        quote_literal(id_column)
    );
    let events = [
        ("insert", "INSERT", "REFERENCING NEW TABLE AS larder_new"),
        (
            "update",
            "UPDATE",
            "REFERENCING OLD TABLE AS larder_old NEW TABLE AS larder_new",
        ),
        ("delete", "DELETE", "REFERENCING OLD TABLE AS larder_old"),
        ("truncate", "TRUNCATE", ""),
    ];
    let mut statements = Vec::with_capacity(events.len() * 3);
    for (suffix, event, referencing) in events {
        let trigger = format!("\"larder_notify_{suffix}\"");
        statements.push(format!("DROP TRIGGER IF EXISTS {trigger} ON {target}"));
        statements.push(format!(
            "CREATE TRIGGER {trigger} AFTER {event} ON {target} {referencing} \
             FOR EACH STATEMENT EXECUTE FUNCTION {NOTIFY_FUNCTION}({args})"
        ));
        statements.push(format!(
            "ALTER TABLE ONLY {target} ENABLE ALWAYS TRIGGER {trigger}"
        ));
    }
    Ok(statements)
}

/// Every partition below the partitioned table `table_ident` (leaves and
/// intermediate partitioned tables, at any depth), as qualified quoted
/// names, parents first; none for a table that is not partitioned (or not
/// there: the parent's `CREATE TRIGGER` then says so). Foreign-table
/// partitions are left out: they cannot carry transition tables, and
/// their writes happen on another server.
async fn partitions(
    conn: &mut PgConnection,
    table_ident: &str,
) -> Result<Vec<String>, sqlx::Error> {
    let rows: Vec<(String, String)> = sqlx::query_as(
        "SELECT n.nspname::text, c.relname::text
         FROM pg_catalog.pg_partition_tree(pg_catalog.to_regclass($1)) t
         JOIN pg_catalog.pg_class c ON c.oid = t.relid
         JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
         WHERE t.level > 0 AND c.relkind IN ('r', 'p')
         ORDER BY t.level, n.nspname, c.relname",
    )
    .bind(table_ident)
    .fetch_all(&mut *conn)
    .await?;
    Ok(rows
        .into_iter()
        .map(|(schema, name)| format!("{}.{}", quote_catalog(&schema), quote_catalog(&name)))
        .collect())
}

/// Installs (or reinstalls) on `table` the triggers that send the ids of
/// the rows each `INSERT`, `UPDATE` or `DELETE` touched — the old and the
/// new id of an updated row — as `NOTIFY` payloads on `channel`, in chunks
/// under PostgreSQL's 8000-byte limit; a `TRUNCATE` announces the whole
/// table. A [`ChangeFeed`](super::ChangeFeed) listening on `channel` and
/// [watching](super::ChangeFeedBuilder::watch) `table` invalidates them.
///
/// `table` is one unqualified name, found through the connection's
/// `search_path`; the trigger function `larder_notify_change()` is created
/// (or replaced) in the first schema of that path. `id_column`'s values
/// are sent as text and must parse back with the model's id type's
/// `FromStr` (integers, `uuid` and `text` do).
///
/// **Partitioned tables.** PostgreSQL fires a statement-level trigger
/// only for statements that name its table: one on the parent does not
/// see `UPDATE products_2024 …`. So on a partitioned `table` the triggers
/// also go on every partition, at any depth (intermediate partitioned
/// tables and leaves; not foreign-table partitions), each announcing
/// `table`'s name. A write through the parent and a write addressed to a
/// partition both notify, once. Partitions created or attached **later**
/// have no triggers until this function runs again: run it after every
/// `CREATE TABLE … PARTITION OF` or `ATTACH PARTITION` (in the same
/// migration). A detached partition keeps its triggers, and its writes go
/// on invalidating `table`'s ids (harmless; drop its `larder_notify_*`
/// triggers if unwanted).
///
/// **Replication-role sessions.** The triggers are `ENABLE ALWAYS`: they
/// fire in sessions with `session_replication_role = replica` too — the
/// way `pg_restore --disable-triggers`, logical replication and most ETL
/// tools write, and how a bulk fix-up skips ordinary triggers — whose
/// changes the cache must hear of as much as any. (`ALTER TABLE … DISABLE
/// TRIGGER` still turns one off; this function turns it back on.)
///
/// The trigger function has its own `search_path` (`pg_catalog, pg_temp`)
/// and qualifies what it calls, so a writer's `search_path` cannot swap in
/// functions of its own.
///
/// Idempotent: it replaces the function and drops and recreates the
/// triggers (then enables them always), in one transaction under an
/// advisory lock, so concurrent installers (several instances starting at
/// once) do not trip over each other. Needs the privileges to create
/// functions in the schema and triggers on the table and its partitions;
/// run it at deploy time, as a migration would.
///
/// # Errors
/// [`ErrorKind::Config`] for a name that is empty, over 63 bytes
/// (PostgreSQL would truncate it) or holds a NUL byte — every other name is
/// quoted, never interpolated as SQL; [`ErrorKind::Database`] when
/// a statement fails (no table of that name, no such column, no privilege).
pub async fn install_notify_trigger<'c, A>(
    connection: A,
    table: &str,
    id_column: &str,
    channel: &str,
) -> Result<()>
where
    A: Acquire<'c, Database = Postgres>,
{
    let table_ident = quote_identifier("table", table)?;
    let triggers = trigger_sql(&table_ident, table, id_column, channel)?;
    let database = |what: &str, error: sqlx::Error| {
        Error::database(
            format!("installing the change-feed trigger on `{table}` ({what})"),
            error,
        )
    };
    let mut conn = connection
        .acquire()
        .await
        .map_err(|e| database("acquiring a connection", e))?;
    let mut tx = conn
        .begin()
        .await
        .map_err(|e| database("beginning a transaction", e))?;
    // Concurrent `CREATE OR REPLACE FUNCTION`s can fail with "tuple
    // concurrently updated": installers take turns.
    sqlx::query(
        "SELECT pg_catalog.pg_advisory_xact_lock(pg_catalog.hashtext('larder_notify_change'))",
    )
    .execute(&mut *tx)
    .await
    .map_err(|e| database("taking the advisory lock", e))?;
    execute(&mut tx, function_sql())
        .await
        .map_err(|e| database("creating the trigger function", e))?;
    for statement in triggers {
        execute(&mut tx, statement)
            .await
            .map_err(|e| database("creating the triggers", e))?;
    }
    // A partitioned table's statement-level triggers fire only for
    // statements that name it; one addressed to a partition fires the
    // partition's own. So every partition gets the triggers too, announcing
    // the watched table's name. A statement fires the triggers of the one
    // table it names only: no change is announced twice.
    let partitions = partitions(&mut tx, &table_ident)
        .await
        .map_err(|e| database("listing its partitions", e))?;
    for partition in partitions {
        for statement in trigger_sql(&partition, table, id_column, channel)? {
            execute(&mut tx, statement).await.map_err(|e| {
                database(
                    &format!("creating the triggers on partition {partition}"),
                    e,
                )
            })?;
        }
    }
    tx.commit().await.map_err(|e| database("committing", e))
}

async fn execute(conn: &mut PgConnection, statement: String) -> Result<(), sqlx::Error> {
    // Every name in `statement` went through `quote_identifier`,
    // `quote_catalog` or `quote_literal`.
    sqlx::raw_sql(AssertSqlSafe(statement))
        .execute(conn)
        .await
        .map(drop)
}

/// `name` as a quoted identifier (`"my ""odd"" table"`), or an error for
/// a name PostgreSQL cannot hold whole.
pub(crate) fn quote_identifier(what: &str, name: &str) -> Result<String> {
    if name.is_empty() || name.len() > MAX_IDENTIFIER_BYTES || name.contains('\0') {
        return Err(Error::new(
            ErrorKind::Config,
            format!(
                "the {what} name {name:?} cannot be used: it must be 1 to \
                 {MAX_IDENTIFIER_BYTES} bytes without NUL (PostgreSQL truncates longer names)"
            ),
        ));
    }
    Ok(format!("\"{}\"", name.replace('"', "\"\"")))
}

/// A name read from the catalog, quoted: it is whole already (at most 63
/// bytes, no NUL), so it needs no check.
fn quote_catalog(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}

/// `value` as an escape-string literal (`E'…'`): correct whatever
/// `standard_conforming_strings` says. Only called on names that passed
/// [`quote_identifier`] (no NUL).
fn quote_literal(value: &str) -> String {
    format!("E'{}'", value.replace('\\', "\\\\").replace('\'', "''"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn identifiers_are_quoted_and_bad_ones_refused() {
        assert_eq!(
            quote_identifier("table", "products").unwrap(),
            "\"products\""
        );
        assert_eq!(
            quote_identifier("table", "a\"; DROP TABLE x; --").unwrap(),
            "\"a\"\"; DROP TABLE x; --\""
        );
        assert!(quote_identifier("table", "").is_err());
        assert!(quote_identifier("table", "a\0b").is_err());
        assert!(quote_identifier("table", &"x".repeat(64)).is_err());
        assert!(quote_identifier("table", &"x".repeat(63)).is_ok());
    }

    #[test]
    fn literals_escape_quotes_and_backslashes() {
        assert_eq!(quote_literal("it's"), "E'it''s'");
        assert_eq!(quote_literal("a\\'b"), "E'a\\\\''b'");
    }
}
