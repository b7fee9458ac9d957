//! `Surrogate-Control` (W3C Edge Architecture 1.0): the origin's
//! instructions to a reverse proxy, which take precedence over
//! `Cache-Control` there and are not passed on to clients. The cache
//! announces itself with `Surrogate-Capability` and obeys directives that
//! name no device or name it.

use http::HeaderMap;
use http::header::{HeaderName, HeaderValue};

const CONTROL: HeaderName = HeaderName::from_static("surrogate-control");
const CAPABILITY: HeaderName = HeaderName::from_static("surrogate-capability");

/// The directives of a `Surrogate-Control` meant for this cache.
#[derive(Debug, Default, PartialEq, Eq)]
pub(crate) struct SurrogateControl {
    /// `no-store`.
    pub(crate) no_store: bool,
    /// `max-age`, in seconds (its `+stale` part aside); `Some(None)` when
    /// given but not a number.
    pub(crate) max_age: Option<Option<u64>>,
}

impl SurrogateControl {
    /// The directives for device `token` in `headers`, or `None` when the
    /// response has none for it.
    pub(crate) fn of(headers: &HeaderMap, token: &str) -> Option<Self> {
        let mut control = Self::default();
        let mut any = false;
        for value in headers.get_all(CONTROL) {
            let value = String::from_utf8_lossy(value.as_bytes());
            for item in crate::directives::split_list(&value) {
                let (directive, target) = match item.split_once(';') {
                    Some((directive, target)) => (directive, Some(target.trim())),
                    None => (item, None),
                };
                if target.is_some_and(|target| !target.eq_ignore_ascii_case(token)) {
                    continue;
                }
                let (name, argument) = match directive.split_once('=') {
                    Some((name, argument)) => (name, Some(argument)),
                    None => (directive, None),
                };
                match name.to_ascii_lowercase().as_str() {
                    "no-store" => {
                        control.no_store = true;
                        any = true;
                    }
                    "max-age" => {
                        let seconds = argument.and_then(|argument| {
                            let fresh = argument.split('+').next().unwrap_or_default();
                            (!fresh.is_empty() && fresh.bytes().all(|b| b.is_ascii_digit()))
                                .then(|| fresh.parse().unwrap_or(u64::from(u32::MAX)))
                        });
                        control.max_age = Some(seconds);
                        any = true;
                    }
                    _ => {}
                }
            }
        }
        any.then_some(control)
    }
}

/// Announces the cache to the origin as device `token`.
pub(crate) fn announce(headers: &mut HeaderMap, token: &str) {
    if let Ok(value) = HeaderValue::from_str(&format!("{token}=\"Surrogate/1.0\"")) {
        headers.append(CAPABILITY, value);
    }
}

/// Removes `Surrogate-Control` from a response on its way to a client.
pub(crate) fn remove(headers: &mut HeaderMap) {
    headers.remove(CONTROL);
}

#[cfg(test)]
mod tests {
    use super::*;

    fn control(value: &'static str) -> Option<SurrogateControl> {
        let mut headers = HeaderMap::new();
        headers.insert(CONTROL, HeaderValue::from_static(value));
        SurrogateControl::of(&headers, "edge")
    }

    #[test]
    fn directives_for_this_device_or_none_apply() {
        assert_eq!(control("MaX-aGe=60").unwrap().max_age, Some(Some(60)));
        assert_eq!(control("max-age=60;edge").unwrap().max_age, Some(Some(60)));
        assert_eq!(control("max-age=60+30").unwrap().max_age, Some(Some(60)));
        assert_eq!(control("max-age=60;other"), None);
        assert_eq!(control("max-age= 60").unwrap().max_age, Some(None));
        assert!(control("foo, no-store").unwrap().no_store);
        assert_eq!(control("foo"), None);
    }
}
