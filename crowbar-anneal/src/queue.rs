//! The run queues: which noderole each node would start next, and which node goes first.
//!
//! Both orders are Crowbar's (cohort, then id). A node's queue is a short sorted vector (a
//! node has a handful of runnable noderoles at a time); the heads of all nodes sit in one
//! bitset of noderole ids per cohort, where insert, remove and smallest cost a few word
//! operations whatever the cluster's size, instead of a balanced tree's O(log n) pointer walk.

/// A set of dense ids (`usize`), as a three-level bitset: bit `i` of level 0 is id `i`; bit
/// `j` of level 1 says word `j` of level 0 is not zero; level 2 does the same for level 1. The
/// smallest id is found by scanning level 2 (one word per 262,144 ids) and descending.
#[derive(Clone, Debug, Default)]
pub(crate) struct IdSet {
    words: [Vec<u64>; 3],
    len: usize,
}

impl IdSet {
    fn grow(&mut self, i: usize) {
        for (level, words) in self.words.iter_mut().enumerate() {
            let w = i >> (6 * (level + 1));
            if words.len() <= w {
                words.resize(w + 1, 0);
            }
        }
    }

    /// Adds `i`; false if it was there.
    #[inline(always)]
    pub(crate) fn insert(&mut self, i: usize) -> bool {
        // The levels grow together: when level 0 holds word `i >> 6`, the others hold theirs.
        if self.words[0].len() <= i >> 6 {
            self.grow(i);
        }
        let bit = 1u64 << (i & 63);
        let w0 = &mut self.words[0][i >> 6];
        if *w0 & bit != 0 {
            return false;
        }
        *w0 |= bit;
        self.words[1][i >> 12] |= 1 << ((i >> 6) & 63);
        self.words[2][i >> 18] |= 1 << ((i >> 12) & 63);
        self.len += 1;
        true
    }

    /// Removes `i`; false if it was not there.
    #[inline]
    pub(crate) fn remove(&mut self, i: usize) -> bool {
        let Some(w0) = self.words[0].get_mut(i >> 6) else {
            return false;
        };
        let bit = 1u64 << (i & 63);
        if *w0 & bit == 0 {
            return false;
        }
        *w0 &= !bit;
        self.len -= 1;
        if *w0 == 0 {
            let w1 = &mut self.words[1][i >> 12];
            *w1 &= !(1 << ((i >> 6) & 63));
            if *w1 == 0 {
                self.words[2][i >> 18] &= !(1 << ((i >> 12) & 63));
            }
        }
        true
    }

    /// Whether `i` is in the set.
    pub(crate) fn contains(&self, i: usize) -> bool {
        self.words[0]
            .get(i >> 6)
            .is_some_and(|w| w & (1 << (i & 63)) != 0)
    }

    /// The smallest id.
    pub(crate) fn first(&self) -> Option<usize> {
        let (k, w2) = self.words[2].iter().enumerate().find(|(_, w)| **w != 0)?;
        let j1 = (k << 6) | w2.trailing_zeros() as usize;
        let j0 = (j1 << 6) | self.words[1][j1].trailing_zeros() as usize;
        Some((j0 << 6) | self.words[0][j0].trailing_zeros() as usize)
    }

    /// Removes the smallest ids, in order, handing each to `take`, until `take` says to stop
    /// (it returns false when it wants no more) or the set is empty. One descent through the
    /// levels serves every id of a level-0 word: a wave that takes a thousand heads costs a
    /// few instructions per id instead of a search and a removal each.
    pub(crate) fn drain_first(&mut self, mut take: impl FnMut(usize) -> bool) {
        let [l0, l1, l2] = &mut self.words;
        for (k, w2) in l2.iter_mut().enumerate() {
            while *w2 != 0 {
                let j1 = (k << 6) | w2.trailing_zeros() as usize;
                while l1[j1] != 0 {
                    let j0 = (j1 << 6) | l1[j1].trailing_zeros() as usize;
                    while l0[j0] != 0 {
                        let b = l0[j0].trailing_zeros() as usize;
                        l0[j0] &= l0[j0] - 1;
                        self.len -= 1;
                        let more = take((j0 << 6) | b);
                        if !more {
                            if l0[j0] == 0 {
                                l1[j1] &= !(1 << (j0 & 63));
                                if l1[j1] == 0 {
                                    *w2 &= !(1 << (j1 & 63));
                                }
                            }
                            return;
                        }
                    }
                    l1[j1] &= !(1 << (j0 & 63));
                }
                *w2 &= !(1 << (j1 & 63));
            }
        }
    }

