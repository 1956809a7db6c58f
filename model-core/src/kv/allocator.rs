//! The free list of KV blocks. A sequence's blocks return to the pool when its [`SeqBlocks`]
//! is dropped, so a cancelled, finished or preempted sequence can never leak cache space.

use std::sync::{Arc, Mutex, MutexGuard};

#[derive(Clone)]
pub struct BlockAllocator {
    free: Arc<Mutex<Vec<u32>>>,
    block_size: usize,
    total: usize,
}

impl BlockAllocator {
    pub fn new(total_blocks: usize, block_size: usize) -> Self {
        // Pop from the end: lowest block ids are handed out first, which keeps early sequences
        // in the front of the pool (friendlier to the page cache of the pool allocation).
        let free = (0..total_blocks as u32).rev().collect();
        BlockAllocator {
            free: Arc::new(Mutex::new(free)),
            block_size,
            total: total_blocks,
        }
    }

    fn lock(&self) -> MutexGuard<'_, Vec<u32>> {
        // A poisoned lock only means another thread panicked while holding it; the Vec itself
        // is always in a valid state (push/pop/truncate are not interrupted half-way).
        self.free.lock().unwrap_or_else(|p| p.into_inner())
    }

    pub fn block_size(&self) -> usize {
        self.block_size
    }

    pub fn total(&self) -> usize {
        self.total
    }

    pub fn free_blocks(&self) -> usize {
        self.lock().len()
    }

    /// Blocks needed to hold `tokens` positions.
    pub fn blocks_for(&self, tokens: usize) -> usize {
        tokens.div_ceil(self.block_size)
    }

    /// An empty block list for a new sequence.
    pub fn new_sequence(&self) -> SeqBlocks {
        SeqBlocks {
            allocator: self.clone(),
            blocks: Vec::new(),
        }
    }
}

/// The blocks of one sequence, in position order.
pub struct SeqBlocks {
    allocator: BlockAllocator,
    blocks: Vec<u32>,
}

impl SeqBlocks {
    pub fn ids(&self) -> &[u32] {
        &self.blocks
    }

    /// Positions the current blocks can hold.
    pub fn capacity(&self) -> usize {
        self.blocks.len() * self.allocator.block_size
    }

    /// Grows the list to hold `tokens` positions; all or nothing. Returns false when the pool
    /// has too few free blocks (the caller then preempts or waits).
    pub fn reserve(&mut self, tokens: usize) -> bool {
        let needed = self
            .allocator
            .blocks_for(tokens)
            .saturating_sub(self.blocks.len());
        if needed == 0 {
            return true;
        }
        let mut free = self.allocator.lock();
        if free.len() < needed {
            return false;
        }
        let at = free.len() - needed;
        self.blocks.extend(free.drain(at..).rev());
        true
    }

    /// Returns every block to the pool (the sequence will be recomputed from scratch).
    pub fn release(&mut self) {
        if !self.blocks.is_empty() {
            self.allocator.lock().append(&mut self.blocks);
        }
    }
}

impl Drop for SeqBlocks {
    fn drop(&mut self) {
        self.release();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn blocks_return_to_the_pool_on_drop_and_reserve_is_all_or_nothing() {
        let alloc = BlockAllocator::new(4, 16);
        let mut a = alloc.new_sequence();
        assert!(a.reserve(33)); // 3 blocks
        assert_eq!(alloc.free_blocks(), 1);
        let mut b = alloc.new_sequence();
        assert!(!b.reserve(17), "needs 2 blocks, only 1 free");
        assert_eq!(alloc.free_blocks(), 1, "a failed reserve takes nothing");
        assert!(b.reserve(16));
        assert_eq!(alloc.free_blocks(), 0);
        drop(a);
        assert_eq!(alloc.free_blocks(), 3);
        b.release();
        assert_eq!(alloc.free_blocks(), 4);
        assert_eq!(b.capacity(), 0);
    }

    #[test]
    fn block_ids_are_distinct_across_sequences() {
        let alloc = BlockAllocator::new(8, 4);
        let mut a = alloc.new_sequence();
        let mut b = alloc.new_sequence();
        assert!(a.reserve(12) && b.reserve(20));
        let mut all: Vec<u32> = a.ids().iter().chain(b.ids()).copied().collect();
        all.sort_unstable();
        all.dedup();
        assert_eq!(all.len(), 8);
    }
}
