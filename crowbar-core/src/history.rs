//! [`HistoryLog`]: a batch's history entries, 24 bytes each.

use std::fmt;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::{Cause, HistoryEntry, NodeRoleId, NodeRoleState, Timestamp};

/// The history entries of a [`Batch`](crate::Batch), in order, kept compact: 24 bytes an
/// entry instead of a [`HistoryEntry`]'s 48 (whose [`Cause`] alone takes 24 for the sake of a
/// failure's message), each time kept once for a run of entries that share it (an annealer's
/// wave stamps all its changes with one), and the causes that carry text kept whole beside
/// the entries.
///
/// An anneal records three entries per noderole, so this is most of the bytes a batch carries
/// and a store keeps: [`MemStore`](crate::MemStore) keeps the log as it comes, converting
/// nothing. Entries go in with [`HistoryLog::push`] and come out as [`HistoryEntry`] values,
/// by [`HistoryLog::iter`], [`HistoryLog::get`] or by value:
///
/// ```
/// use crowbar_core::{Cause, HistoryEntry, HistoryLog, NodeRoleId, NodeRoleState, Timestamp};
///
/// let entry = |n, cause| HistoryEntry {
///     noderole: NodeRoleId(n),
///     from: Some(NodeRoleState::Transition),
///     to: NodeRoleState::Error,
///     cause,
///     at: Timestamp(1_000),
/// };
/// let mut log = HistoryLog::new();
/// log.push(entry(7, Cause::Timeout));
/// log.push(entry(8, Cause::JigFailed { message: "disk full".into() }));
/// assert_eq!(log.len(), 2);
/// assert_eq!(log.get(1), Some(entry(8, Cause::JigFailed { message: "disk full".into() })));
/// let all: Vec<HistoryEntry> = log.into_iter().collect();
/// assert_eq!(all[0], entry(7, Cause::Timeout));
/// ```
#[derive(Clone, Default)]
pub struct HistoryLog {
    entries: Vec<Packed>,
    times: Vec<Timestamp>,
    causes: Vec<Cause>,
}

/// One entry as kept.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Packed {
    noderole: u64,
    /// The noderole the cause names, or the index in `causes` of a cause kept whole.
    payload: u64,
    /// The index of the time in `times`.
    time: u32,
    /// [`NodeRoleState::code`], or [`NO_STATE`] for a creation.
    from: i8,
    to: i8,
    cause: Tag,
}

const _: () = assert!(std::mem::size_of::<Packed>() == 24);

/// `from` of a noderole's first entry.
const NO_STATE: i8 = i8::MIN;

/// A [`Cause`] without its payload.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Tag {
    Bind,
    Commit,
    Propose,
    JigStarted,
    JigSucceeded,
    ParentActive,
    Ripple,
    NodeDied,
    Retry,
    Timeout,
    Recovery,
    ClusterPeer,
    Operator,
    /// Kept whole in `causes`.
    Whole,
}

impl HistoryLog {
    /// An empty log.
    pub fn new() -> HistoryLog {
        HistoryLog::default()
    }

    /// An empty log with room for `entries` entries.
    pub fn with_capacity(entries: usize) -> HistoryLog {
        HistoryLog {
            entries: Vec::with_capacity(entries),
            ..HistoryLog::default()
        }
    }

    /// How many entries it holds.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Whether it holds none.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Appends an entry.
    pub fn push(&mut self, entry: HistoryEntry) {
        self.record(entry.noderole, entry.from, entry.to, entry.cause, entry.at);
    }

