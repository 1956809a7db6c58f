//! The cache memory itself: per layer, K and V for every slot of every block, in f16.
//! Layout per layer: `(blocks, block_size, kv_heads, head_dim)`, so one position's keys for all
//! kv heads are contiguous (one write per token) and one head's key is a contiguous `head_dim` run.

use half::f16;

pub struct KvStore {
    block_size: usize,
    kv_dim: usize,
    k: Vec<Vec<f16>>,
    v: Vec<Vec<f16>>,
}

impl KvStore {
    pub fn new(layers: usize, blocks: usize, block_size: usize, kv_dim: usize) -> Self {
        let per_layer = blocks * block_size * kv_dim;
        KvStore {
            block_size,
            kv_dim,
            k: (0..layers).map(|_| vec![f16::ZERO; per_layer]).collect(),
            v: (0..layers).map(|_| vec![f16::ZERO; per_layer]).collect(),
        }
    }

    /// Bytes of cache per block (all layers, K and V): used to size the pool from a byte budget.
    pub fn bytes_per_block(layers: usize, block_size: usize, kv_dim: usize) -> usize {
        2 * layers * block_size * kv_dim * std::mem::size_of::<f16>()
    }

    #[inline]
    fn offset(&self, blocks: &[u32], pos: usize) -> usize {
        let block = blocks[pos / self.block_size] as usize;
        (block * self.block_size + pos % self.block_size) * self.kv_dim
    }

    /// Stores one position's keys and values (`kv_dim` each) for `layer`.
    pub fn write(
        &mut self,
        layer: usize,
        blocks: &[u32],
        pos: usize,
        k: &[f32],
        v: &[f32],
    ) -> Result<(), enclave_kernels::KernelError> {
        let at = self.offset(blocks, pos);
        let kv_dim = self.kv_dim;
        enclave_kernels::f32_to_f16_row(k, &mut self.k[layer][at..at + kv_dim])?;
        enclave_kernels::f32_to_f16_row(v, &mut self.v[layer][at..at + kv_dim])
    }

    /// Read access for attention over one layer.
    pub fn layer(&self, layer: usize) -> LayerView<'_> {
        LayerView {
            store: self,
            k: &self.k[layer],
            v: &self.v[layer],
        }
    }
}

#[derive(Clone, Copy)]
pub struct LayerView<'a> {
    store: &'a KvStore,
    k: &'a [f16],
    v: &'a [f16],
}

impl<'a> LayerView<'a> {
    /// Key of `kv_head` at `pos` (`head_dim` values).
    #[inline]
    pub fn key(&self, blocks: &[u32], pos: usize, kv_head: usize, head_dim: usize) -> &'a [f16] {
        let at = self.store.offset(blocks, pos) + kv_head * head_dim;
        &self.k[at..at + head_dim]
    }

    #[inline]
    pub fn value(&self, blocks: &[u32], pos: usize, kv_head: usize, head_dim: usize) -> &'a [f16] {
        let at = self.store.offset(blocks, pos) + kv_head * head_dim;
        &self.v[at..at + head_dim]
    }
}
