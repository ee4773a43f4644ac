//! Decision request bodies from `aftercart synth requests` (one JSON object per line),
//! each sent with a fresh transaction id so no request is a replay of an earlier one
//! (a replay is answered from the replay cache, which would flatter the server).

use std::io;
use std::path::Path;

/// A body split around the end of its transaction id, so a unique suffix can be put
/// there without parsing the JSON again for every request.
pub struct Body {
    head: String,
    tail: String,
}

/// What precedes the transaction id in a generated body (the same match as
/// `decisions.lua`: the first `"id":"T-`, which is the transaction's).
const ID_MARK: &str = "\"id\":\"T-";

impl Body {
    pub fn parse(line: &str) -> Option<Body> {
        let start = line.find(ID_MARK)? + ID_MARK.len();
        let end = start + line[start..].find('"')?;
        Some(Body {
            head: line[..end].to_string(),
            tail: line[end..].to_string(),
        })
    }

    /// The body with `-suffix` appended to its transaction id.
    pub fn with_suffix(&self, suffix: &str) -> Vec<u8> {
        let mut out = Vec::with_capacity(self.head.len() + suffix.len() + 1 + self.tail.len());
        out.extend_from_slice(self.head.as_bytes());
        out.push(b'-');
        out.extend_from_slice(suffix.as_bytes());
        out.extend_from_slice(self.tail.as_bytes());
        out
    }
}

/// Every body of an NDJSON file; a line without a transaction id is an error naming it.
pub fn load(path: &Path) -> io::Result<Vec<Body>> {
    let text = std::fs::read_to_string(path)?;
    let mut bodies = Vec::new();
    for (i, line) in text
        .lines()
        .enumerate()
        .filter(|(_, l)| !l.trim().is_empty())
    {
        bodies.push(Body::parse(line).ok_or_else(|| {
            io::Error::new(
                io::ErrorKind::InvalidData,
                format!(
                    "{}:{}: no transaction id (\"id\":\"T-…\")",
                    path.display(),
                    i + 1
                ),
            )
        })?);
    }
    if bodies.is_empty() {
        return Err(io::Error::new(
            io::ErrorKind::InvalidData,
            format!("{}: no request bodies", path.display()),
        ));
    }
    Ok(bodies)
}

/// A tag that makes this run's transaction ids differ from any earlier run's against
/// the same server.
pub fn run_tag() -> String {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or_default();
    format!("{:x}{:x}", std::process::id(), nanos % (1 << 40))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_transaction_id_gets_the_suffix() {
        let line = r#"{"customer":{"ids":{"device_id":"dev-1"}},"transaction":{"currency":"USD","id":"T-1-42","total":3.5}}"#;
        let body = Body::parse(line).unwrap();
        let sent = String::from_utf8(body.with_suffix("r7-3")).unwrap();
        assert_eq!(
            sent,
            r#"{"customer":{"ids":{"device_id":"dev-1"}},"transaction":{"currency":"USD","id":"T-1-42-r7-3","total":3.5}}"#
        );
        let v: serde_json::Value = serde_json::from_str(&sent).unwrap();
        assert_eq!(v["transaction"]["id"], "T-1-42-r7-3");
    }

    #[test]
    fn a_body_without_a_transaction_id_is_refused() {
        assert!(Body::parse(r#"{"transaction":{"id":"ORD-1"}}"#).is_none());
        let dir = std::env::temp_dir().join(format!("bodies-test-{}", run_tag()));
        std::fs::write(&dir, "{\"transaction\":{\"id\":\"T-1\"}}\n{}\n").unwrap();
        let err = load(&dir).err().unwrap().to_string();
        let _ = std::fs::remove_file(&dir);
        assert!(
            err.ends_with(":2: no transaction id (\"id\":\"T-…\")"),
            "{err}"
        );
    }
}