    /// Appends an entry given by its parts: [`HistoryLog::push`] without building the entry
    /// first. Always inlined, so that a caller with a constant cause keeps only its case.
    #[inline(always)]
    pub(crate) fn record(
        &mut self,
        noderole: NodeRoleId,
        from: Option<NodeRoleState>,
        to: NodeRoleState,
        cause: Cause,
        at: Timestamp,
    ) {
        if self.times.last() != Some(&at) {
            self.times.push(at);
        }
        let (cause, payload) = match cause {
            Cause::Bind => (Tag::Bind, 0),
            Cause::Commit => (Tag::Commit, 0),
            Cause::Propose => (Tag::Propose, 0),
            Cause::JigStarted => (Tag::JigStarted, 0),
            Cause::JigSucceeded => (Tag::JigSucceeded, 0),
            Cause::ParentActive { parent } => (Tag::ParentActive, parent.0),
            Cause::Ripple { origin } => (Tag::Ripple, origin.0),
            Cause::NodeDied => (Tag::NodeDied, 0),
            Cause::Retry => (Tag::Retry, 0),
            Cause::Timeout => (Tag::Timeout, 0),
            Cause::Recovery => (Tag::Recovery, 0),
            Cause::ClusterPeer { peer } => (Tag::ClusterPeer, peer.0),
            Cause::Operator => (Tag::Operator, 0),
            whole @ Cause::JigFailed { .. } => {
                self.causes.push(whole);
                (Tag::Whole, self.causes.len() as u64 - 1)
            }
        };
        self.entries.push(Packed {
            noderole: noderole.0,
            payload,
            time: self.times.len() as u32 - 1,
            from: from.map_or(NO_STATE, NodeRoleState::code),
            to: to.code(),
            cause,
        });
    }

    /// The entry at `index`, as it was pushed.
    pub fn get(&self, index: usize) -> Option<HistoryEntry> {
        let p = *self.entries.get(index)?;
        let state = |code: i8| NodeRoleState::from_code(code.into()).expect("kept from a state");
        let id = NodeRoleId(p.payload);
        Some(HistoryEntry {
            noderole: NodeRoleId(p.noderole),
            from: (p.from != NO_STATE).then(|| state(p.from)),
            to: state(p.to),
            cause: match p.cause {
                Tag::Bind => Cause::Bind,
                Tag::Commit => Cause::Commit,
                Tag::Propose => Cause::Propose,
                Tag::JigStarted => Cause::JigStarted,
                Tag::JigSucceeded => Cause::JigSucceeded,
                Tag::ParentActive => Cause::ParentActive { parent: id },
                Tag::Ripple => Cause::Ripple { origin: id },
                Tag::NodeDied => Cause::NodeDied,
                Tag::Retry => Cause::Retry,
                Tag::Timeout => Cause::Timeout,
                Tag::Recovery => Cause::Recovery,
                Tag::ClusterPeer => Cause::ClusterPeer { peer: id },
                Tag::Operator => Cause::Operator,
                Tag::Whole => self.causes[p.payload as usize].clone(),
            },
            at: self.times[p.time as usize],
        })
    }

    /// The entry at `*next`, moving `next` past it: the iterators' step.
    fn step(&self, next: &mut usize) -> Option<HistoryEntry> {
        let e = self.get(*next)?;
        *next += 1;
        Some(e)
    }

    /// The iterators' size hint from `next` on.
    fn left(&self, next: usize) -> (usize, Option<usize>) {
        let n = self.len().saturating_sub(next);
        (n, Some(n))
    }

    /// The noderole of the entry at `index` (no other field decoded).
    pub(crate) fn noderole_at(&self, index: usize) -> NodeRoleId {
        NodeRoleId(self.entries[index].noderole)
    }

