"""MLM corpus: blocks, the cache, and BERT's 80/10/10 masking with an explicit generator."""
import numpy as np
import pytest
import torch

from sj_spikelm.data import corpus as corpus_mod
from sj_spikelm.data.corpus import load_token_blocks
from sj_spikelm.data.mlm import IGNORE_INDEX, example_generator, mask_tokens


@pytest.fixture
def tok(tiny_tokenizer):
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(tiny_tokenizer)


def test_blocks_are_cls_stream_sep_and_cached(tmp_path, tok, monkeypatch):
    text = tmp_path / "c.txt"
    text.write_text("the movie was good\n\n  the film is bad  \nit runs\n")
    blocks, path = load_token_blocks(str(text), tok, seq_len=5, cache_dir=tmp_path / "cache")
    stream = tok("the movie was good the film is bad it runs", add_special_tokens=False)["input_ids"]
    assert len(stream) == 10 and blocks.shape == (3, 5)  # 10 tokens // 3 per block; 1 dropped
    assert (blocks[:, 0] == tok.cls_token_id).all() and (blocks[:, -1] == tok.sep_token_id).all()
    assert blocks[:, 1:-1].reshape(-1).tolist() == stream[:9]
    assert path.is_file() and path.parent == tmp_path / "cache"

    def no_tokenising(*args, **kwargs):
        raise AssertionError("tokenised again instead of using the cache")

    monkeypatch.setattr(corpus_mod, "_tokenise", no_tokenising)
    again, again_path = load_token_blocks(str(text), tok, seq_len=5, cache_dir=tmp_path / "cache")
    assert again_path == path and np.array_equal(again, blocks)
    with pytest.raises(AssertionError, match="tokenised again"):  # other seq_len: other cache entry
        load_token_blocks(str(text), tok, seq_len=6, cache_dir=tmp_path / "cache")
    text.write_text("the movie was bad\n")  # other content: other cache entry
    with pytest.raises(AssertionError, match="tokenised again"):
        load_token_blocks(str(text), tok, seq_len=5, cache_dir=tmp_path / "cache")


def test_fingerprint_ignores_call_settings(tok):
    from sj_spikelm.data.corpus import tokenizer_fingerprint

    before = tokenizer_fingerprint(tok)
    tok.backend_tokenizer.enable_truncation(5)  # as a saved tokenizer.json may hold; a call resets it
    tok.backend_tokenizer.enable_padding(length=8)
    assert tokenizer_fingerprint(tok) == before
    tok(["the movie"], add_special_tokens=False)
    assert tokenizer_fingerprint(tok) == before
    tok.add_tokens(["zebra"])
    assert tokenizer_fingerprint(tok) != before


def test_folder_corpus_in_sorted_order(tmp_path, tok):
    folder = tmp_path / "texts"
    (folder / "sub").mkdir(parents=True)
    (folder / "b.txt").write_text("dog cat\n")
    (folder / "a.txt").write_text("the movie\n")
    (folder / "sub" / "c.txt").write_text("man woman\n")
    (folder / "ignored.md").write_text("bad bad\n")
    blocks, _ = load_token_blocks(str(folder), tok, seq_len=8, cache_dir=tmp_path / "cache")
    expected = tok("the movie dog cat man woman", add_special_tokens=False)["input_ids"]
    assert blocks[0, 1:-1].tolist() == expected
    with pytest.raises(ValueError, match="not one block"):
        load_token_blocks(str(folder), tok, seq_len=40, cache_dir=tmp_path / "cache")


def test_masking_rates_and_labels():
    ids = torch.randint(5, 1000, (200, 500))
    ids[:, 0], ids[:, -1] = 2, 3  # [CLS], [SEP]
    inputs, labels = mask_tokens(ids, mask_token_id=4, vocab_size=1000, special_ids=[0, 2, 3],
                                 probability=0.15, generator=torch.Generator().manual_seed(0))
    selected = labels != IGNORE_INDEX
    assert (labels[selected] == ids[selected]).all()
    assert not selected[:, 0].any() and not selected[:, -1].any()
    assert (inputs[~selected] == ids[~selected]).all()
    n = selected.sum().item()
    assert abs(n / (200 * 498) - 0.15) < 0.005
    masked = (inputs[selected] == 4).float().mean().item()
    kept = (inputs[selected] == ids[selected]).float().mean().item()
    assert abs(masked - 0.8) < 0.01 and abs(kept - 0.1 - 0.001) < 0.01  # random draws rarely hit the same id


def test_masking_is_a_function_of_the_generator():
    ids = torch.randint(5, 50, (4, 32))

    def run(*keys):
        return mask_tokens(ids, 4, 50, [0, 2, 3], 0.3, example_generator(*keys))

    a, b, c = run(0, 7, 0), run(0, 7, 0), run(0, 8, 0)
    assert torch.equal(a[0], b[0]) and torch.equal(a[1], b[1])
    assert not torch.equal(a[1], c[1])
    none = mask_tokens(ids, 4, 50, [], 0.0, example_generator(1))
    assert torch.equal(none[0], ids) and (none[1] == IGNORE_INDEX).all()
    everything = mask_tokens(ids, 4, 50, [], 1.0, example_generator(1))
    assert torch.equal(everything[1], ids)
    with pytest.raises(ValueError, match="probability=1.5"):
        mask_tokens(ids, 4, 50, [], 1.5)
