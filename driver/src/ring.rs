//! A fixed-capacity FIFO without allocation, for `rx_queue`, `tx_bufferlist` and the TX
//! queue.
//!
//! # Invariants
//! `len <= N`; the live items are `buf[head..head+len]` modulo `N`.

/// A FIFO of at most `N` items, stored inline.
pub struct Ring<T: Copy, const N: usize> {
    buf: [T; N],
    head: usize,
    len: usize,
}

impl<T: Copy, const N: usize> Ring<T, N> {
    /// An empty ring; `fill` stands in the free slots.
    pub const fn new(fill: T) -> Self {
        Ring { buf: [fill; N], head: 0, len: 0 }
    }
    /// Items queued.
    pub fn len(&self) -> usize {
        self.len
    }
    /// Whether nothing is queued.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }
    /// Appends, or gives the item back when full.
    pub fn push(&mut self, item: T) -> Result<(), T> {
        if self.len == N {
            return Err(item);
        }
        self.buf[(self.head + self.len) % N] = item;
        self.len += 1;
        Ok(())
    }
    /// The newest item, for folding into it (a confirm into a multi-confirm).
    pub fn back_mut(&mut self) -> Option<&mut T> {
        if self.len == 0 {
            return None;
        }
        Some(&mut self.buf[(self.head + self.len - 1) % N])
    }
    /// The oldest item, left queued.
    pub fn front(&self) -> Option<&T> {
        if self.len == 0 {
            return None;
        }
        Some(&self.buf[self.head])
    }
    /// The items, oldest first.
    pub fn iter(&self) -> impl Iterator<Item = &T> {
        (0..self.len).map(move |i| &self.buf[(self.head + i) % N])
    }
    /// Takes the oldest item.
    pub fn pop(&mut self) -> Option<T> {
        if self.len == 0 {
            return None;
        }
        let item = self.buf[self.head];
        self.head = (self.head + 1) % N;
        self.len -= 1;
        Some(item)
    }
}

#[cfg(test)]
mod tests {
    use super::Ring;

    #[test]
    fn an_empty_ring_of_empty_rx_messages_is_all_zero_bytes() {
        // Bes2600::init_zeroed_in_place relies on this for rx_queue.
        let ring: Ring<crate::wsm::RxMsg, 4> = Ring::new(crate::wsm::RxMsg::EMPTY);
        let zeroed: Ring<crate::wsm::RxMsg, 4> = unsafe { core::mem::zeroed() };
        assert_eq!((ring.head, ring.len), (zeroed.head, zeroed.len));
        assert!(zeroed.buf.iter().all(|m| *m == crate::wsm::RxMsg::EMPTY));
    }

    #[test]
    fn fifo_order_and_capacity() {
        let mut r: Ring<u8, 3> = Ring::new(0);
        assert_eq!(r.push(1), Ok(()));
        assert_eq!(r.push(2), Ok(()));
        assert_eq!(r.push(3), Ok(()));
        assert_eq!(r.push(4), Err(4));
        assert_eq!(r.pop(), Some(1));
        assert_eq!(r.push(5), Ok(()));
        assert_eq!([r.pop(), r.pop(), r.pop(), r.pop()], [Some(2), Some(3), Some(5), None]);
    }
}
