//! A vector grown in fixed-size chunks: pushing never moves what it holds, so a table of large
//! entries grows without copying them all at each doubling (and faulting in twice the memory).

use std::ops::{Index, IndexMut};

/// Elements per chunk.
const CHUNK: usize = 512;

#[derive(Clone, Debug)]
pub struct Chunked<T> {
    chunks: Vec<Vec<T>>,
    len: usize,
}

impl<T> Default for Chunked<T> {
    fn default() -> Self {
        Chunked {
            chunks: Vec::new(),
            len: 0,
        }
    }
}

impl<T> Chunked<T> {
    pub fn len(&self) -> usize {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    pub fn push(&mut self, value: T) {
        if self.len % CHUNK == 0 {
            self.chunks.push(Vec::with_capacity(CHUNK));
        }
        if let Some(chunk) = self.chunks.last_mut() {
            chunk.push(value);
            self.len += 1;
        }
    }

    pub fn pop(&mut self) -> Option<T> {
        let chunk = self.chunks.last_mut()?;
        let value = chunk.pop()?;
        self.len -= 1;
        if chunk.is_empty() {
            self.chunks.pop();
        }
        Some(value)
    }

    /// Removes element `i`, moving the last one into its place; returns the removed one.
    pub fn swap_remove(&mut self, i: usize) -> Option<T> {
        if i >= self.len {
            return None;
        }
        let last = self.pop()?;
        if i == self.len {
            return Some(last);
        }
        Some(std::mem::replace(&mut self[i], last))
    }

    pub fn iter(&self) -> impl Iterator<Item = &T> {
        self.chunks.iter().flatten()
    }

    pub fn iter_mut(&mut self) -> impl Iterator<Item = &mut T> {
        self.chunks.iter_mut().flatten()
    }
}

impl<T> Index<usize> for Chunked<T> {
    type Output = T;

    fn index(&self, i: usize) -> &T {
        &self.chunks[i / CHUNK][i % CHUNK]
    }
}

impl<T> IndexMut<usize> for Chunked<T> {
    fn index_mut(&mut self, i: usize) -> &mut T {
        &mut self.chunks[i / CHUNK][i % CHUNK]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn behaves_as_a_vector_across_chunk_boundaries() {
        let mut c = Chunked::default();
        let mut v = Vec::new();
        for i in 0..(3 * CHUNK + 7) {
            c.push(i);
            v.push(i);
        }
        for at in [0, CHUNK - 1, CHUNK, 2 * CHUNK + 3, v.len() - 1, v.len() + 5] {
            assert_eq!(c.swap_remove(at), (at < v.len()).then(|| v.swap_remove(at)));
        }
        while c.len() > CHUNK - 2 {
            assert_eq!(c.pop(), v.pop());
        }
        assert_eq!(c.len(), v.len());
        assert_eq!(c.iter().copied().collect::<Vec<_>>(), v);
        c[3] = 99;
        assert_eq!(c[3], 99);
        assert!(!c.is_empty());
        while c.pop().is_some() {}
        assert!(c.is_empty() && c.iter().next().is_none());
    }
}
