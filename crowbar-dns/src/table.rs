//! A compact, read-only hash table from owner names to their pre-encoded records.
//!
//! Every entry lives in one byte arena; the index is an open-addressing table of `u32`
//! offsets with linear probing, at most half full. A 20,000-host zone set (about 50,000
//! owner names) takes a few megabytes and one cache-friendly probe sequence per look-up.
//!
//! Entry layout at offset `o` in the arena:
//! `key_len:u8 key zone:u16 alias_len:u8 alias rrset_count:u8` then per RRset
//! `rtype:u16 count:u16 tails_len:u32 extra_count:u16 extra_len:u32 tails extra`.
//! RRsets are in type order, records in each RRset in byte order.

use std::hash::Hasher;

use crate::snapshot::NameHasher;

/// A borrowed RRset.
#[derive(Clone, Copy, Debug)]
pub(crate) struct RrSetRef<'a> {
    pub(crate) rtype: u16,
    pub(crate) count: u16,
    pub(crate) tails: &'a [u8],
    pub(crate) extra_count: u16,
    pub(crate) extra: &'a [u8],
}

/// The record tails of an RRset, one at a time.
pub(crate) fn tails(mut rest: &[u8]) -> impl Iterator<Item = &[u8]> + '_ {
    std::iter::from_fn(move || {
        if rest.len() < 10 {
            return None;
        }
        let len = 10 + usize::from(u16::from_be_bytes([rest[8], rest[9]]));
        let (one, more) = rest.split_at(len.min(rest.len()));
        rest = more;
        Some(one)
    })
}

impl<'a> RrSetRef<'a> {
    pub(crate) fn tails(&self) -> impl Iterator<Item = &'a [u8]> + 'a {
        tails(self.tails)
    }
}

/// A borrowed entry.
#[derive(Clone, Copy, Debug)]
pub(crate) struct EntryRef<'a> {
    pub(crate) key: &'a [u8],
    pub(crate) zone: u16,
    pub(crate) alias: Option<&'a [u8]>,
    count: u8,
    sets: &'a [u8],
}

impl<'a> EntryRef<'a> {
    pub(crate) fn rrsets(&self) -> impl Iterator<Item = RrSetRef<'a>> + 'a {
        let mut rest = self.sets;
        let mut left = self.count;
        std::iter::from_fn(move || {
            if left == 0 || rest.len() < 14 {
                return None;
            }
            left -= 1;
            let u16_at = |i: usize| u16::from_be_bytes([rest[i], rest[i + 1]]);
            let u32_at =
                |i: usize| u32::from_be_bytes([rest[i], rest[i + 1], rest[i + 2], rest[i + 3]]);
            let (rtype, count, tlen) = (u16_at(0), u16_at(2), u32_at(4) as usize);
            let (extra_count, elen) = (u16_at(8), u32_at(10) as usize);
            let body = &rest[14..];
            let r = RrSetRef {
                rtype,
                count,
                tails: &body[..tlen],
                extra_count,
                extra: &body[tlen..tlen + elen],
            };
            rest = &body[tlen + elen..];
            Some(r)
        })
    }

    pub(crate) fn find(&self, rtype: u16) -> Option<RrSetRef<'a>> {
        self.rrsets().find(|r| r.rtype == rtype)
    }
}

/// The table itself.
#[derive(Debug, Default)]
pub(crate) struct NameTable {
    slots: Box<[u32]>,
    arena: Box<[u8]>,
    len: usize,
}

fn hash(key: &[u8]) -> usize {
    let mut h = NameHasher::default();
    h.write(key);
    h.finish() as usize
}

impl NameTable {
    pub(crate) fn len(&self) -> usize {
        self.len
    }

