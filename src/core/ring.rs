//! A fixed-capacity ring buffer: the seed's "last 10 messages" cache.
//!
//! The seed's JavaScript sketch used `buffer.push(msg); if (buffer.length > 10) buffer.shift()`,
//! which moves every element on each insert. A ring keeps a fixed array and a moving start, so a
//! push is O(1) however large the capacity, and memory never grows past the capacity: the
//! bounded-buffer lesson in thirty lines.
//!
//! Items are kept sorted by a key (the message's seq). Senders in one room race each other, so a
//! message may arrive a little after a newer one; [`Ring::insert_by_key`] puts it in its place by
//! scanning back from the newest end, which costs nothing in the common in-order case.

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

    /// Inserts `item` in key order. The newest-first scan makes the in-order case a plain push.
    /// When the ring is full and `item` is older than everything in it, it is dropped: it would
    /// be evicted at once. An item whose key is in the ring already is not added twice (a message
    /// from another instance can arrive both live and from the store). Returns whether the item
    /// (or its equal) is in the ring.
    pub fn insert_by_key<K: Ord>(&mut self, item: T, key: impl Fn(&T) -> K) -> bool {
        let k = key(&item);
        // How many of the newest items belong after `item`.
        let newer = self.iter().rev().take_while(|x| key(x) > k).count();
        if self.len > newer && self.get(self.len - 1 - newer).is_some_and(|x| key(x) == k) {
            return true;
        }
        if newer == 0 {
            self.push(item);
            return true;
        }
        if self.len == self.capacity() && newer == self.len {
            return false;
        }
        // Push to make room (evicting the oldest if full), then bubble `item` back into place.
        self.push(item);
        let cap = self.capacity();
        let mut pos = self.len - 1;
        for _ in 0..newer {
            let (a, b) = ((self.start + pos - 1) % cap, (self.start + pos) % cap);
            self.slots.swap(a, b);
            pos -= 1;
        }
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn items(r: &Ring<u64>) -> Vec<u64> {
        r.iter().copied().collect()
    }

    #[test]
    fn an_item_already_there_is_not_inserted_twice() {
        let mut r = Ring::new(4);
        for i in [1, 2, 4] {
            r.push(i);
        }
        assert!(r.insert_by_key(2, |x| *x));
        assert!(r.insert_by_key(4, |x| *x));
        assert!(r.insert_by_key(3, |x| *x));
        assert_eq!(items(&r), vec![1, 2, 3, 4]);
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

    #[test]
    fn late_items_take_their_place() {
        let mut r = Ring::new(4);
        for i in [1, 2, 4, 5] {
            assert!(r.insert_by_key(i, |x| *x));
        }
        // Full: 3 is newer than 1, so 1 is evicted and 3 slots in between 2 and 4.
        assert!(r.insert_by_key(3, |x| *x));
        assert_eq!(items(&r), vec![2, 3, 4, 5]);
        // Older than everything in a full ring: dropped.
        assert!(!r.insert_by_key(1, |x| *x));
        assert_eq!(items(&r), vec![2, 3, 4, 5]);
    }

    #[test]
    fn late_insert_across_the_wrap_point() {
        let mut r = Ring::new(5);
        for i in [1, 2, 3, 4, 5, 6, 8] {
            r.insert_by_key(i, |x| *x);
        }
        assert_eq!(items(&r), vec![3, 4, 5, 6, 8]);
        r.insert_by_key(7, |x| *x);
        assert_eq!(items(&r), vec![4, 5, 6, 7, 8]);
    }

    #[test]
    fn out_of_order_into_a_partial_ring() {
        let mut r = Ring::new(10);
        for i in [3, 1, 2] {
            r.insert_by_key(i, |x| *x);
        }
        assert_eq!(items(&r), vec![1, 2, 3]);
    }
}
