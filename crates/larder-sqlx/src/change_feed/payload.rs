//! The notification payloads: what the trigger sends, the feed's own
//! markers, and how an unreadable one is read (as "anything may have
//! changed").

use serde_json::Value;

/// One notification, read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Change {
    /// These rows of `table` changed: `{"table":"products","ids":["1","2"]}`.
    Ids { table: String, ids: Vec<String> },
    /// Any row of `table` may have changed (a `TRUNCATE`, an id too long
    /// for a payload, ids that are not strings): `{"table":"products","all":true}`.
    All { table: String },
    /// A feed's [`caught_up`](super::ChangeFeed::caught_up) marker.
    Marker { feed: String, seq: u64 },
    /// Not a payload of ours: logged, and read as "any watched row may have
    /// changed" (failing closed).
    Unreadable,
}

/// The marker payload a feed sends to itself.
pub(crate) fn marker(feed: &str, seq: u64) -> String {
    serde_json::json!({ "larder_marker": feed, "seq": seq }).to_string()
}

pub(crate) fn parse(payload: &str) -> Change {
    let Ok(Value::Object(object)) = serde_json::from_str::<Value>(payload) else {
        return Change::Unreadable;
    };
    if let Some(feed) = object.get("larder_marker") {
        return match (feed.as_str(), object.get("seq").and_then(Value::as_u64)) {
            (Some(feed), Some(seq)) => Change::Marker {
                feed: feed.to_owned(),
                seq,
            },
            _ => Change::Unreadable,
        };
    }
    let Some(table) = object.get("table").and_then(Value::as_str) else {
        return Change::Unreadable;
    };
    let table = table.to_owned();
    if object.get("all").is_some() {
        return Change::All { table };
    }
    let Some(Value::Array(items)) = object.get("ids") else {
        return Change::All { table };
    };
    let ids: Option<Vec<String>> = items
        .iter()
        .map(|id| id.as_str().map(str::to_owned))
        .collect();
    match ids {
        Some(ids) => Change::Ids { table, ids },
        None => Change::All { table },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_ids_all_markers_and_fails_closed() {
        assert_eq!(
            parse(r#"{"table":"products","ids":["1","2"]}"#),
            Change::Ids {
                table: "products".into(),
                ids: vec!["1".into(), "2".into()]
            }
        );
        assert_eq!(
            parse(r#"{"table":"products","all":true}"#),
            Change::All {
                table: "products".into()
            }
        );
        // Ids that are not strings: the whole table.
        assert_eq!(
            parse(r#"{"table":"products","ids":[1]}"#),
            Change::All {
                table: "products".into()
            }
        );
        assert_eq!(
            parse(&marker("feed-1", 7)),
            Change::Marker {
                feed: "feed-1".into(),
                seq: 7
            }
        );
        assert_eq!(parse("42"), Change::Unreadable);
        assert_eq!(parse("not json"), Change::Unreadable);
        assert_eq!(parse(r#"{"ids":["1"]}"#), Change::Unreadable);
    }
}
