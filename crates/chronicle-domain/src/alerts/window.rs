//! A patient's recent readings of one kind, held in memory between evaluations so that each
//! evaluation reads from the database only what is new.
//!
//! The alert rules look at the readings measured from some moment on (the newly stored
//! readings less the rules' lookback). Read from the database, that is every stored reading
//! measured since then. A [`ReadingWindow`] gives the same slice from memory: it holds every
//! stored reading measured from [`covered_from`](ReadingWindow::covered_from) on, as of the
//! last reads merged into it, sorted by `measured_at` and device. The engine asks it
//! [`what to read`](ReadingWindow::read_from) for an evaluation (only the readings from the
//! newly stored ones, or its newest reading, on when it covers the lookback; the whole
//! lookback otherwise),
//! [`merges`](ReadingWindow::merge) what it read, evaluates [`since`](ReadingWindow::since),
//! and [`trims`](ReadingWindow::trim) it.
//!
//! Each reading is stored once per device and `measured_at` (the ingest's dedup), so a
//! reading read twice is the same reading: merging is idempotent, and the order in which
//! readings arrived (late, out of order, redelivered) does not change the window.

use super::rules::{GlucosePoint, PressurePoint};
use chrono::{DateTime, Duration, Utc};
use std::cmp::Ordering;

/// How far before newly stored glucose readings the rules look: the longest sustained
/// condition a care team may set (120 minutes of "very high") plus the forecast's window,
/// with room to spare.
pub const GLUCOSE_LOOKBACK: Duration = Duration::hours(3);
/// The blood-pressure trend judges the 7 days before each reading.
pub const PRESSURE_LOOKBACK: Duration = Duration::days(8);
/// How much a window keeps before its newest reading: the lookback and a quarter of an hour,
/// so that a reading up to 15 minutes late is evaluated without reading the lookback again.
/// (Each glucose reading kept costs every held patient memory; a CGM's backfill after a
/// longer gap reads the lookback once.)
pub const GLUCOSE_KEEP: Duration = Duration::minutes(195);
pub const PRESSURE_KEEP: Duration = Duration::days(9);

/// A stored reading as a window keeps it.
pub trait WindowPoint: Clone {
    fn measured_at(&self) -> DateTime<Utc>;
    fn device_id(&self) -> &str;
}

impl WindowPoint for GlucosePoint {
    fn measured_at(&self) -> DateTime<Utc> {
        self.measured_at
    }
    fn device_id(&self) -> &str {
        &self.device_id
    }
}

impl WindowPoint for PressurePoint {
    fn measured_at(&self) -> DateTime<Utc> {
        self.measured_at
    }
    fn device_id(&self) -> &str {
        &self.device_id
    }
}

fn order<P: WindowPoint>(a: &P, b: &P) -> Ordering {
    a.measured_at()
        .cmp(&b.measured_at())
        .then_with(|| a.device_id().cmp(b.device_id()))
}

/// Every stored reading of a patient and kind measured from `covered_from` on (as of the reads
/// merged into it), in `measured_at` order.
#[derive(Debug, Clone)]
pub struct ReadingWindow<P> {
    /// `None`: the window covers nothing yet.
    covered_from: Option<DateTime<Utc>>,
    points: Vec<P>,
}

impl<P> Default for ReadingWindow<P> {
    fn default() -> Self {
        ReadingWindow {
            covered_from: None,
            points: Vec::new(),
        }
    }
}

impl<P: WindowPoint> ReadingWindow<P> {
    /// From when on the window holds every stored reading.
    pub fn covered_from(&self) -> Option<DateTime<Utc>> {
        self.covered_from
    }

    /// The readings it holds.
    pub fn len(&self) -> usize {
        self.points.len()
    }

    pub fn is_empty(&self) -> bool {
        self.points.is_empty()
    }

    /// The window as its parts: from when it covers, and its readings in order.
    pub fn into_parts(self) -> (Option<DateTime<Utc>>, Vec<P>) {
        (self.covered_from, self.points)
    }

