//! `Cache-Control` directives the engine reads itself (the policy crate
//! reads the rest), and the header rules of RFC 9111 it applies.

use std::borrow::Cow;

use http::HeaderMap;
use http::header::{self, HeaderName};

/// The directives of every `Cache-Control` field of a message, in order,
/// read in place: names as written (matched regardless of case),
/// arguments without their quotes, bytes that are not UTF-8 kept as they
/// are, so that one stray byte in an extension cannot hide the `private`
/// or `no-store` beside it.
#[derive(Debug, Default)]
pub(crate) struct Directives<'a>(Vec<Directive<'a>>);

/// One directive: its name and, when it has one, its argument.
type Directive<'a> = (Cow<'a, [u8]>, Option<Cow<'a, [u8]>>);

impl<'a> Directives<'a> {
    pub(crate) fn of(headers: &'a HeaderMap) -> Self {
        let mut directives = Vec::new();
        for value in headers.get_all(header::CACHE_CONTROL) {
            for item in split_bytes(value.as_bytes()) {
                let (name, argument) = match item.iter().position(|&b| b == b'=') {
                    Some(equals) => {
                        let argument = trim_quotes(item[equals + 1..].trim_ascii());
                        (&item[..equals], Some(Cow::Borrowed(argument)))
                    }
                    None => (item, None),
                };
                let name = name.trim_ascii();
                if !name.is_empty() {
                    directives.push((Cow::Borrowed(name), argument));
                }
            }
        }
        Self(directives)
    }

    /// Directives already split into names and arguments (a targeted
    /// field's).
    pub(crate) fn from_pairs(pairs: Vec<(String, Option<String>)>) -> Directives<'static> {
        Directives(
            pairs
                .into_iter()
                .map(|(name, argument)| {
                    (
                        Cow::Owned(name.into_bytes()),
                        argument.map(|a| Cow::Owned(a.into_bytes())),
                    )
                })
                .collect(),
        )
    }

    /// The arguments of every `name` directive, in order.
    fn named(&self, name: &str) -> impl Iterator<Item = Option<&[u8]>> {
        self.0
            .iter()
            .filter(move |(n, _)| n.eq_ignore_ascii_case(name.as_bytes()))
            .map(|(_, argument)| argument.as_deref())
    }

    pub(crate) fn has(&self, name: &str) -> bool {
        self.named(name).next().is_some()
    }

    /// A directive that takes one delta-seconds value (`max-age=60`).
    pub(crate) fn delta(&self, name: &str) -> Delta {
        let mut values = self.named(name);
        let Some(first) = values.next() else {
            return Delta::Absent;
        };
        if values.any(|other| other != first) {
            return Delta::Invalid;
        }
        match first {
            Some(argument) if !argument.is_empty() && argument.iter().all(u8::is_ascii_digit) => {
                let seconds = std::str::from_utf8(argument)
                    .ok()
                    .and_then(|digits| digits.parse().ok());
                Delta::Seconds(seconds.unwrap_or(u64::from(u32::MAX)))
            }
            _ => Delta::Invalid,
        }
    }

    /// The field names a qualified directive lists (`private="set-cookie"`).
    pub(crate) fn fields(&self, name: &str) -> Vec<String> {
        self.named(name)
            .flatten()
            .flat_map(|argument| argument.split(|&b| b == b','))
            .map(|field| String::from_utf8_lossy(field.trim_ascii()).to_ascii_lowercase())
            .filter(|field| !field.is_empty())
            .collect()
    }
}

/// `argument` without the quotes around it.
fn trim_quotes(argument: &[u8]) -> &[u8] {
    let start = argument
        .iter()
        .position(|&b| b != b'"')
        .unwrap_or(argument.len());
    let end = argument
        .iter()
        .rposition(|&b| b != b'"')
        .map_or(start, |end| end + 1);
    &argument[start..end.max(start)]
}

