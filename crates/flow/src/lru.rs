//! Intrusive doubly linked lists over flow-slot indices: O(1) touch, unlink and oldest-first
//! scans for timeouts and eviction, with no allocation beyond one link per slot.

const NIL: u32 = u32::MAX;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum ListId {
    /// Flows that never carried data (handshakes, scans, floods): evicted first after closed ones.
    Embryonic = 0,
    Established = 1,
    /// Flows the sink already saw close, kept to absorb stray packets.
    Closed = 2,
}

#[derive(Clone, Copy)]
struct Link {
    prev: u32,
    next: u32,
    list: Option<ListId>,
}

#[derive(Default)]
pub(crate) struct Lru {
    links: Vec<Link>,
    heads: [u32; 3],
    tails: [u32; 3],
    initialised: bool,
}

impl Lru {
    fn init(&mut self) {
        if !self.initialised {
            self.heads = [NIL; 3];
            self.tails = [NIL; 3];
            self.initialised = true;
        }
    }

    pub fn ensure(&mut self, slot: u32) {
        self.init();
        while self.links.len() <= slot as usize {
            self.links.push(Link {
                prev: NIL,
                next: NIL,
                list: None,
            });
        }
    }

    pub fn front(&self, list: ListId) -> Option<u32> {
        if !self.initialised {
            return None;
        }
        let h = self.heads[list as usize];
        (h != NIL).then_some(h)
    }

    pub fn unlink(&mut self, slot: u32) {
        let Some(link) = self.links.get(slot as usize).copied() else {
            return;
        };
        let Some(list) = link.list else {
            return;
        };
        let l = list as usize;
        if link.prev == NIL {
            self.heads[l] = link.next;
        } else {
            self.links[link.prev as usize].next = link.next;
        }
        if link.next == NIL {
            self.tails[l] = link.prev;
        } else {
            self.links[link.next as usize].prev = link.prev;
        }
        self.links[slot as usize] = Link {
            prev: NIL,
            next: NIL,
            list: None,
        };
    }

    pub fn push_back(&mut self, list: ListId, slot: u32) {
        self.ensure(slot);
        let l = list as usize;
        let tail = self.tails[l];
        self.links[slot as usize] = Link {
            prev: tail,
            next: NIL,
            list: Some(list),
        };
        if tail == NIL {
            self.heads[l] = slot;
        } else {
            self.links[tail as usize].next = slot;
        }
        self.tails[l] = slot;
    }

    /// Moves `slot` to the back (most recent end) of `list`.
    pub fn touch(&mut self, slot: u32, list: ListId) {
        let l = list as usize;
        if self.initialised && self.tails[l] == slot && self.links[slot as usize].list == Some(list)
        {
            return;
        }
        self.unlink(slot);
        self.push_back(list, slot);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn touch_moves_to_back_and_unlink_keeps_order() {
        let mut l = Lru::default();
        for s in 0..4 {
            l.push_back(ListId::Established, s);
        }
        l.touch(0, ListId::Established);
        assert_eq!(l.front(ListId::Established), Some(1));
        l.unlink(1);
        assert_eq!(l.front(ListId::Established), Some(2));
        l.touch(2, ListId::Closed);
        assert_eq!(l.front(ListId::Established), Some(3));
        assert_eq!(l.front(ListId::Closed), Some(2));
        l.unlink(3);
        l.unlink(0);
        assert_eq!(l.front(ListId::Established), None);
    }
}
