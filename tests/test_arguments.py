"""Job arguments: defaults < YAML < flags through HfArgumentParser, typed and checked before
anything loads."""
import math

import pytest

from sj_spikelm.train import finetune, pretrain
from sj_spikelm.train.arguments import check_values, flat_config, parse_args, resolve_locations


def test_precedence_and_types(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text("task: mrpc\nlearning_rate: 5e-5\nper_device_train_batch_size: 8\nk: 3\n"
                    "distill_weights: {hidden: 0}\nmodel_config: {hidden_size: 32}\n")
    model, spiking, data, distill, args = parse_args(finetune.ARGUMENTS, [
        "--config", str(path), "--per_device_train_batch_size", "16", "--save_best", "false",
        "--model_overrides", '{"hidden_dropout_prob": 0.0}', "--run_dir", str(tmp_path / "r")])
    assert data.task == "mrpc" and args.learning_rate == 5e-5  # YAML 1.1 reads 5e-5 as a string
    assert args.per_device_train_batch_size == 16 and args.save_best is False and spiking.k == 3.0
    assert model.model_config == {"hidden_size": 32} and model.model_overrides == {"hidden_dropout_prob": 0.0}
    assert distill.distill_weights == {"task": 1.0, "logits": 1.0, "hidden": 0, "attention": 1.0}  # merged
    assert args.output_dir == str(tmp_path / "r")  # --run_dir is output_dir
    defaults = parse_args(finetune.ARGUMENTS, [])
    assert defaults[2].task == "sst2" and defaults[4].report_to == ["tensorboard"] and defaults[4].seed == 0
    again = check_values(finetune.ARGUMENTS, flat_config((model, spiking, data, distill, args)))
    assert again[4].per_device_train_batch_size == 16 and again[2].task == "mrpc"  # config.yaml reloads


@pytest.mark.parametrize("values, message", [
    ({"lr_rate": 1}, r"unknown config field\(s\) \['lr_rate'\]; accepted: model, init_from"),
    ({"per_device_train_batch_size": "many"}, r"--per_device_train_batch_size.*invalid int value: 'many'"),
    ({"learning_rate": math.inf}, r"learning_rate=inf is not a finite number"),
    ({"learning_rate": "nan"}, r"learning_rate=nan is not a finite number"),
    ({"max_grad_norm": "-inf"}, r"max_grad_norm=-inf is not a finite number"),
    ({"model": "snn"}, r"model='snn'; accepted: bert, spikelm"),
    ({"task": "sst-3"}, r"task='sst-3'; accepted: cola, sst2"),
    ({"T": 0}, r"T=0 is out of range; accepted: an int >= 1"),
    ({"T": 2.5}, r"--T: invalid int value: '2.5'"),
    ({"save_best": 3}, r"--save_best.*Truthy value expected: got 3"),
    ({"k": -1.0}, r"k=-1.0 is out of range; accepted: > 0"),
    ({"neuron": "elastic_bi(kk=2)"}, r"neuron 'elastic_bi' has no argument 'kk'"),
    ({"neuron": "ste_lif", "k": 3}, r"k=3.0 given, but neuron 'ste_lif' has no argument 'k'"),
    ({"distill_weights": {"hiden": 1.0}}, r"distill_weights hiden=1.0: accepted keys task"),
    ({"distill_weights": "[1, 2]"}, r"distill_weights=\[1, 2\] must be a mapping"),
    ({"distill_temperature": 0}, r"distill_temperature=0.0 is out of range; accepted: > 0"),
    ({"max_seq_length": 0}, r"max_seq_length=0 is out of range"),
    ({"stop_after": -1}, r"stop_after=-1 is out of range"),
])
def test_bad_values_name_the_field(values, message):
    with pytest.raises(ValueError, match=message):
        check_values(finetune.ARGUMENTS, values)


def test_bad_flag_is_an_error_not_an_exit():
    with pytest.raises(ValueError, match="--per_device_train_batch_size.*invalid int value: 'many'"):
        parse_args(finetune.ARGUMENTS, ["--per_device_train_batch_size", "many"])
    with pytest.raises(ValueError, match=r"not used by the HfArgumentParser: \[.--lr."):
        parse_args(finetune.ARGUMENTS, ["--lr", "1e-3"])


def test_job_config_checks_for_the_grid():
    finetune.check_config({"task": "rte", "learning_rate": 1e-4})
    with pytest.raises(ValueError, match="unknown config field"):
        finetune.check_config({"tsk": "rte"})
    with pytest.raises(ValueError, match="corpus and eval_corpus are required"):
        pretrain.check_config({"corpus": "a.txt"})
    with pytest.raises(ValueError, match=r"mlm_probability=1.5 is out of range; accepted: \(0, 1\)"):
        pretrain.check_config({"mlm_probability": 1.5})


def test_location_prefixes(tmp_path, monkeypatch):
    from pathlib import Path

    monkeypatch.setenv("SJ_SPIKELM_DATA", str(tmp_path))
    (tmp_path / "wikitext-2").mkdir()
    (tmp_path / "wikitext-2" / "valid.txt").write_text("x\n")
    model, _, corpus, *_ = objects = check_values(pretrain.ARGUMENTS, {
        "corpus": "data:wikitext-2/valid.txt", "tokenizer": "pkg:neuron_zoo/registry.py",
        "init_from": "bert-base-uncased"})
    resolve_locations(objects)
    assert corpus.corpus == str(tmp_path / "wikitext-2" / "valid.txt")
    assert Path(model.tokenizer).read_text().startswith('"""Build any zoo neuron')
    assert model.init_from == "bert-base-uncased"  # hub names are left alone
    with pytest.raises(FileNotFoundError, match="'data:missing.txt'.*does not exist"):
        resolve_locations(check_values(pretrain.ARGUMENTS, {"corpus": "data:missing.txt"}))
    with pytest.raises(FileNotFoundError, match="package 'no_such_pkg' is not installed"):
        resolve_locations(check_values(pretrain.ARGUMENTS, {"init_from": "pkg:no_such_pkg/model"}))