    /// The entries in order.
    pub fn iter(&self) -> Iter<'_> {
        Iter { log: self, next: 0 }
    }

    /// Appends the entries of `other`, in order.
    pub fn extend(&mut self, other: HistoryLog) {
        if self.is_empty() {
            *self = other;
            return;
        }
        let (times, causes) = (self.times.len() as u32, self.causes.len() as u64);
        self.entries.extend(other.entries.into_iter().map(|mut p| {
            p.time += times;
            if p.cause == Tag::Whole {
                p.payload += causes;
            }
            p
        }));
        self.times.extend(other.times);
        self.causes.extend(other.causes);
    }

    /// Where the log ends now, for [`HistoryLog::truncate_to`].
    pub(crate) fn mark(&self) -> HistoryMark {
        HistoryMark {
            entries: self.entries.len(),
            times: self.times.len(),
            causes: self.causes.len(),
        }
    }

    /// Drops the entries pushed since `mark` was taken.
    pub(crate) fn truncate_to(&mut self, mark: HistoryMark) {
        self.entries.truncate(mark.entries);
        self.times.truncate(mark.times);
        self.causes.truncate(mark.causes);
    }

    /// Empties the log, keeping its memory.
    pub fn clear(&mut self) {
        self.entries.clear();
        self.times.clear();
        self.causes.clear();
    }

    /// Gives back the memory beyond what the entries need.
    pub(crate) fn shrink_to_fit(&mut self) {
        self.entries.shrink_to_fit();
        self.times.shrink_to_fit();
    }
}

/// Where a [`HistoryLog`] ended, to take it back there.
#[derive(Clone, Copy, Debug)]
pub(crate) struct HistoryMark {
    entries: usize,
    times: usize,
    causes: usize,
}

/// The entries of a [`HistoryLog`], in order, decoded.
#[derive(Clone, Debug)]
pub struct Iter<'a> {
    log: &'a HistoryLog,
    next: usize,
}

impl Iterator for Iter<'_> {
    type Item = HistoryEntry;

    fn next(&mut self) -> Option<HistoryEntry> {
        self.log.step(&mut self.next)
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        self.log.left(self.next)
    }
}

impl ExactSizeIterator for Iter<'_> {}

/// The entries of a [`HistoryLog`] taken by value, in order, decoded.
#[derive(Clone, Debug)]
pub struct IntoIter {
    log: HistoryLog,
    next: usize,
}

impl Iterator for IntoIter {
    type Item = HistoryEntry;

    fn next(&mut self) -> Option<HistoryEntry> {
        self.log.step(&mut self.next)
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        self.log.left(self.next)
    }
}

impl ExactSizeIterator for IntoIter {}

impl IntoIterator for HistoryLog {
    type Item = HistoryEntry;
    type IntoIter = IntoIter;

    fn into_iter(self) -> IntoIter {
        IntoIter { log: self, next: 0 }
    }
}

impl<'a> IntoIterator for &'a HistoryLog {
    type Item = HistoryEntry;
    type IntoIter = Iter<'a>;

    fn into_iter(self) -> Iter<'a> {
        self.iter()
    }
}

impl FromIterator<HistoryEntry> for HistoryLog {
    fn from_iter<I: IntoIterator<Item = HistoryEntry>>(iter: I) -> HistoryLog {
        let mut log = HistoryLog::new();
        for e in iter {
            log.push(e);
        }
        log
    }
}

impl Extend<HistoryEntry> for HistoryLog {
    fn extend<I: IntoIterator<Item = HistoryEntry>>(&mut self, iter: I) {
        for e in iter {
            self.push(e);
        }
    }
}

/// Two logs are equal when they hold the same entries, however they were put together.
impl PartialEq for HistoryLog {
    fn eq(&self, other: &HistoryLog) -> bool {
        self.len() == other.len() && self.iter().eq(other.iter())
    }
}

impl fmt::Debug for HistoryLog {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_list().entries(self.iter()).finish()
    }
}

/// As a sequence of [`HistoryEntry`].
impl Serialize for HistoryLog {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_seq(self.iter())
    }
}

impl<'de> Deserialize<'de> for HistoryLog {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<HistoryLog, D::Error> {
        Ok(Vec::<HistoryEntry>::deserialize(deserializer)?
            .into_iter()
            .collect())
    }
}