/// [`split_list`] on bytes.
fn split_bytes(value: &[u8]) -> Vec<&[u8]> {
    let mut items = Vec::new();
    let (mut start, mut quoted, mut escaped) = (0, false, false);
    for (i, &b) in value.iter().enumerate() {
        match b {
            _ if escaped => escaped = false,
            b'\\' if quoted => escaped = true,
            b'"' => quoted = !quoted,
            b',' if !quoted => {
                items.push(value[start..i].trim_ascii());
                start = i + 1;
            }
            _ => {}
        }
    }
    items.push(value[start..].trim_ascii());
    items.retain(|item| !item.is_empty());
    items
}

/// What a message says of a directive that takes delta-seconds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Delta {
    /// The directive is not there.
    Absent,
    /// It is there without one valid number: no value, not a number, or
    /// given twice differently (RFC 9111 §4.2.1 makes such a value
    /// invalid; each directive says what that means).
    Invalid,
    /// It is there with this many seconds (values past 2^32 count as
    /// 2^32).
    Seconds(u64),
}

impl Delta {
    /// The seconds, when the directive is there with a valid value.
    pub(crate) fn seconds(self) -> Option<u64> {
        match self {
            Delta::Seconds(seconds) => Some(seconds),
            Delta::Absent | Delta::Invalid => None,
        }
    }

    /// Whether the directive is there at all.
    pub(crate) fn is_present(self) -> bool {
        self != Delta::Absent
    }
}

/// Splits a comma-separated list, keeping commas inside quoted strings.
pub(crate) fn split_list(value: &str) -> Vec<&str> {
    let mut items = Vec::new();
    let (mut start, mut quoted, mut escaped) = (0, false, false);
    for (i, c) in value.char_indices() {
        match c {
            _ if escaped => escaped = false,
            '\\' if quoted => escaped = true,
            '"' => quoted = !quoted,
            ',' if !quoted => {
                items.push(value[start..i].trim());
                start = i + 1;
            }
            _ => {}
        }
    }
    items.push(value[start..].trim());
    items.retain(|item| !item.is_empty());
    items
}

/// Whether `Connection` names `field` (RFC 9110 §7.6.1).
pub(crate) fn connection_names(headers: &HeaderMap, field: &HeaderName) -> bool {
    headers
        .get_all(header::CONNECTION)
        .iter()
        .flat_map(|value| value.as_bytes().split(|&b| b == b','))
        .any(|name| {
            name.trim_ascii()
                .eq_ignore_ascii_case(field.as_str().as_bytes())
        })
}

/// Whether a request asks to switch protocols (`Upgrade`, named in
/// `Connection`): a WebSocket handshake.
pub fn is_upgrade(headers: &HeaderMap) -> bool {
    headers.contains_key(header::UPGRADE) && connection_names(headers, &header::UPGRADE)
}

/// Hop-by-hop fields: they describe one connection and are neither stored
/// nor forwarded (RFC 9110 §7.6.1), with every field `Connection` names.
pub fn remove_hop_by_hop(headers: &mut HeaderMap) {
    // One pass over the names first: most messages carry none of these,
    // and a removal by name costs a hash each.
    if !headers.keys().any(is_hop_by_hop) {
        return;
    }
    // Bytes, not text: a value with one byte that is not UTF-8 must not
    // keep the fields it names.
    let named: Vec<HeaderName> = headers
        .get_all(header::CONNECTION)
        .iter()
        .flat_map(|value| value.as_bytes().split(|&b| b == b','))
        .filter_map(|name| HeaderName::from_bytes(name.trim_ascii()).ok())
        .collect();
    for name in named {
        headers.remove(name);
    }
    for name in [
        header::CONNECTION,
        header::TE,
        header::TRAILER,
        header::TRANSFER_ENCODING,
        header::UPGRADE,
        header::PROXY_AUTHENTICATE,
        header::PROXY_AUTHORIZATION,
    ] {
        headers.remove(name);
    }
    headers.remove(KEEP_ALIVE);
    headers.remove(PROXY_CONNECTION);
}

const KEEP_ALIVE: HeaderName = HeaderName::from_static("keep-alive");

