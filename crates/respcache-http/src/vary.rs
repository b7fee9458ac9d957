//! Several `Vary` variants per URL. The primary key holds an index entry
//! naming the fields the resource varies on and a random generation; each
//! variant lives under a secondary key derived from the generation and the
//! request's values of those fields. Replacing or removing the index (an
//! unsafe method, a response without `Vary`) retires every variant of the
//! old generation at once.

use http::header::{self, HeaderName, HeaderValue};
use http::{HeaderMap, Response, response};
use sha2::{Digest, Sha256};

/// The field marking an index entry in storage; never sent to clients,
/// and removed from origin responses so that none can pose as an index.
const INDEX_FIELD: &str = "respcache-vary-index";
const INDEX: HeaderName = HeaderName::from_static(INDEX_FIELD);

/// Request fields that are lists of case-insensitive tokens with weights,
/// so that `en-GB` and `en-gb` select one variant, and so do `en, de`
/// and `de, en`: language ranges (RFC 4647 §2.1), content codings (RFC
/// 9110 §8.4.1) and charsets (§8.3.2). Other fields keep their case and
/// their order.
const WEIGHTED: &[&str] = &["accept-language", "accept-encoding", "accept-charset"];

/// One item of a weighted list in one spelling: lower case, no spaces, and
/// `q=1` (the default weight) left out.
fn normalise_weighted(item: &[u8]) -> Vec<u8> {
    let mut parts: Vec<Vec<u8>> = item
        .split(|&b| b == b';')
        .map(|part| {
            part.iter()
                .filter(|b| !b.is_ascii_whitespace())
                .map(u8::to_ascii_lowercase)
                .collect()
        })
        .collect();
    parts.retain(|part| !matches!(part.as_slice(), b"q=1" | b"q=1.0" | b"q=1.00" | b"q=1.000"));
    parts.join(&b';')
}

/// The weight of a normalised item: its `q`, 1 when it has none, 0 when
/// it is unreadable.
fn weight(item: &[u8]) -> f32 {
    item.split(|&b| b == b';')
        .skip(1)
        .find_map(|part| part.strip_prefix(b"q="))
        .map_or(1.0, |q| {
            std::str::from_utf8(q)
                .ok()
                .and_then(|q| q.parse::<f32>().ok())
                .filter(|q| (0.0..=1.0).contains(q))
                .unwrap_or(0.0)
        })
}

/// A resource's `Vary` index.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct VaryIndex {
    fields: Vec<String>,
    generation: String,
    /// Made for this store, not read from storage: it must be written.
    pub(crate) is_new: bool,
}

impl VaryIndex {
    /// The index a stored head holds, if it is one.
    pub(crate) fn read(head: &response::Parts) -> Option<Self> {
        let generation = head.headers.get(INDEX)?.to_str().ok()?.to_owned();
        let fields = crate::directives::vary_fields(&head.headers)?;
        Some(Self {
            fields,
            generation,
            is_new: false,
        })
    }

    /// The index for a response varying on `fields`: the stored one when it
    /// names the same fields, else a new generation.
    pub(crate) fn for_fields(fields: Vec<String>, stored: Option<VaryIndex>) -> Self {
        match stored {
            Some(stored) if stored.fields == fields => stored,
            _ => Self {
                fields,
                generation: format!("{:016x}", rand::random::<u64>()),
                is_new: true,
            },
        }
    }

    /// The head stored under the primary key.
    pub(crate) fn marker_head(&self) -> response::Parts {
        let mut head = Response::new(()).into_parts().0;
        if let Ok(vary) = HeaderValue::from_str(&self.fields.join(", ")) {
            head.headers.insert(header::VARY, vary);
        }
        if let Ok(generation) = HeaderValue::from_str(&self.generation) {
            head.headers.insert(INDEX, generation);
        }
        head.headers
            .insert(header::CONTENT_LENGTH, HeaderValue::from(0));
        head
    }

