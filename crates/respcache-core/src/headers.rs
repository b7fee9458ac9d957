//! Serde for [`http::HeaderMap`] that loses nothing: every value of a
//! repeated field, in order, and values that are not UTF-8.
//!
//! A map is written as a sequence of `(name, value)` pairs in the map's own
//! iteration order (which groups the values of one name in the order they
//! were appended). In human-readable formats (JSON) a value is a string when
//! it is UTF-8 and an array of bytes when it is not; in binary formats it is
//! always bytes.

/// `#[serde(with = "...")]` module for `http::HeaderMap`.
pub mod serde_header_map {
    use std::fmt;

    use http::{HeaderMap, HeaderName, HeaderValue};
    use serde::de::{self, Deserializer, SeqAccess, Visitor};
    use serde::ser::{SerializeSeq, Serializer};
    use serde::{Deserialize, Serialize};

    struct RawValue<'a>(&'a HeaderValue, bool);

    impl Serialize for RawValue<'_> {
        fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
            let bytes = self.0.as_bytes();
            match (self.1, std::str::from_utf8(bytes)) {
                (true, Ok(text)) => serializer.serialize_str(text),
                _ => serializer.serialize_bytes(bytes),
            }
        }
    }

    /// Serializes a header map as an ordered sequence of pairs.
    pub fn serialize<S: Serializer>(map: &HeaderMap, serializer: S) -> Result<S::Ok, S::Error> {
        let readable = serializer.is_human_readable();
        let mut seq = serializer.serialize_seq(Some(map.len()))?;
        for (name, value) in map {
            seq.serialize_element(&(name.as_str(), RawValue(value, readable)))?;
        }
        seq.end()
    }

    struct OwnedValue(Vec<u8>);

    impl<'de> Deserialize<'de> for OwnedValue {
        fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
            struct ValueVisitor;
            impl<'de> Visitor<'de> for ValueVisitor {
                type Value = OwnedValue;
                fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                    f.write_str("a header value as a string or bytes")
                }
                fn visit_str<E: de::Error>(self, v: &str) -> Result<OwnedValue, E> {
                    Ok(OwnedValue(v.as_bytes().to_vec()))
                }
                fn visit_bytes<E: de::Error>(self, v: &[u8]) -> Result<OwnedValue, E> {
                    Ok(OwnedValue(v.to_vec()))
                }
                fn visit_byte_buf<E: de::Error>(self, v: Vec<u8>) -> Result<OwnedValue, E> {
                    Ok(OwnedValue(v))
                }
                fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<OwnedValue, A::Error> {
                    let mut bytes = Vec::with_capacity(seq.size_hint().unwrap_or(0));
                    while let Some(byte) = seq.next_element::<u8>()? {
                        bytes.push(byte);
                    }
                    Ok(OwnedValue(bytes))
                }
            }
            if deserializer.is_human_readable() {
                deserializer.deserialize_any(ValueVisitor)
            } else {
                deserializer.deserialize_byte_buf(ValueVisitor)
            }
        }
    }

    /// Deserializes what [`serialize`] wrote, rejecting invalid names and values.
    pub fn deserialize<'de, D: Deserializer<'de>>(deserializer: D) -> Result<HeaderMap, D::Error> {
        struct MapVisitor;
        impl<'de> Visitor<'de> for MapVisitor {
            type Value = HeaderMap;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a sequence of header (name, value) pairs")
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<HeaderMap, A::Error> {
                // Cap the preallocation: the hint comes from stored bytes.
                let hint = seq.size_hint().unwrap_or(0).min(1024);
                let mut map = HeaderMap::with_capacity(hint);
                while let Some((name, value)) = seq.next_element::<(String, OwnedValue)>()? {
                    let name =
                        HeaderName::from_bytes(name.as_bytes()).map_err(de::Error::custom)?;
                    let value = HeaderValue::from_bytes(&value.0).map_err(de::Error::custom)?;
                    map.append(name, value);
                }
                Ok(map)
            }
        }
        deserializer.deserialize_seq(MapVisitor)
    }
}
