//! Maps byte offsets of a derived (normalised) text back to its source text.
//!
//! The derived text is cut into segments. A *linear* segment is a run whose bytes correspond one to
//! one with source bytes (unchanged characters, ASCII case folding). A non-linear segment is one
//! source character that expanded or shrank (e.g. `Ａ` → `a`, `ﬁ` → `fi`); positions inside it round
//! to its edges. Source characters that normalise to nothing (invisible characters, combining marks,
//! skipped separators) produce no segment: they fall into the gap before the next segment and so
//! belong to the preceding character. A character therefore "owns" the source from its own start up
//! to the start of the next kept character.

#[derive(Clone, Copy, Debug)]
struct Seg {
    dst: usize,
    src: usize,
    linear: bool,
}

#[derive(Clone, Debug, Default)]
pub(crate) struct OffsetMap {
    segs: Vec<Seg>,
    dst_len: usize,
    src_len: usize,
}

impl OffsetMap {
    /// Records `dst_added` derived bytes produced from source bytes `src_pos..src_pos + src_char_len`.
    pub(crate) fn push(
        &mut self,
        src_pos: usize,
        src_char_len: usize,
        dst_added: usize,
        linear: bool,
    ) {
        match self.segs.last() {
            Some(last)
                if linear && last.linear && last.src + (self.dst_len - last.dst) == src_pos => {}
            _ => self.segs.push(Seg {
                dst: self.dst_len,
                src: src_pos,
                linear,
            }),
        }
        self.dst_len += dst_added;
        self.src_len = src_pos + src_char_len;
    }

    /// Source bytes up to `src_end` were consumed without producing derived text.
    pub(crate) fn skip_to(&mut self, src_end: usize) {
        self.src_len = self.src_len.max(src_end);
    }

    fn seg_at(&self, dst: usize) -> Option<&Seg> {
        let i = self.segs.partition_point(|s| s.dst <= dst);
        if i == 0 { None } else { self.segs.get(i - 1) }
    }

    fn next_src(&self, dst: usize) -> usize {
        let i = self.segs.partition_point(|s| s.dst <= dst);
        self.segs.get(i).map_or(self.src_len, |s| s.src)
    }

    /// Source offset where the derived character at `dst` starts (rounding down).
    pub(crate) fn start_of(&self, dst: usize) -> usize {
        if dst >= self.dst_len {
            return self.src_len;
        }
        match self.seg_at(dst) {
            Some(s) if s.linear => s.src + (dst - s.dst),
            Some(s) => s.src,
            None => 0,
        }
    }

    /// Source offset of an exclusive end at derived offset `dst` (rounding up): the start of the
    /// next kept character, so anything dropped before it is included.
    pub(crate) fn end_of(&self, dst: usize) -> usize {
        if dst >= self.dst_len {
            return self.src_len;
        }
        match self.seg_at(dst) {
            Some(s) if s.dst == dst => s.src,
            Some(s) if s.linear => s.src + (dst - s.dst),
            Some(_) => self.next_src(dst),
            None => 0,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn linear_runs_merge_and_gaps_belong_to_previous() {
        let mut m = OffsetMap::default();
        m.push(0, 1, 1, true); // "a"
        m.push(1, 1, 1, true); // "b"
        m.skip_to(4); // 3 invisible bytes
        m.push(4, 1, 1, true); // "c"
        assert_eq!(m.segs.len(), 2);
        assert_eq!(m.start_of(1), 1);
        assert_eq!(m.end_of(2), 4, "end after b includes the invisible bytes");
        assert_eq!(m.start_of(2), 4);
        assert_eq!(m.end_of(3), 5);
    }

    #[test]
    fn expansions_round_outwards() {
        let mut m = OffsetMap::default();
        m.push(0, 3, 2, false); // "ﬁ" -> "fi"
        m.push(3, 1, 1, true);
        assert_eq!(m.start_of(1), 0);
        assert_eq!(m.end_of(1), 3);
        assert_eq!(m.end_of(2), 3);
    }
}
