//! Which tokens are control tokens and which end generation, following llama.cpp's vocabulary
//! loader: metadata ids first, then well-known token texts (GGUF has no per-token EOG flag).

use std::collections::BTreeSet;

/// Texts that end generation wherever they appear in a vocabulary.
const EOG_TEXTS: &[&str] = &[
    "<|eot_id|>",
    "<|im_end|>",
    "<|end|>",
    "<|return|>",
    "<|call|>",
    "<end_of_turn>",
    "<|endoftext|>",
    "<|eom_id|>",
    "<EOT>",
    "_<EOT>",
    "<|end_of_text|>",
    "<end_of_utterance>",
];

/// End-of-turn candidates; llama.cpp takes one when metadata names none.
const EOT_TEXTS: &[&str] = &[
    "<|eot_id|>",
    "<|im_end|>",
    "<|end|>",
    "<end_of_turn>",
    "<|endoftext|>",
    "<EOT>",
    "_<EOT>",
    "<｜end▁of▁sentence｜>",
    "<end_of_utterance>",
];

/// Fill-in-the-middle pad / repo / file-separator candidates: llama.cpp treats the first
/// found of each group as end-of-generation too.
const FIM_EOG_GROUPS: &[&[&str]] = &[
    &["<|fim_pad|>", "<fim-pad>", "<fim_pad>", "<PAD>"],
    &[
        "<|fim_repo|>",
        "<|repo_name|>",
        "<fim-repo>",
        "<REPO>",
        "<reponame>",
    ],
    &["<|file_sep|>"],
];

/// The end-of-generation set: `named` ids (eos, eot, ... from metadata or config) plus the ids
/// of well-known texts that `lookup` finds in the vocabulary. Sorted, without duplicates.
pub(crate) fn eog_ids(named: &[u32], lookup: impl Fn(&str) -> Option<u32>) -> Vec<u32> {
    let mut set: BTreeSet<u32> = named.iter().copied().collect();
    set.extend(EOG_TEXTS.iter().filter_map(|t| lookup(t)));
    if let Some(eot) = EOT_TEXTS.iter().find_map(|t| lookup(t)) {
        set.insert(eot);
    }
    for group in FIM_EOG_GROUPS {
        if let Some(id) = group.iter().find_map(|t| lookup(t)) {
            set.insert(id);
        }
    }
    set.into_iter().collect()
}

/// Texts llama.cpp forces to control type even when a converter marked them normal.
pub(crate) fn looks_like_control(text: &str) -> bool {
    EOG_TEXTS.contains(&text)
        || EOT_TEXTS.contains(&text)
        || FIM_EOG_GROUPS.iter().any(|g| g.contains(&text))
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn eog_set_combines_named_ids_and_known_texts() {
        let vocab = [
            "<unk>",
            "<|im_end|>",
            "<|endoftext|>",
            "hello",
            "<reponame>",
        ];
        let lookup = |t: &str| vocab.iter().position(|v| *v == t).map(|i| i as u32);
        assert_eq!(eog_ids(&[3], lookup), vec![1, 2, 3, 4]);
    }

    #[test]
    fn vocab_without_known_texts_keeps_only_named_ids() {
        assert_eq!(eog_ids(&[7, 7], |_| None), vec![7]);
    }
}
