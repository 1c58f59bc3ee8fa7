//! The runs in progress: a slab as long as the most runs ever in progress at once, and, per
//! noderole, the slot of its run. A [`RunId`] names its noderole, so finding a run, starting
//! one and ending one are two array reads, never a hash.

use crowbar_core::{NodeRoleId, Timestamp};

use crate::RunId;

/// A noderole id as an index (ids are dense: they index the model's own tables).
fn index(id: NodeRoleId) -> usize {
    id.get() as usize
}

/// One run in progress.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Running {
    pub(crate) run: RunId,
    pub(crate) started: Timestamp,
    pub(crate) deadline: Option<Timestamp>,
}

impl Running {
    pub(crate) fn noderole(&self) -> NodeRoleId {
        self.run.noderole()
    }
}

/// The runs in progress, at most one per noderole.
#[derive(Clone, Debug, Default)]
pub(crate) struct Runs {
    /// Every slot ever used; vacant ones are listed in `free`.
    slots: Vec<Option<Running>>,
    free: Vec<u32>,
    /// Per noderole id: its run's slot plus one, 0 for none.
    of: Vec<u32>,
    len: usize,
}

impl Runs {
    /// Room for `runs` runs at once among `noderoles` noderole ids, so that the first waves
    /// do not grow the tables by doubling.
    pub(crate) fn with_capacity(runs: usize, noderoles: usize) -> Runs {
        Runs {
            slots: Vec::with_capacity(runs),
            free: Vec::with_capacity(runs),
            of: vec![0; noderoles],
            len: 0,
        }
    }

    pub(crate) fn len(&self) -> usize {
        self.len
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.len == 0
    }

    fn slot_of(&self, noderole: NodeRoleId) -> Option<usize> {
        match self.of.get(index(noderole)) {
            Some(&s) if s != 0 => Some(s as usize - 1),
            _ => None,
        }
    }

    /// Records a run; its noderole must have none in progress.
    #[inline]
    pub(crate) fn insert(&mut self, running: Running) {
        let i = index(running.noderole());
        if self.of.len() <= i {
            self.of.resize(i + 1, 0);
        }
        debug_assert_eq!(self.of[i], 0, "one run per noderole");
        let slot = match self.free.pop() {
            Some(s) => {
                self.slots[s as usize] = Some(running);
                s
            }
            None => {
                self.slots.push(Some(running));
                u32::try_from(self.slots.len() - 1).expect("fewer than 2^32 runs at once")
            }
        };
        self.of[i] = slot + 1;
        self.len += 1;
    }

    /// Every run in progress, in no particular order.
    pub(crate) fn iter(&self) -> impl Iterator<Item = &Running> {
        self.slots.iter().flatten()
    }

    /// The run in progress for `noderole`.
    pub(crate) fn of(&self, noderole: NodeRoleId) -> Option<&Running> {
        self.slots[self.slot_of(noderole)?].as_ref()
    }

    /// The run `run`, if it is still in progress.
    pub(crate) fn get(&self, run: RunId) -> Option<&Running> {
        self.of(run.noderole()).filter(|r| r.run == run)
    }

    /// Ends the run in progress for `noderole`.
    pub(crate) fn take_of(&mut self, noderole: NodeRoleId) -> Option<Running> {
        let slot = self.slot_of(noderole)?;
        self.of[index(noderole)] = 0;
        self.free.push(slot as u32);
        self.len -= 1;
        self.slots[slot].take()
    }

    /// Ends `run`, if it is still in progress.
    #[inline]
    pub(crate) fn remove(&mut self, run: RunId) -> Option<Running> {
        // `take_of`'s bookkeeping repeated on the entry in hand: sharing it through a helper
        // cost 24 instructions per noderole of an anneal (callgrind, 1k nodes).
        let i = index(run.noderole());
        let slot = self.slot_of(run.noderole())?;
        let entry = &mut self.slots[slot];
        if entry.as_ref()?.run != run {
            return None;
        }
        self.of[i] = 0;
        self.free.push(slot as u32);
        self.len -= 1;
        entry.take()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(seq: u64, noderole: u64) -> Running {
        Running {
            run: RunId::new(seq, NodeRoleId(noderole)),
            started: Timestamp(seq),
            deadline: None,
        }
    }

    #[test]
    fn runs_are_found_by_id_and_by_noderole_and_slots_are_reused() {
        let mut runs = Runs::default();
        runs.insert(run(1, 7));
        runs.insert(run(2, 3));
        assert_eq!(runs.len(), 2);
        assert_eq!(
            runs.get(RunId::new(1, NodeRoleId(7))).unwrap().started,
            Timestamp(1)
        );
        assert_eq!(
            runs.of(NodeRoleId(3)).unwrap().run,
            RunId::new(2, NodeRoleId(3))
        );
        assert!(runs.of(NodeRoleId(4)).is_none());
        assert!(runs.of(NodeRoleId(1_000)).is_none(), "past the table's end");
        // Ending a run frees its slot for the next one; the old id no longer matches.
        assert_eq!(
            runs.remove(RunId::new(1, NodeRoleId(7))).unwrap().started,
            Timestamp(1)
        );
        assert!(runs.remove(RunId::new(1, NodeRoleId(7))).is_none());
        runs.insert(run(3, 7));
        assert_eq!(runs.slots.len(), 2, "the freed slot was reused");
        assert!(
            runs.get(RunId::new(1, NodeRoleId(7))).is_none(),
            "a stale id of the noderole"
        );
        assert!(runs.remove(RunId::new(1, NodeRoleId(7))).is_none());
        assert_eq!(runs.len(), 2);
        assert_eq!(runs.take_of(NodeRoleId(7)).unwrap().run.seq(), 3);
        assert_eq!(runs.take_of(NodeRoleId(3)).unwrap().run.seq(), 2);
        assert!(runs.is_empty());
        assert!(runs.take_of(NodeRoleId(3)).is_none());
    }
}
