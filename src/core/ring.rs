//! A fixed-capacity ring buffer: the seed's "last 10 messages" cache.
//!
//! The seed's JavaScript sketch used `buffer.push(msg); if (buffer.length > 10) buffer.shift()`,
//! which moves every element on each insert. A ring keeps a fixed array and a moving start, so a
//! push is O(1) however large the capacity, and memory never grows past the capacity: the
//! bounded-buffer lesson in thirty lines.
//!
//! Items arrive in order: the room's delivery gate (`core::room`) puts messages in seq order
//! before it delivers them and writes the ring as it delivers, and a warm-up from the store sorts
//! what it adds before it refills the ring (`core::recent`), so the ring only ever appends.

/// A ring of at most `capacity` items, oldest first.
#[derive(Debug, Clone)]
pub struct Ring<T> {
    slots: Box<[Option<T>]>,
    /// Index of the oldest item.
    start: usize,
    len: usize,
}

impl<T> Ring<T> {
    /// An empty ring holding up to `capacity` items.
    ///
    /// # Panics
    /// If `capacity` is zero (config validation refuses it long before).
    pub fn new(capacity: usize) -> Ring<T> {
        assert!(capacity > 0, "a ring needs room for at least one item");
        Ring {
            slots: (0..capacity).map(|_| None).collect(),
            start: 0,
            len: 0,
        }
    }

    /// The most items it holds.
    pub fn capacity(&self) -> usize {
        self.slots.len()
    }

    /// How many items it holds now.
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether it holds nothing.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Appends `item` as the newest, evicting the oldest when full. O(1).
    pub fn push(&mut self, item: T) {
        let cap = self.capacity();
        let end = (self.start + self.len) % cap;
        self.slots[end] = Some(item);
        if self.len == cap {
            self.start = (self.start + 1) % cap;
        } else {
            self.len += 1;
        }
    }

    /// The `i`-th oldest item.
    pub fn get(&self, i: usize) -> Option<&T> {
        if i >= self.len {
            return None;
        }
        self.slots[(self.start + i) % self.capacity()].as_ref()
    }

    /// The items from oldest to newest.
    pub fn iter(&self) -> impl DoubleEndedIterator<Item = &T> + '_ {
        let cap = self.capacity();
        (0..self.len).filter_map(move |i| self.slots[(self.start + i) % cap].as_ref())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn items(r: &Ring<u64>) -> Vec<u64> {
        r.iter().copied().collect()
    }

    #[test]
    fn keeps_the_newest_capacity_items_in_order() {
        let mut r = Ring::new(3);
        assert!(r.is_empty());
        for i in 1..=5 {
            r.push(i);
        }
        assert_eq!(items(&r), vec![3, 4, 5]);
        assert_eq!(r.len(), 3);
        assert_eq!(r.get(0), Some(&3));
        assert_eq!(r.get(3), None);
    }

    #[test]
    fn partial_ring() {
        let mut r = Ring::new(10);
        r.push(1);
        r.push(2);
        assert_eq!(items(&r), vec![1, 2]);
        assert_eq!(r.iter().rev().copied().collect::<Vec<_>>(), vec![2, 1]);
    }
}
