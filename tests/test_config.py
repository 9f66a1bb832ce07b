"""Job configs: defaults < YAML < command line, typed and checked."""
import pytest

from sj_spikelm.train.config import from_dict, parse_config
from sj_spikelm.train.finetune import FinetuneConfig
from sj_spikelm.train.pretrain import PretrainConfig


def test_precedence_and_types(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text("task: mrpc\nlr: 5e-5\nbatch_size: 8\nk: 3\ndistill_weights: {hidden: 0}\n")
    cfg = parse_config(FinetuneConfig, ["--config", str(path), "--batch_size", "16", "--save_best", "false",
                                        "--distill", "none", "--model_config", "{hidden_size: 32}"])
    assert cfg.task == "mrpc" and cfg.lr == 5e-5 and isinstance(cfg.lr, float)  # YAML reads 5e-5 as a string
    assert cfg.batch_size == 16 and cfg.save_best is False and cfg.distill is None and cfg.k == 3.0
    assert cfg.model_config == {"hidden_size": 32}
    assert cfg.distill_weights == {"task": 1.0, "logits": 1.0, "hidden": 0, "attention": 1.0}  # merged
    assert parse_config(FinetuneConfig, []).task == FinetuneConfig().task
    assert PretrainConfig().lr == 1e-4 and PretrainConfig().eval_batch_size == 16


def test_errors_name_the_field():
    with pytest.raises(ValueError, match=r"unknown config field\(s\) \['lr_rate'\].*accepted: run_dir"):
        from_dict(FinetuneConfig, {"lr_rate": 1})
    with pytest.raises(ValueError, match="'batch_size': 'many' is not a valid int"):
        from_dict(FinetuneConfig, {"batch_size": "many"})
    with pytest.raises(ValueError, match="'save_best': 3 is not a valid bool"):
        from_dict(FinetuneConfig, {"save_best": 3})
    with pytest.raises(ValueError, match="'epochs': True is not a valid float"):
        from_dict(FinetuneConfig, {"epochs": True})


def test_location_prefixes(tmp_path, monkeypatch):
    from pathlib import Path

    from sj_spikelm.train.config import resolve_locations

    monkeypatch.setenv("SJ_SPIKELM_DATA", str(tmp_path))
    (tmp_path / "wikitext-2").mkdir()
    (tmp_path / "wikitext-2" / "valid.txt").write_text("x\n")
    cfg = resolve_locations(from_dict(PretrainConfig, {"corpus": "data:wikitext-2/valid.txt",
                                                       "tokenizer": "pkg:neuron_zoo/registry.py",
                                                       "init_from": "bert-base-uncased"}))
    assert cfg.corpus == str(tmp_path / "wikitext-2" / "valid.txt")
    assert Path(cfg.tokenizer).read_text().startswith('"""Build any zoo neuron')
    assert cfg.init_from == "bert-base-uncased"  # hub names are left alone
    with pytest.raises(FileNotFoundError, match="'data:missing.txt'.*does not exist"):
        resolve_locations(from_dict(PretrainConfig, {"corpus": "data:missing.txt"}))
    with pytest.raises(FileNotFoundError, match="package 'no_such_pkg' is not installed"):
        resolve_locations(from_dict(PretrainConfig, {"init_from": "pkg:no_such_pkg/model"}))
    monkeypatch.setenv("SJ_SPIKELM_DATA", str(tmp_path / "nope"))
    with pytest.raises(FileNotFoundError, match="SJ_SPIKELM_DATA"):
        resolve_locations(from_dict(PretrainConfig, {"corpus": "data:wikitext-2/valid.txt"}))


@pytest.mark.parametrize("cls, fields, message", [
    (FinetuneConfig, {"batch_size": 0}, r"batch_size=0 is out of range; accepted: >= 1"),
    (FinetuneConfig, {"log_every": 0}, r"log_every=0 is out of range; accepted: >= 1"),
    (FinetuneConfig, {"eval_batch_size": -1}, r"eval_batch_size=-1 is out of range"),
    (FinetuneConfig, {"max_seq_length": 0}, r"max_seq_length=0 is out of range"),
    (FinetuneConfig, {"warmup_ratio": 1.5}, r"warmup_ratio=1.5 is out of range; accepted: >= 0 and <= 1"),
    (FinetuneConfig, {"lr": 0.0}, r"lr=0.0 is out of range; accepted: > 0"),
    (FinetuneConfig, {"T": 0}, r"T=0 is out of range"),
    (FinetuneConfig, {"distill_weights": {"hiden": 1.0}}, r"distill_weights hiden=1.0: accepted keys task"),
    (FinetuneConfig, {"distill_weights": {"hidden": -1.0}}, r"distill_weights hidden=-1.0"),
    (PretrainConfig, {"mlm_probability": 1.5}, r"mlm_probability=1.5 is out of range; accepted: \(0, 1\)"),
])
def test_out_of_range_values_name_the_field_and_range(cls, fields, message):
    with pytest.raises(ValueError, match=message):
        from_dict(cls, fields)
