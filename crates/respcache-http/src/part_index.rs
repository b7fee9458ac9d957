//! The parts index of a representation stored in parts: which byte
//! ranges are stored, of what length and which version; and the keys of
//! its entries.

use http::header::{self, HeaderValue};
use http::{HeaderMap, Response, response};
use sha2::{Digest, Sha256};

/// The field of a parts index entry; never sent to clients.
pub(crate) const PARTS_FIELD: &str = "respcache-parts";

/// What is stored of one representation in parts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct PartIndex {
    /// A hash of the validator the parts share; empty when they have none.
    pub(crate) validator: String,
    pub(crate) total: u64,
    /// The parts stored, as (first, last) byte positions, sorted.
    pub(crate) stored: Vec<(u64, u64)>,
}

impl PartIndex {
    pub(crate) fn new(validator: String, total: u64) -> Self {
        Self {
            validator,
            total,
            stored: Vec::new(),
        }
    }

    /// The index a stored head holds, if it is one.
    pub(crate) fn read(head: &response::Parts) -> Option<Self> {
        let value = head.headers.get(PARTS_FIELD)?.to_str().ok()?;
        let mut words = value.split(' ');
        let validator = words.next()?.trim_start_matches('-').to_owned();
        let total = words.next()?.parse().ok()?;
        let mut stored = Vec::new();
        for range in words
            .next()
            .unwrap_or_default()
            .split(',')
            .filter(|r| !r.is_empty())
        {
            let (first, last) = range.split_once('-')?;
            stored.push((first.parse().ok()?, last.parse().ok()?));
        }
        Some(Self {
            validator,
            total,
            stored,
        })
    }

    /// The head stored under the index key.
    pub(crate) fn head(&self) -> response::Parts {
        let mut head = Response::new(()).into_parts().0;
        let ranges: Vec<String> = self
            .stored
            .iter()
            .map(|(first, last)| format!("{first}-{last}"))
            .collect();
        // `-` stands for no validator, so that the field has three words.
        let validator = if self.validator.is_empty() {
            "-"
        } else {
            &self.validator
        };
        let value = format!("{validator} {} {}", self.total, ranges.join(","));
        if let Ok(value) = HeaderValue::from_str(&value) {
            head.headers.insert(PARTS_FIELD, value);
        }
        head.headers
            .insert(header::CONTENT_LENGTH, HeaderValue::from(0));
        head
    }

    /// The stored part that holds every byte of `first..=last`.
    pub(crate) fn covering(&self, first: u64, last: u64) -> Option<(u64, u64)> {
        self.stored
            .iter()
            .copied()
            .find(|(from, to)| *from <= first && last <= *to)
    }

    /// With one more part stored.
    pub(crate) fn with(mut self, part: (u64, u64)) -> Self {
        if !self.stored.contains(&part) {
            self.stored.push(part);
            self.stored.sort_unstable();
        }
        self
    }

    /// The parts to read, in order, for the whole representation, each
    /// with the bytes of it to skip; `None` while some byte is missing.
    pub(crate) fn plan(&self) -> Option<Vec<((u64, u64), u64)>> {
        let mut plan = Vec::new();
        let mut next = 0;
        for &(first, last) in &self.stored {
            if next >= self.total {
                break;
            }
            if first > next {
                return None;
            }
            if last >= next {
                plan.push(((first, last), next - first));
                next = last + 1;
            }
        }
        (next >= self.total).then_some(plan)
    }
}

/// The key of the parts index of `key`.
pub(crate) fn index_key(key: &str) -> String {
    format!("{key}\nparts")
}

/// The key of one part.
pub(crate) fn part_key(key: &str, validator: &str, (first, last): (u64, u64)) -> String {
    format!("{key}\npart:{validator}:{first}-{last}")
}

/// A hash of the validator a response's parts share: its strong `ETag`,
/// else its `Last-Modified`; empty when it has neither.
pub(crate) fn validator_of(headers: &HeaderMap) -> String {
    let strong_etag = headers
        .get(header::ETAG)
        .filter(|etag| !etag.as_bytes().starts_with(b"W/"));
    let Some(validator) = strong_etag.or_else(|| headers.get(header::LAST_MODIFIED)) else {
        return String::new();
    };
    let digest = Sha256::digest(validator.as_bytes());
    digest[..12].iter().map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_index_reads_back_and_plans_the_whole_once_covered() {
        let index = PartIndex::new("abc".into(), 10).with((4, 9)).with((0, 5));
        let read = PartIndex::read(&index.head()).unwrap();
        assert_eq!(read, index);
        assert_eq!(read.plan(), Some(vec![((0, 5), 0), ((4, 9), 2)]));
        assert_eq!(read.covering(6, 8), Some((4, 9)));
        assert_eq!(read.covering(3, 6), None, "no one part holds it");
        let gap = PartIndex::new(String::new(), 10).with((0, 3)).with((5, 9));
        assert_eq!(PartIndex::read(&gap.head()).unwrap(), gap);
        assert_eq!(gap.plan(), None);
    }

    #[test]
    fn parts_share_a_strong_validator_or_none() {
        let headers = |pairs: &[(&'static str, &'static str)]| {
            let mut headers = HeaderMap::new();
            for (name, value) in pairs {
                headers.insert(*name, HeaderValue::from_static(value));
            }
            headers
        };
        assert_eq!(validator_of(&headers(&[])), "");
        assert_eq!(
            validator_of(&headers(&[("etag", "W/\"a\"")])),
            "",
            "weak: none"
        );
        let etag = validator_of(&headers(&[("etag", "\"a\"")]));
        assert_eq!(etag.len(), 24);
        assert_ne!(etag, validator_of(&headers(&[("etag", "\"b\"")])));
        assert!(
            !validator_of(&headers(&[(
                "last-modified",
                "Sun, 06 Nov 1994 08:49:37 GMT"
            )]))
            .is_empty()
        );
    }
}
