"""A subword tokenizer trained on a task's training text with the ``tokenizers`` library:
byte-level BPE (GPT-2 / BART style: every string is encodable, decoding restores the text
exactly, so BLEU is computed on detokenised output) with BART's special tokens at BART's ids
(``<s>`` 0, ``<pad>`` 1, ``</s>`` 2, ``<unk>`` 3) and ``<s> ... </s>`` around each sequence.

One vocabulary for source and target (the encoder-decoder shares its embedding). Not the MiniLM
WordPiece vocabulary: it is uncased English and would lowercase and strip German umlauts.
"""
from __future__ import annotations

from typing import Iterable

SPECIAL_TOKENS = ["<s>", "<pad>", "</s>", "<unk>"]


def train_bpe_tokenizer(texts: Iterable[str], vocab_size: int, min_frequency: int = 2):
    """A ``PreTrainedTokenizerFast`` with a byte-level BPE of at most ``vocab_size`` tokens
    learnt from ``texts`` (merges of pairs seen at least ``min_frequency`` times)."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors, trainers
    from transformers import PreTrainedTokenizerFast

    if vocab_size < len(SPECIAL_TOKENS) + 256:
        raise ValueError(f"vocab_size={vocab_size} is too small; accepted: >= {len(SPECIAL_TOKENS) + 256} "
                         "(the special tokens and the 256 bytes)")
    tok = Tokenizer(models.BPE(unk_token="<unk>"))
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=True)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=vocab_size, min_frequency=min_frequency,
                                  special_tokens=SPECIAL_TOKENS,
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet(), show_progress=False)
    tok.train_from_iterator(texts, trainer=trainer)
    tok.post_processor = processors.TemplateProcessing(
        single="<s> $A </s>", pair="<s> $A </s> </s> $B </s>",
        special_tokens=[("<s>", 0), ("</s>", 2)])
    return PreTrainedTokenizerFast(tokenizer_object=tok, bos_token="<s>", pad_token="<pad>", eos_token="</s>",
                                   unk_token="<unk>")