    pub(crate) fn len(&self) -> usize {
        self.len
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.len == 0
    }
}

/// Keys `(cohort, id)` in that order: one [`IdSet`] per cohort, and an [`IdSet`] of the
/// cohorts that have keys.
#[derive(Clone, Debug, Default)]
pub(crate) struct CohortQueue {
    by_cohort: Vec<IdSet>,
    cohorts: IdSet,
}

impl CohortQueue {
    #[inline(always)]
    pub(crate) fn insert(&mut self, cohort: u32, id: u64) {
        let c = cohort as usize;
        if self.by_cohort.len() <= c {
            self.by_cohort.resize_with(c + 1, IdSet::default);
        }
        let set = &mut self.by_cohort[c];
        if set.insert(id as usize) && set.len() == 1 {
            // The cohort's first key: it joins the cohorts with keys.
            self.cohorts.insert(c);
        }
    }

    #[inline]
    pub(crate) fn remove(&mut self, cohort: u32, id: u64) {
        let c = cohort as usize;
        if let Some(set) = self.by_cohort.get_mut(c)
            && set.remove(id as usize)
            && set.is_empty()
        {
            self.cohorts.remove(c);
        }
    }

    #[cfg(test)]
    pub(crate) fn pop_first(&mut self) -> Option<(u32, u64)> {
        let c = self.cohorts.first()?;
        let set = &mut self.by_cohort[c];
        let id = set.first().expect("listed cohorts have keys");
        set.remove(id);
        if set.is_empty() {
            self.cohorts.remove(c);
        }
        Some((c as u32, id as u64))
    }

    /// Removes the smallest keys in order, handing each to `take`, until `take` says to stop
    /// (it returns false when it wants no more) or the queue is empty.
    pub(crate) fn drain_first(&mut self, mut take: impl FnMut(u32, u64) -> bool) {
        while let Some(c) = self.cohorts.first() {
            let set = &mut self.by_cohort[c];
            let mut more = true;
            set.drain_first(|id| {
                more = take(c as u32, id as u64);
                more
            });
            if set.is_empty() {
                self.cohorts.remove(c);
            }
            if !more {
                return;
            }
        }
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.cohorts.is_empty()
    }

    /// Whether `(cohort, id)` is queued.
    pub(crate) fn contains(&self, cohort: u32, id: u64) -> bool {
        self.by_cohort
            .get(cohort as usize)
            .is_some_and(|set| set.contains(id as usize))
    }

    pub(crate) fn len(&self) -> usize {
        self.by_cohort.iter().map(IdSet::len).sum()
    }
}

/// One node's runnable noderoles, sorted by `(cohort, id)`. Most nodes have at most one at a
/// time, kept inline (no heap block to fetch when the annealer sweeps the nodes); more spill
/// into a sorted vector, kept once allocated.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub(crate) enum NodeQueue {
    /// Nothing runnable.
    #[default]
    Empty,
    /// One key, inline.
    One((u32, u64)),
    /// Any number, sorted.
    Many(Vec<(u32, u64)>),
}

impl NodeQueue {
    #[inline]
    pub(crate) fn insert(&mut self, key: (u32, u64)) {
        match self {
            NodeQueue::Empty => *self = NodeQueue::One(key),
            NodeQueue::One(k) => {
                if *k != key {
                    let (a, b) = if *k < key { (*k, key) } else { (key, *k) };
                    *self = NodeQueue::Many(vec![a, b]);
                }
            }
            NodeQueue::Many(v) => {
                if let Err(at) = v.binary_search(&key) {
                    v.insert(at, key);
                }
            }
        }
    }