/// Whether `name` is hop-by-hop by itself (RFC 9110 §7.6.1), without a
/// `Connection` naming it.
fn is_hop_by_hop(name: &HeaderName) -> bool {
    [
        header::CONNECTION,
        header::TE,
        header::TRAILER,
        header::TRANSFER_ENCODING,
        header::UPGRADE,
        header::PROXY_AUTHENTICATE,
        header::PROXY_AUTHORIZATION,
        KEEP_ALIVE,
        PROXY_CONNECTION,
    ]
    .contains(name)
}
const PROXY_CONNECTION: HeaderName = HeaderName::from_static("proxy-connection");

/// The fields a response's `Vary` names, lower-cased, in order; `None` for
/// `Vary: *`, which no request matches.
pub(crate) fn vary_fields(headers: &HeaderMap) -> Option<Vec<String>> {
    let mut fields = Vec::new();
    for value in headers.get_all(header::VARY) {
        for field in String::from_utf8_lossy(value.as_bytes()).split(',') {
            let field = field.trim().to_ascii_lowercase();
            if field == "*" {
                return None;
            }
            if !field.is_empty() && !fields.contains(&field) {
                fields.push(field);
            }
        }
    }
    Some(fields)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(values: &[&str]) -> HeaderMap {
        let mut headers = HeaderMap::new();
        for value in values {
            headers.append(header::CACHE_CONTROL, value.parse().unwrap());
        }
        headers
    }

    #[test]
    fn directives_across_fields_with_quoted_lists() {
        let lines = headers(&[
            r#"Max-Age=60, private="set-cookie, x-a""#,
            "stale-while-revalidate=30",
        ]);
        let cc = Directives::of(&lines);
        assert_eq!(cc.delta("max-age"), Delta::Seconds(60));
        assert_eq!(cc.delta("stale-while-revalidate"), Delta::Seconds(30));
        assert_eq!(cc.delta("s-maxage"), Delta::Absent);
        assert_eq!(cc.fields("private"), ["set-cookie", "x-a"]);
        assert!(!cc.has("no-store"));
    }

    #[test]
    fn delta_seconds_that_are_missing_garbled_or_contradicted_are_invalid() {
        for value in [
            "max-age",
            "max-age=",
            "max-age=1.5",
            "max-age=-1",
            "max-age=1, max-age=2",
        ] {
            assert_eq!(
                Directives::of(&headers(&[value])).delta("max-age"),
                Delta::Invalid,
                "{value}"
            );
        }
        let lines = headers(&["max-age=7", "max-age=7"]);
        let same_twice = Directives::of(&lines);
        assert_eq!(same_twice.delta("max-age"), Delta::Seconds(7));
        let lines = headers(&["max-age=99999999999999999999"]);
        let huge = Directives::of(&lines);
        assert_eq!(huge.delta("max-age"), Delta::Seconds(u64::from(u32::MAX)));
    }

    #[test]
    fn a_line_with_a_byte_that_is_not_utf8_still_counts() {
        let mut headers = HeaderMap::new();
        headers.append(
            header::CACHE_CONTROL,
            http::HeaderValue::from_bytes(b"private, x=\"\xe9\", max-age=5").unwrap(),
        );
        let cc = Directives::of(&headers);
        assert!(cc.has("private"));
        assert_eq!(cc.delta("max-age"), Delta::Seconds(5));
    }

    #[test]
    fn hop_by_hop_fields_and_those_connection_names_go() {
        let mut headers = HeaderMap::new();
        headers.insert(header::CONNECTION, "close, x-conn".parse().unwrap());
        headers.insert("x-conn", "1".parse().unwrap());
        headers.insert("keep-alive", "timeout=5".parse().unwrap());
        headers.insert("x-end", "1".parse().unwrap());
        remove_hop_by_hop(&mut headers);
        assert_eq!(
            headers.keys().map(|k| k.as_str()).collect::<Vec<_>>(),
            ["x-end"]
        );
    }

    #[test]
    fn vary_star_matches_nothing() {
        let mut headers = HeaderMap::new();
        headers.append(header::VARY, "Accept, accept-encoding".parse().unwrap());
        assert_eq!(
            vary_fields(&headers).unwrap(),
            ["accept", "accept-encoding"]
        );
        headers.append(header::VARY, "*".parse().unwrap());
        assert_eq!(vary_fields(&headers), None);
    }
}
