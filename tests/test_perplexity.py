"""WikiText-2 perplexity: windows of one token stream, exp of the mean token NLL by hand."""
import math

import pytest
import torch
from transformers import LlamaConfig, LlamaForCausalLM

from sj_spikelm.data.paths import data_root
from sj_spikelm.data.wikitext import random_windows, wikitext2_ids, wikitext2_text
from sj_spikelm.perplexity import perplexity, windows


def tiny_llama():
    torch.manual_seed(0)
    config = LlamaConfig(vocab_size=50, hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                         num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=64)
    return LlamaForCausalLM(config)


def test_perplexity_is_exp_of_mean_token_nll():
    model = tiny_llama().train()
    ids = torch.randint(0, 50, (37,), generator=torch.Generator().manual_seed(1))
    nlls = []
    with torch.no_grad():
        for w in range(4):  # 37 // 8 = 4 windows, 5 tokens dropped
            window = ids[8 * w: 8 * w + 8]
            logp = torch.log_softmax(model.eval()(input_ids=window[None]).logits[0], -1)
            nlls += [-logp[i - 1, window[i]].item() for i in range(1, 8)]
    model.train()
    out = perplexity(model, ids, seq_len=8)
    assert out["windows"] == 4 and out["tokens"] == 28 and model.training
    assert out["nll"] == pytest.approx(sum(nlls) / 28, rel=1e-6)
    assert out["perplexity"] == pytest.approx(math.exp(sum(nlls) / 28), rel=1e-6)
    assert perplexity(model, ids, seq_len=8, batch_size=3)["nll"] == pytest.approx(out["nll"], rel=1e-6)
    first = perplexity(model, ids, seq_len=8, max_windows=2)
    assert first["windows"] == 2 and first["nll"] == pytest.approx(sum(nlls[:14]) / 14, rel=1e-6)


def test_windows_and_errors():
    ids = torch.arange(10)
    assert torch.equal(windows(ids, 3), torch.arange(9).view(3, 3))
    assert windows(ids, 3, max_windows=5).shape == (3, 3)
    with pytest.raises(TypeError, match="1-D integer tensor"):
        windows(ids.float(), 3)
    with pytest.raises(ValueError, match="seq_len=1 is not accepted"):
        windows(ids, 1)
    with pytest.raises(ValueError, match="max_windows=0 is not accepted"):
        windows(ids, 3, max_windows=0)
    with pytest.raises(ValueError, match="not one window of seq_len=11"):
        windows(ids, 11)
    with pytest.raises(ValueError, match="batch_size=0"):
        perplexity(tiny_llama(), ids, 3, batch_size=0)


class CharTokenizer:
    def __call__(self, text, add_special_tokens=True):
        assert add_special_tokens is False
        return {"input_ids": [ord(c) for c in text]}


def test_wikitext_rows_joined_like_gptq(tmp_path):
    path = tmp_path / "test.txt"
    path.write_text(" = A = \n\n b c \n")
    joined = " = A = \n" + "\n\n" + "\n" + "\n\n" + " b c \n"  # rows " = A = \n", "\n", " b c \n"
    assert wikitext2_text("test", path) == joined
    assert wikitext2_ids(CharTokenizer(), "test", path).tolist() == [ord(c) for c in joined]
    with pytest.raises(ValueError, match="split='dev' is not accepted"):
        wikitext2_text("dev", path)


def test_real_wikitext2_test_split():
    root = data_root()
    if root is None or not (root / "wikitext-2" / "test.txt").is_file():
        pytest.skip("../shared/data/wikitext-2/test.txt is not here (set $SJ_SPIKELM_DATA)")
    text = wikitext2_text("test")
    assert text.count("\n\n") >= 4358 - 1 and " = Robert <unk> = " in text


def test_random_windows_are_seeded_slices():
    ids = torch.arange(100)
    a = random_windows(ids, 4, 10, seed=3)
    assert a.shape == (4, 10) and torch.equal(a, random_windows(ids, 4, 10, seed=3))
    assert torch.equal(a - a[:, :1], torch.arange(10).expand(4, 10))  # contiguous slices
    assert int(a.max()) < 100
    with pytest.raises(ValueError, match="too few for windows of seq_len=100"):
        random_windows(ids, 1, 100)
