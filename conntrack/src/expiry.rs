//! The expiry timer wheel: 4096 one-second slots, each a list of entry
//! indices. An entry sits in the slot of the first tick after its expiry
//! as it was when filed. Packets push expiries later without touching the
//! wheel; when the slot comes round, an entry not yet due is filed again
//! under its new expiry. An expiry moved earlier (a RST) is refiled at
//! once. Entries further away than the wheel's 68 minutes come round once
//! per turn, so a call costs the entries due plus 1/4096 of the long-lived
//! ones, never a scan of the table.
//!
//! Each entry records its slot and position, so removal is a swap-remove
//! and the wheel holds exactly one index per confirmed entry.

const SLOTS: usize = 4096;
const NANOS_PER_SEC: u64 = 1_000_000_000;

/// The slot of an entry not in the wheel (a tentative one).
pub(crate) const NOT_FILED: u16 = u16::MAX;

#[derive(Clone)]
pub(crate) struct Wheel {
    slots: Box<[Vec<u32>]>,
    /// The last tick (whole seconds) whose slot has been processed.
    done: u64,
}

impl Wheel {
    pub fn new() -> Wheel {
        Wheel {
            slots: (0..SLOTS).map(|_| Vec::new()).collect(),
            done: 0,
        }
    }

    /// The slot for an expiry time: the first tick after it, and never one
    /// already processed.
    pub fn slot_for(&self, expires_ns: u64) -> u16 {
        let tick = (expires_ns / NANOS_PER_SEC + 1).max(self.done + 1);
        (tick % SLOTS as u64) as u16
    }

    /// Files `idx` in `slot`; returns its position there.
    pub fn push(&mut self, slot: u16, idx: u32) -> u32 {
        let list = &mut self.slots[usize::from(slot) % SLOTS];
        list.push(idx);
        (list.len() - 1) as u32
    }

    /// Removes the index at `pos` of `slot`; returns the index moved into
    /// its place, whose recorded position the caller must update.
    pub fn swap_remove(&mut self, slot: u16, pos: u32) -> Option<u32> {
        let list = self.slots.get_mut(usize::from(slot))?;
        let pos = pos as usize;
        if pos >= list.len() {
            return None;
        }
        list.swap_remove(pos);
        list.get(pos).copied()
    }

    /// The index at `pos` of `slot`.
    pub fn at(&self, slot: u16, pos: u32) -> Option<u32> {
        self.slots
            .get(usize::from(slot))?
            .get(pos as usize)
            .copied()
    }

    /// Moves to the next tick not after `now_ns` and returns its slot; `None`
    /// once caught up. After a gap longer than the wheel, one turn covers it.
    pub fn next_due(&mut self, now_ns: u64) -> Option<u16> {
        let now_tick = now_ns / NANOS_PER_SEC;
        if self.done >= now_tick {
            return None;
        }
        self.done = self.done.max(now_tick.saturating_sub(SLOTS as u64)) + 1;
        Some((self.done % SLOTS as u64) as u16)
    }

    /// Releases a slot's memory once processed if it held a burst.
    pub fn trim(&mut self, slot: u16) {
        if let Some(list) = self.slots.get_mut(usize::from(slot)) {
            if list.capacity() > 64 && list.len() < list.capacity() / 4 {
                list.shrink_to(list.len() * 2);
            }
        }
    }

    pub fn clear(&mut self) {
        for list in self.slots.iter_mut() {
            *list = Vec::new();
        }
    }

    /// Heap bytes held, for the memory report.
    pub fn heap_bytes(&self) -> usize {
        self.slots.len() * std::mem::size_of::<Vec<u32>>()
            + self
                .slots
                .iter()
                .map(|l| l.capacity() * std::mem::size_of::<u32>())
                .sum::<usize>()
    }
}