    fn at(&self, off: usize) -> EntryRef<'_> {
        let a = &self.arena;
        let klen = usize::from(a[off]);
        let key = &a[off + 1..off + 1 + klen];
        let p = off + 1 + klen;
        let zone = u16::from_be_bytes([a[p], a[p + 1]]);
        let alen = usize::from(a[p + 2]);
        let alias = (alen > 0).then(|| &a[p + 3..p + 3 + alen]);
        let q = p + 3 + alen;
        EntryRef {
            key,
            zone,
            alias,
            count: a[q],
            sets: &a[q + 1..],
        }
    }

    /// The entry of a lower-case wire name.
    pub(crate) fn get(&self, key: &[u8]) -> Option<EntryRef<'_>> {
        if self.slots.is_empty() {
            return None;
        }
        let mask = self.slots.len() - 1;
        let mut i = hash(key) & mask;
        loop {
            let s = self.slots[i];
            if s == 0 {
                return None;
            }
            let off = s as usize - 1;
            let klen = usize::from(self.arena[off]);
            if klen == key.len() && &self.arena[off + 1..off + 1 + klen] == key {
                return Some(self.at(off));
            }
            i = (i + 1) & mask;
        }
    }

    /// Every entry, in no particular order.
    pub(crate) fn iter(&self) -> impl Iterator<Item = EntryRef<'_>> + '_ {
        self.slots
            .iter()
            .filter(|&&s| s != 0)
            .map(|&s| self.at(s as usize - 1))
    }
}

/// Packs entries into a [`NameTable`], one at a time.
#[derive(Debug)]
pub(crate) struct TableBuilder {
    slots: Vec<u32>,
    arena: Vec<u8>,
    len: usize,
}

impl TableBuilder {
    /// Room for `count` entries (the table is kept at most half full).
    pub(crate) fn new(count: usize, arena_hint: usize) -> Self {
        TableBuilder {
            slots: vec![0; (count * 2).next_power_of_two().max(16)],
            arena: Vec::with_capacity(arena_hint),
            len: 0,
        }
    }

    /// Adds one owner name (lower-case wire form, not added before) and its RRsets.
    pub(crate) fn push(
        &mut self,
        key: &[u8],
        zone: u16,
        alias: Option<&[u8]>,
        rrsets: &[RrSetRef<'_>],
    ) {
        if self.len * 2 >= self.slots.len() {
            self.grow();
        }
        let arena = &mut self.arena;
        let off = arena.len();
        arena.push(key.len() as u8);
        arena.extend_from_slice(key);
        arena.extend_from_slice(&zone.to_be_bytes());
        let alias = alias.unwrap_or(&[]);
        arena.push(alias.len() as u8);
        arena.extend_from_slice(alias);
        arena.push(rrsets.len() as u8);
        for r in rrsets {
            arena.extend_from_slice(&r.rtype.to_be_bytes());
            arena.extend_from_slice(&r.count.to_be_bytes());
            arena.extend_from_slice(&(r.tails.len() as u32).to_be_bytes());
            arena.extend_from_slice(&r.extra_count.to_be_bytes());
            arena.extend_from_slice(&(r.extra.len() as u32).to_be_bytes());
            arena.extend_from_slice(r.tails);
            arena.extend_from_slice(r.extra);
        }
        self.place(key, off as u32 + 1);
        self.len += 1;
    }

    fn place(&mut self, key: &[u8], slot: u32) {
        let mask = self.slots.len() - 1;
        let mut i = hash(key) & mask;
        while self.slots[i] != 0 {
            i = (i + 1) & mask;
        }
        self.slots[i] = slot;
    }

    fn grow(&mut self) {
        let bigger = vec![0; self.slots.len() * 2];
        let old = std::mem::replace(&mut self.slots, bigger);
        for s in old.into_iter().filter(|&s| s != 0) {
            let off = s as usize - 1;
            let klen = usize::from(self.arena[off]);
            let key = self.arena[off + 1..off + 1 + klen].to_vec();
            self.place(&key, s);
        }
    }

    /// The finished, read-only table.
    pub(crate) fn finish(self) -> NameTable {
        NameTable {
            slots: self.slots.into(),
            arena: self.arena.into(),
            len: self.len,
        }
    }
}