    #[inline]
    pub(crate) fn remove(&mut self, key: (u32, u64)) {
        match self {
            NodeQueue::Empty => {}
            NodeQueue::One(k) => {
                if *k == key {
                    *self = NodeQueue::Empty;
                }
            }
            NodeQueue::Many(v) => {
                if let Ok(at) = v.binary_search(&key) {
                    v.remove(at);
                }
            }
        }
    }

    #[inline]
    pub(crate) fn first(&self) -> Option<(u32, u64)> {
        match self {
            NodeQueue::Empty => None,
            NodeQueue::One(k) => Some(*k),
            NodeQueue::Many(v) => v.first().copied(),
        }
    }

    /// The keys, in order.
    pub(crate) fn to_vec(&self) -> Vec<(u32, u64)> {
        match self {
            NodeQueue::Empty => Vec::new(),
            NodeQueue::One(k) => vec![*k],
            NodeQueue::Many(v) => v.clone(),
        }
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;

    use proptest::prelude::*;

    use super::*;

    #[test]
    fn id_set_spans_levels() {
        let mut s = IdSet::default();
        assert_eq!(s.first(), None);
        for i in [300_000, 5, 4_096, 262_144, 63, 64] {
            assert!(s.insert(i));
        }
        assert!(!s.insert(63));
        assert_eq!(s.len(), 6);
        let mut order = Vec::new();
        while let Some(i) = s.first() {
            assert!(s.remove(i));
            order.push(i);
        }
        assert_eq!(order, [5, 63, 64, 4_096, 262_144, 300_000]);
        assert!(s.is_empty());
        assert!(!s.remove(5));
        assert!(!s.remove(10_000_000));
    }

    #[derive(Clone, Debug)]
    enum Op {
        Insert(u32, u64),
        Remove(u32, u64),
        Pop,
        /// Takes up to this many keys at once.
        Drain(usize),
    }

    fn op() -> impl Strategy<Value = Op> {
        let key = (0u32..5, prop_oneof![0u64..200, 0u64..2_000_000]);
        prop_oneof![
            key.clone().prop_map(|(c, i)| Op::Insert(c, i)),
            key.prop_map(|(c, i)| Op::Remove(c, i)),
            Just(Op::Pop),
            (0usize..70).prop_map(Op::Drain),
        ]
    }

    proptest! {
        /// The cohort queue pops in the order a `BTreeSet<(cohort, id)>` would.
        #[test]
        fn cohort_queue_matches_btree(ops in proptest::collection::vec(op(), 0..300)) {
            let mut q = CohortQueue::default();
            let mut model = BTreeSet::new();
            for op in ops {
                match op {
                    Op::Insert(c, i) => {
                        q.insert(c, i);
                        model.insert((c, i));
                    }
                    Op::Remove(c, i) => {
                        q.remove(c, i);
                        model.remove(&(c, i));
                    }
                    Op::Pop => prop_assert_eq!(q.pop_first(), model.pop_first()),
                    Op::Drain(n) => {
                        let mut got = Vec::new();
                        if n > 0 {
                            q.drain_first(|c, i| {
                                got.push((c, i));
                                got.len() < n
                            });
                        }
                        let want: Vec<_> = (0..n).map_while(|_| model.pop_first()).collect();
                        prop_assert_eq!(got, want);
                    }
                }
                prop_assert_eq!(q.len(), model.len());
                prop_assert_eq!(q.is_empty(), model.is_empty());
            }
        }

        /// A node queue stays sorted and free of duplicates.
        #[test]
        fn node_queue_matches_btree(ops in proptest::collection::vec(op(), 0..100)) {
            let mut q = NodeQueue::default();
            let mut model = BTreeSet::new();
            for op in ops {
                match op {
                    Op::Insert(c, i) => {
                        q.insert((c, i));
                        model.insert((c, i));
                    }
                    Op::Remove(c, i) => {
                        q.remove((c, i));
                        model.remove(&(c, i));
                    }
                    Op::Pop | Op::Drain(_) => {}
                }
                prop_assert_eq!(q.to_vec(), model.iter().copied().collect::<Vec<_>>());
                prop_assert_eq!(q.first(), model.first().copied());
            }
        }
    }
}
