//! The stored pieces of a partially stored object (`[cache] partial`):
//! byte ranges of one representation, sorted, with overlapping and
//! adjacent pieces joined. Combining builds a new set (objects are
//! immutable once stored); the caller bounds their number and bytes.

use bytes::{Bytes, BytesMut};

/// Pieces of a representation of `total` bytes.
#[derive(Debug, Clone)]
pub struct Pieces {
    total: u64,
    /// `(start, bytes)`, sorted by start, disjoint and not adjacent.
    parts: Vec<(u64, Bytes)>,
}

impl Pieces {
    /// One piece: `data` at `start` of `total` bytes.
    pub fn new(total: u64, start: u64, data: Bytes) -> Self {
        Self {
            total,
            parts: vec![(start, data)],
        }
    }

    /// The representation's whole length.
    pub fn total(&self) -> u64 {
        self.total
    }

    /// Separate pieces.
    pub fn count(&self) -> usize {
        self.parts.len()
    }

    /// Bytes held.
    pub fn bytes(&self) -> u64 {
        self.parts.iter().map(|(_, b)| b.len() as u64).sum()
    }

    /// These pieces and `data` at `start`, joined where they meet. The
    /// caller made sure both belong to the same representation (same strong
    /// validator, same total), so overlapping bytes are equal: the stored
    /// ones are kept.
    pub fn with(&self, start: u64, data: Bytes) -> Self {
        let mut all = self.parts.clone();
        all.push((start, data));
        all.sort_by_key(|(s, _)| *s);
        let mut parts: Vec<(u64, Bytes)> = Vec::with_capacity(all.len());
        for (s, b) in all {
            let end = s + b.len() as u64;
            match parts.last_mut() {
                Some((ls, lb)) if s <= *ls + lb.len() as u64 => {
                    let last_end = *ls + lb.len() as u64;
                    if end > last_end {
                        let mut joined = BytesMut::with_capacity((end - *ls) as usize);
                        joined.extend_from_slice(lb);
                        joined.extend_from_slice(&b[(last_end - s) as usize..]);
                        *lb = joined.freeze();
                    }
                }
                _ => parts.push((s, b)),
            }
        }
        Self {
            total: self.total,
            parts,
        }
    }

    /// Bytes `start..=end`, when one piece holds them all.
    pub fn covers(&self, start: u64, end: u64) -> Option<Bytes> {
        self.parts.iter().find_map(|(s, b)| {
            let piece_end = s + b.len() as u64;
            (*s <= start && end < piece_end)
                .then(|| b.slice((start - s) as usize..(end - s + 1) as usize))
        })
    }

    /// The whole representation, once every byte is there.
    pub fn complete(&self) -> Option<Bytes> {
        match self.parts.as_slice() {
            [(0, b)] if b.len() as u64 == self.total => Some(b.clone()),
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn b(s: &'static str) -> Bytes {
        Bytes::from_static(s.as_bytes())
    }

    #[test]
    fn pieces_join_when_they_meet() {
        let p = Pieces::new(10, 0, b("0123"));
        assert_eq!(p.covers(1, 3).unwrap(), "123");
        assert!(p.covers(3, 4).is_none());
        let p = p.with(6, b("6789"));
        assert_eq!(p.count(), 2);
        assert!(p.complete().is_none());
        let p = p.with(4, b("45"));
        assert_eq!(p.count(), 1, "adjacent pieces are one");
        assert_eq!(p.complete().unwrap(), "0123456789");
        let overlap = Pieces::new(10, 2, b("2345"))
            .with(0, b("0123"))
            .with(4, b("456"));
        assert_eq!(overlap.count(), 1);
        assert_eq!(overlap.covers(0, 6).unwrap(), "0123456");
        assert_eq!(overlap.bytes(), 7);
        let inside = Pieces::new(10, 0, b("012345")).with(2, b("23"));
        assert_eq!(inside.covers(0, 5).unwrap(), "012345");
    }
}