    /// The secondary key of the variant for a request with `headers`.
    pub(crate) fn variant_key(&self, key: &str, headers: &HeaderMap) -> String {
        let mut hash = Sha256::new();
        for field in &self.fields {
            hash.update(field.as_bytes());
            let weighted = WEIGHTED.contains(&field.as_str());
            // Lines combined and spaces around commas dropped: the same
            // list written differently selects the same variant.
            let mut values: Vec<Vec<u8>> = headers
                .get_all(field.as_str())
                .iter()
                .flat_map(|value| value.as_bytes().split(|&b| b == b','))
                .map(|item| item.trim_ascii())
                .map(|item| {
                    if weighted {
                        normalise_weighted(item)
                    } else {
                        item.to_vec()
                    }
                })
                .collect();
            if weighted {
                // A preference is its weight (RFC 9110 §12.4.2), not its
                // place in the list: order by weight, then by name.
                values.sort_by(|a, b| weight(b).total_cmp(&weight(a)).then_with(|| a.cmp(b)));
            }
            for value in &values {
                hash.update(b"\x01");
                hash.update(value);
            }
            hash.update(if values.is_empty() { b"\x03" } else { b"\x02" });
        }
        let digest = hash.finalize();
        let hex: String = digest.iter().map(|byte| format!("{byte:02x}")).collect();
        format!("{key}\nvary:{}:{hex}", self.generation)
    }
}

/// Whether `name` is the engine's own storage field.
pub(crate) fn is_internal(name: &HeaderName) -> bool {
    [
        INDEX_FIELD,
        crate::freshness::RECEIVED_FIELD,
        crate::part_index::PARTS_FIELD,
    ]
    .contains(&name.as_str())
}

/// Removes the engine's own storage fields (from an origin's response,
/// or from a stored head before it is served).
pub(crate) fn strip_internal(headers: &mut HeaderMap) {
    const INTERNAL: [HeaderName; 3] = [
        INDEX,
        HeaderName::from_static(crate::freshness::RECEIVED_FIELD),
        HeaderName::from_static(crate::part_index::PARTS_FIELD),
    ];
    // One pass over the names first: most heads hold one of these at most.
    if headers.keys().any(|name| INTERNAL.contains(name)) {
        for name in INTERNAL {
            headers.remove(name);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request(pairs: &[(&'static str, &'static str)]) -> HeaderMap {
        let mut headers = HeaderMap::new();
        for (name, value) in pairs {
            headers.append(*name, value.parse().unwrap());
        }
        headers
    }

    #[test]
    fn variants_differ_by_value_absence_and_generation() {
        let index = VaryIndex::for_fields(vec!["accept".into()], None);
        let json = index.variant_key("k", &request(&[("accept", "json")]));
        let html = index.variant_key("k", &request(&[("accept", "html")]));
        let none = index.variant_key("k", &request(&[]));
        let empty = index.variant_key("k", &request(&[("accept", "")]));
        assert_eq!(
            json,
            index.variant_key("k", &request(&[("accept", "json")]))
        );
        assert!(json != html && json != none && none != empty);
        let next = VaryIndex::for_fields(vec!["accept-language".into()], Some(index.clone()));
        assert!(next.is_new);
        let again = VaryIndex::for_fields(vec!["accept".into()], Some(index.clone()));
        assert_eq!(
            again.variant_key("k", &request(&[("accept", "json")])),
            json
        );
    }

    #[test]
    fn weighted_lists_fold_case_and_order_by_weight_not_place() {
        let index = VaryIndex::for_fields(
            vec!["accept-language".into(), "accept-encoding".into()],
            None,
        );
        let key = |pairs: &[(&'static str, &'static str)]| index.variant_key("k", &request(pairs));
        let plain = key(&[("accept-language", "en, de"), ("accept-encoding", "gzip")]);
        assert_eq!(
            plain,
            key(&[("accept-language", "eN,De"), ("accept-encoding", "GZIP")])
        );
        assert_eq!(
            plain,
            key(&[
                ("accept-language", "de, en;q=1"),
                ("accept-encoding", "gzip")
            ]),
            "equal weights, another order"
        );
        assert_ne!(
            plain,
            key(&[
                ("accept-language", "de, en;q=0.5"),
                ("accept-encoding", "gzip")
            ]),
            "a different preference"
        );
        assert_eq!(
            key(&[
                ("accept-language", "fr;q=0.5, de"),
                ("accept-encoding", "gzip")
            ]),
            key(&[
                ("accept-language", "de;q=1.0, fr; q=0.5"),
                ("accept-encoding", "gzip")
            ])
        );
        let other = VaryIndex::for_fields(vec!["x-token".into()], None);
        assert_ne!(
            other.variant_key("k", &request(&[("x-token", "a")])),
            other.variant_key("k", &request(&[("x-token", "A")])),
            "other fields keep their case"
        );
    }

    #[test]
    fn an_index_reads_back_from_its_marker_head() {
        let index = VaryIndex::for_fields(vec!["accept".into(), "x-b".into()], None);
        let read = VaryIndex::read(&index.marker_head()).unwrap();
        assert_eq!(read.fields, index.fields);
        assert_eq!(read.generation, index.generation);
        assert!(!read.is_new);
    }
}
