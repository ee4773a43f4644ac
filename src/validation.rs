//! Validation that reports every problem at once, each with its JSON path.
//!
//! Serde stops at the first error, which is the wrong experience for an advertiser
//! uploading a campaign with three typos. Documents that must be checked completely are
//! first parsed into a [`serde_json::Value`] (from JSON or MessagePack alike) and then
//! read through a [`Reader`]: every accessor records a problem instead of returning
//! early, and every key that no accessor asked for is reported as unknown. Only when
//! the list is empty is the typed value used.

use serde::Serialize;
use serde_json::{Map, Value};
use std::fmt;

/// One problem: where (`transaction.items[2].price`) and what.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Detail {
    pub path: String,
    pub message: String,
}

impl Detail {
    pub fn new(path: impl Into<String>, message: impl Into<String>) -> Detail {
        Detail {
            path: path.into(),
            message: message.into(),
        }
    }
}

impl fmt::Display for Detail {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.path.is_empty() {
            write!(f, "{}", self.message)
        } else {
            write!(f, "{}: {}", self.path, self.message)
        }
    }
}

/// Appends a key to a JSON path (`a` + `b` = `a.b`; the root is the empty path).
pub fn join(path: &str, key: &str) -> String {
    if path.is_empty() {
        key.to_string()
    } else {
        format!("{path}.{key}")
    }
}

/// Appends an array index to a JSON path (`items` + 2 = `items[2]`).
pub fn index(path: &str, i: usize) -> String {
    format!("{path}[{i}]")
}

/// The problems found so far.
#[derive(Debug, Default)]
pub struct Problems(pub Vec<Detail>);