    /// The window that [`into_parts`](Self::into_parts) gave these parts (held in another
    /// form in between).
    pub fn from_parts(covered_from: Option<DateTime<Utc>>, points: Vec<P>) -> Self {
        debug_assert!(
            points
                .windows(2)
                .all(|pair| order(&pair[0], &pair[1]) == Ordering::Less)
        );
        ReadingWindow {
            covered_from,
            points,
        }
    }

    /// What to read from the database to evaluate readings newly stored from `new_from` on,
    /// with the rules looking back `lookback` before them: when the window already covers
    /// the lookback, from `new_from` or from its newest reading, whichever is earlier; from
    /// `new_from - lookback` otherwise.
    ///
    /// From its newest reading, because readings stored since the window was filled may be
    /// older than `new_from` and not evaluated yet: their own follow-up work may wait in
    /// another claim (or on another server), as when the urgent lane evaluates a very low
    /// reading stored just after an ordinary one. Read this way the window holds every one of
    /// them that is newer than what it held; one older than that arrived out of order and is
    /// read when its own work is evaluated, as any late reading.
    pub fn read_from(&self, new_from: DateTime<Utc>, lookback: Duration) -> DateTime<Utc> {
        let needed = new_from - lookback;
        match self.covered_from {
            Some(covered) if covered <= needed => self
                .points
                .last()
                .map_or(new_from, |newest| newest.measured_at().min(new_from)),
            _ => needed,
        }
    }

    /// Merges every stored reading measured from `read_from` on (a read the window asked
    /// for with [`read_from`](Self::read_from)). A reading it holds already is replaced by the
    /// stored one.
    pub fn merge(&mut self, read_from: DateTime<Utc>, mut read: Vec<P>) {
        read.sort_by(order);
        read.dedup_by(|a, b| order(a, b) == Ordering::Equal);
        if read.is_empty() {
            // Nothing new.
        } else if self
            .points
            .last()
            .is_none_or(|last| order(last, &read[0]) == Ordering::Less)
        {
            // The usual case: only readings newer than all it holds.
            self.points.append(&mut read);
        } else {
            let held = std::mem::take(&mut self.points);
            self.points = merge_sorted(held, read);
        }
        self.covered_from = Some(self.covered_from.map_or(read_from, |c| c.min(read_from)));
    }

    /// The readings measured from `from` on, oldest first: what the database returns for
    /// "measured since `from`" when the window covers `from`.
    pub fn since(&self, from: DateTime<Utc>) -> &[P] {
        let start = self.points.partition_point(|p| p.measured_at() < from);
        &self.points[start..]
    }

    /// Forgets readings measured more than `keep` before the newest it holds; the window then
    /// covers only from there on.
    pub fn trim(&mut self, keep: Duration) {
        let Some(newest) = self.points.last().map(WindowPoint::measured_at) else {
            return;
        };
        let cutoff = newest - keep;
        if self.covered_from.is_some_and(|c| c >= cutoff) {
            return;
        }
        let start = self.points.partition_point(|p| p.measured_at() < cutoff);
        self.points.drain(..start);
        self.covered_from = Some(cutoff);
    }
}

/// Two sorted runs into one; on a tie the second run's reading (the stored one) stays.
fn merge_sorted<P: WindowPoint>(held: Vec<P>, read: Vec<P>) -> Vec<P> {
    let mut out = Vec::with_capacity(held.len() + read.len());
    let mut held = held.into_iter().peekable();
    let mut read = read.into_iter().peekable();
    loop {
        match (held.peek(), read.peek()) {
            (Some(h), Some(r)) => match order(h, r) {
                Ordering::Less => out.extend(held.next()),
                Ordering::Greater => out.extend(read.next()),
                Ordering::Equal => {
                    held.next();
                    out.extend(read.next());
                }
            },
            (Some(_), None) => out.extend(held.next()),
            (None, Some(_)) => out.extend(read.next()),
            (None, None) => return out,
        }
    }
}

#[cfg(test)]
mod tests;