/// One cause of every kind, with payloads that vary with `k` and reach the ids' extremes: for
/// the tests of the log and of the stores that keep it.
#[cfg(test)]
pub(crate) fn every_cause(k: u64) -> Vec<Cause> {
    vec![
        Cause::Bind,
        Cause::Commit,
        Cause::Propose,
        Cause::JigStarted,
        Cause::JigSucceeded,
        Cause::JigFailed {
            message: format!("failure {k}"),
        },
        Cause::ParentActive {
            parent: NodeRoleId(u64::MAX - k),
        },
        Cause::Ripple {
            origin: NodeRoleId(k + 7),
        },
        Cause::NodeDied,
        Cause::Retry,
        Cause::Timeout,
        Cause::Recovery,
        Cause::ClusterPeer {
            peer: NodeRoleId((1 << 40) + k),
        },
        Cause::Operator,
    ]
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(n: u64, cause: Cause, at: u64) -> HistoryEntry {
        HistoryEntry {
            noderole: NodeRoleId(n),
            from: if n.is_multiple_of(3) {
                None
            } else {
                Some(NodeRoleState::Todo)
            },
            to: NodeRoleState::Transition,
            cause,
            at: Timestamp(at),
        }
    }

    fn sample(k: u64) -> Vec<HistoryEntry> {
        every_cause(k)
            .into_iter()
            .enumerate()
            .map(|(i, c)| entry(k * 100 + i as u64, c, k * 10 + i as u64 / 4))
            .collect()
    }

    #[test]
    fn every_entry_comes_back_as_pushed() {
        let want = sample(1);
        let log: HistoryLog = want.iter().cloned().collect();
        assert_eq!(log.len(), want.len());
        assert_eq!(log.iter().collect::<Vec<_>>(), want);
        assert_eq!((&log).into_iter().len(), want.len());
        assert_eq!(log.clone().into_iter().collect::<Vec<_>>(), want);
        assert_eq!(log.get(want.len()), None);
        // Four entries share each time: it is kept once for each run.
        assert_eq!(log.times.len(), want.len().div_ceil(4));
    }

    #[test]
    fn extend_renumbers_times_and_whole_causes() {
        let (a, b) = (sample(1), sample(2));
        let mut log: HistoryLog = a.iter().cloned().collect();
        log.extend(b.iter().cloned().collect::<HistoryLog>());
        let mut want = a.clone();
        want.extend(b.iter().cloned());
        assert_eq!(log.iter().collect::<Vec<_>>(), want);
        // Equal to the same entries pushed one by one, though kept differently.
        assert_eq!(log, want.iter().cloned().collect::<HistoryLog>());
        assert_ne!(log, a.iter().cloned().collect::<HistoryLog>());
        let mut empty = HistoryLog::new();
        empty.extend(log.clone());
        assert_eq!(empty, log);
    }

    #[test]
    fn truncating_to_a_mark_forgets_what_came_after() {
        let mut log: HistoryLog = sample(1).into_iter().collect();
        let before = log.clone();
        let mark = log.mark();
        log.extend(sample(2).into_iter().collect::<HistoryLog>());
        log.push(entry(5, Cause::Timeout, 999));
        log.truncate_to(mark);
        assert_eq!(log, before);
        assert_eq!(log.causes.len(), 1);
        // What is pushed next refers to the right time and cause.
        log.push(entry(
            6,
            Cause::JigFailed {
                message: "x".into(),
            },
            1,
        ));
        assert_eq!(
            log.get(log.len() - 1),
            Some(entry(
                6,
                Cause::JigFailed {
                    message: "x".into()
                },
                1
            ))
        );
    }

    #[test]
    fn serializes_as_a_list_of_entries() {
        let want = sample(3);
        let log: HistoryLog = want.iter().cloned().collect();
        let json = serde_json::to_string(&log).unwrap();
        assert_eq!(json, serde_json::to_string(&want).unwrap());
        let back: HistoryLog = serde_json::from_str(&json).unwrap();
        assert_eq!(back, log);
        assert_eq!(format!("{log:?}"), format!("{want:?}"));
    }
}
