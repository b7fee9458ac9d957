//! Targeted cache-control fields (RFC 9213): `CDN-Cache-Control`, or a
//! field named for this cache, through which an origin steers shared
//! caches apart from browsers. In a shared cache the first targeted field
//! of [`Options::targeted_fields`] that is present and valid governs
//! freshness and storability in place of `Cache-Control` (and `Expires`
//! and `Pragma`); a private cache ignores them all.

use http::HeaderMap;
use sfv::{BareItem, Dictionary, ListEntry, Parser};

use crate::directives::Directives;
use crate::options::Options;

/// The directives that govern a response in this cache: its first valid
/// targeted field (shared caches), else its `Cache-Control`.
pub(crate) fn response_directives<'a>(headers: &'a HeaderMap, options: &Options) -> Directives<'a> {
    targeted(headers, options).unwrap_or_else(|| Directives::of(headers))
}

/// The directives of the first targeted field in `options`' list that the
/// response carries and that parses (RFC 9213 §2.2); `None` in a private
/// cache or when there is none.
pub(crate) fn targeted(headers: &HeaderMap, options: &Options) -> Option<Directives<'static>> {
    if !options.shared {
        return None;
    }
    options
        .targeted_fields
        .iter()
        .find_map(|name| parse(headers, name))
}

/// One targeted field's directives, or `None` when it is absent or not a
/// valid Dictionary (RFC 9213 §2.1: an invalid field is ignored).
fn parse(headers: &HeaderMap, name: &http::HeaderName) -> Option<Directives<'static>> {
    let mut lines = headers.get_all(name).iter().peekable();
    lines.peek()?;
    // Several lines are one list (RFC 9651 §4.2).
    let mut joined = Vec::new();
    for (i, line) in lines.enumerate() {
        if i > 0 {
            joined.extend_from_slice(b", ");
        }
        joined.extend_from_slice(line.as_bytes());
    }
    let dictionary: Dictionary = Parser::new(&joined).parse().ok()?;
    let mut directives = Vec::with_capacity(dictionary.len());
    for (key, entry) in &dictionary {
        let argument = match entry {
            ListEntry::Item(item) => match &item.bare_item {
                // `no-store=?0` says the directive is off.
                BareItem::Boolean(false) => continue,
                BareItem::Boolean(true) => None,
                BareItem::Integer(value) => Some(value.to_string()),
                // Only the qualified forms take text (field names);
                // elsewhere a string or token where an integer belongs is
                // a value to ignore (§2.1), as is a decimal.
                BareItem::String(value) if lists_fields(key.as_str()) => {
                    Some(value.as_str().to_owned())
                }
                BareItem::Token(value) if lists_fields(key.as_str()) => {
                    Some(value.as_str().to_owned())
                }
                _ => Some(String::new()),
            },
            // `private=("set-cookie" "x-a")`: the field names.
            ListEntry::InnerList(list) => Some(
                list.items
                    .iter()
                    .filter_map(|item| match &item.bare_item {
                        BareItem::String(value) => Some(value.as_str().to_owned()),
                        BareItem::Token(value) => Some(value.as_str().to_owned()),
                        _ => None,
                    })
                    .collect::<Vec<_>>()
                    .join(","),
            ),
        };
        directives.push((key.as_str().to_owned(), argument));
    }
    Some(Directives::from_pairs(directives))
}

/// Directives whose argument is a list of field names.
fn lists_fields(directive: &str) -> bool {
    directive == "private" || directive == "no-cache"
}

#[cfg(test)]
mod tests {
    use http::HeaderName;

    use super::*;
    use crate::directives::Delta;

    fn headers(pairs: &[(&'static str, &'static str)]) -> HeaderMap {
        let mut headers = HeaderMap::new();
        for (name, value) in pairs {
            headers.append(*name, value.parse().unwrap());
        }
        headers
    }

    #[test]
    fn the_first_valid_field_of_the_list_governs_in_a_shared_cache() {
        let options = Options {
            targeted_fields: vec![
                HeaderName::from_static("respcache-cache-control"),
                HeaderName::from_static("cdn-cache-control"),
            ],
            ..Options::default()
        };
        let both = headers(&[
            ("cache-control", "no-store"),
            ("cdn-cache-control", "max-age=60"),
            ("respcache-cache-control", "max-age=600, stale-if-error=30"),
        ]);
        let governing = response_directives(&both, &options);
        assert_eq!(governing.delta("max-age"), Delta::Seconds(600));
        assert_eq!(governing.delta("stale-if-error"), Delta::Seconds(30));
        assert!(!governing.has("no-store"), "Cache-Control is ignored");

        let broken_first = headers(&[
            ("cache-control", "no-store"),
            ("cdn-cache-control", "max-age=60"),
            ("respcache-cache-control", "max-age=60, ="),
        ]);
        let governing = response_directives(&broken_first, &options);
        assert_eq!(
            governing.delta("max-age"),
            Delta::Seconds(60),
            "the invalid one is skipped"
        );

        let private = Options {
            shared: false,
            ..options.clone()
        };
        assert!(
            response_directives(&both, &private).has("no-store"),
            "a private cache ignores them"
        );
    }

    #[test]
    fn values_that_are_not_what_a_directive_takes_are_invalid() {
        let options = Options::default();
        let parsed = |value: &'static str| {
            targeted(&headers(&[("cdn-cache-control", value)]), &options).expect("valid")
        };
        assert_eq!(parsed("max-age=1.5").delta("max-age"), Delta::Invalid);
        assert_eq!(parsed("max-age=\"60\"").delta("max-age"), Delta::Invalid);
        assert!(parsed("no-store").has("no-store"));
        assert!(!parsed("no-store=?0").has("no-store"));
        assert_eq!(
            parsed("private=(\"set-cookie\" x-a)").fields("private"),
            ["set-cookie", "x-a"]
        );
        assert!(
            parsed("none").delta("max-age") == Delta::Absent,
            "valid, and says nothing"
        );
        for invalid in [
            "max-age=60,",
            "MAX-AGE=60",
            "max-age=60;;",
            "max-age=999999999999999999",
        ] {
            let found = targeted(&headers(&[("cdn-cache-control", invalid)]), &options);
            assert!(found.is_none(), "{invalid:?} is not a Dictionary");
        }
        let two_lines = headers(&[
            ("cdn-cache-control", "max-age=60"),
            ("cdn-cache-control", "public"),
        ]);
        let joined = targeted(&two_lines, &options).unwrap();
        assert!(joined.has("public") && joined.delta("max-age") == Delta::Seconds(60));
    }
}