impl Problems {
    pub fn push(&mut self, path: impl Into<String>, message: impl Into<String>) {
        self.0.push(Detail::new(path, message));
    }
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

/// The JSON name of a value's type, for "expected a string, found an array".
pub fn type_name(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

/// Reads the fields of one JSON object, remembering which keys were read so the rest
/// can be reported as unknown by [`Reader::finish`].
pub struct Reader<'v> {
    map: &'v Map<String, Value>,
    path: String,
    read: Vec<&'static str>,
}

impl<'v> Reader<'v> {
    /// A reader over `v`, or a problem if `v` is not an object.
    pub fn object(v: &'v Value, path: &str, problems: &mut Problems) -> Option<Reader<'v>> {
        match v {
            Value::Object(map) => Some(Reader {
                map,
                path: path.to_string(),
                read: Vec::new(),
            }),
            other => {
                problems.push(
                    path,
                    format!("expected an object, found {}", type_name(other)),
                );
                None
            }
        }
    }

    pub fn path(&self) -> &str {
        &self.path
    }

    /// The path of one of this object's fields.
    pub fn field_path(&self, key: &str) -> String {
        join(&self.path, key)
    }

    /// The raw value of a field; `null` counts as absent.
    pub fn raw(&mut self, key: &'static str) -> Option<&'v Value> {
        self.read.push(key);
        self.map.get(key).filter(|v| !v.is_null())
    }

    /// A field that must be present.
    pub fn required(&mut self, key: &'static str, problems: &mut Problems) -> Option<&'v Value> {
        let v = self.raw(key);
        if v.is_none() {
            problems.push(self.field_path(key), "is required");
        }
        v
    }

    pub fn string(&mut self, key: &'static str, problems: &mut Problems) -> Option<&'v str> {
        let v = self.raw(key)?;
        expect_str(v, &self.field_path(key), problems)
    }

    pub fn required_string(
        &mut self,
        key: &'static str,
        problems: &mut Problems,
    ) -> Option<&'v str> {
        let v = self.required(key, problems)?;
        expect_str(v, &self.field_path(key), problems)
    }

    pub fn bool(&mut self, key: &'static str, problems: &mut Problems) -> Option<bool> {
        match self.raw(key)? {
            Value::Bool(b) => Some(*b),
            other => {
                problems.push(
                    self.field_path(key),
                    format!("expected a boolean, found {}", type_name(other)),
                );
                None
            }
        }
    }

    /// An integer within `range` (inclusive).
    pub fn integer(
        &mut self,
        key: &'static str,
        range: std::ops::RangeInclusive<i64>,
        problems: &mut Problems,
    ) -> Option<i64> {
        let v = self.raw(key)?;
        expect_integer(v, &self.field_path(key), range, problems)
    }

    /// A non-negative decimal number (money, percentages).
    pub fn number(&mut self, key: &'static str, problems: &mut Problems) -> Option<f64> {
        let v = self.raw(key)?;
        let path = self.field_path(key);
        match v.as_f64() {
            Some(n) if v.is_number() => {
                if n.is_finite() && n >= 0.0 {
                    Some(n)
                } else {
                    problems.push(path, "must be a non-negative number");
                    None
                }
            }
            _ => {
                problems.push(path, format!("expected a number, found {}", type_name(v)));
                None
            }
        }
    }

    /// A list of strings; absent is an empty list.
    pub fn strings(&mut self, key: &'static str, problems: &mut Problems) -> Vec<&'v str> {
        let Some(v) = self.raw(key) else {
            return Vec::new();
        };
        let path = self.field_path(key);
        self.each(v, &path, problems, |item, p, problems| {
            expect_str(item, p, problems)
        })
    }

    /// Applies `f` to each element of an array field, with the element's path.
    pub fn array<T>(
        &mut self,
        key: &'static str,
        problems: &mut Problems,
        f: impl FnMut(&'v Value, &str, &mut Problems) -> Option<T>,
    ) -> Vec<T> {
        let Some(v) = self.raw(key) else {
            return Vec::new();
        };
        let path = self.field_path(key);
        self.each(v, &path, problems, f)
    }

    fn each<T>(
        &self,
        v: &'v Value,
        path: &str,
        problems: &mut Problems,
        mut f: impl FnMut(&'v Value, &str, &mut Problems) -> Option<T>,
    ) -> Vec<T> {
        match v {
            Value::Array(items) => items
                .iter()
                .enumerate()
                .filter_map(|(i, item)| f(item, &index(path, i), problems))
                .collect(),
            other => {
                problems.push(
                    path,
                    format!("expected an array, found {}", type_name(other)),
                );
                Vec::new()
            }
        }
    }

    /// Reports every key of the object that no accessor read: a typo is never ignored.
    pub fn finish(self, problems: &mut Problems) {
        for key in self.map.keys() {
            if !self.read.contains(&key.as_str()) {
                problems.push(join(&self.path, key), "unknown field");
            }
        }
    }
}

pub fn expect_str<'v>(v: &'v Value, path: &str, problems: &mut Problems) -> Option<&'v str> {
    match v {
        Value::String(s) => Some(s),
        other => {
            problems.push(
                path,
                format!("expected a string, found {}", type_name(other)),
            );
            None
        }
    }
}

pub fn expect_integer(
    v: &Value,
    path: &str,
    range: std::ops::RangeInclusive<i64>,
    problems: &mut Problems,
) -> Option<i64> {
    match v.as_i64() {
        Some(n) if range.contains(&n) => Some(n),
        Some(_) => {
            problems.push(
                path,
                format!("must be between {} and {}", range.start(), range.end()),
            );
            None
        }
        None => {
            problems.push(path, format!("expected an integer, found {}", type_name(v)));
            None
        }
    }
}

/// Ids that end up in file names and URLs: `[A-Za-z0-9._-]{1,64}`, not `.` or `..`.
pub fn is_valid_id(id: &str) -> bool {
    (1..=64).contains(&id.len())
        && id != "."
        && id != ".."
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'))
}

/// Checks an id field, pushing a problem that says what is allowed.
pub fn check_id(id: &str, path: &str, problems: &mut Problems) -> bool {
    let ok = is_valid_id(id);
    if !ok {
        problems.push(
            path,
            "must be 1 to 64 characters of A-Z, a-z, 0-9, '.', '_' or '-', and not '.' or '..'",
        );
    }
    ok
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn reports_every_problem_and_every_unknown_key() {
        let v = json!({"name": 3, "count": -1, "tags": ["a", 2], "typo": true});
        let mut problems = Problems::default();
        let mut r = Reader::object(&v, "", &mut problems).unwrap();
        r.string("name", &mut problems);
        r.integer("count", 0..=10, &mut problems);
        r.strings("tags", &mut problems);
        r.required_string("id", &mut problems);
        r.finish(&mut problems);
        let paths: Vec<_> = problems.0.iter().map(|d| d.path.as_str()).collect();
        assert_eq!(paths, ["name", "count", "tags[1]", "id", "typo"]);
    }

    #[test]
    fn ids_are_safe_as_file_names() {
        assert!(is_valid_id("cmp-streamly_2.v1"));
        for bad in ["", ".", "..", "a/b", "../x", "a b", "é", &"x".repeat(65)] {
            assert!(!is_valid_id(bad), "{bad:?} must be refused");
        }
    }
}
