"""The fine-tuning job end to end on tiny data: regression (STS-B), distillation from a
fine-tuned ANN with every loss part logged, firing rates and energy of spiking models, the
training firing-rate monitor counting training forwards only."""
import json

import pytest
from tiny import finetune_args

from sj_spikelm.train import finetune


def read(run_dir):
    return json.loads((run_dir / "metrics.json").read_text())


def scalar_tags(folder):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    acc = EventAccumulator(str(folder))
    acc.Reload()
    return acc


@pytest.fixture(scope="module")
def tiny_stsb(tmp_path_factory):
    root = tmp_path_factory.mktemp("stsb")
    folder = root / "STS-B"
    folder.mkdir()
    header = "index\tgenre\tfilename\tyear\told_index\tsentence1\tsentence2\tscore"
    pairs = [("the movie is good", "the film is great", 4.5), ("a dog runs", "the cat sleeps", 0.5),
             ("the man eats", "a man eats", 4.8), ("the plot was dull", "the acting is fine", 1.2)]
    for split in ("train", "dev"):
        rows = [header] + [f"{i}\tg\tf\ty\t{i}\t{a}\t{b}\t{s}" for i, (a, b, s) in enumerate(pairs * 4)]
        (folder / f"{split}.tsv").write_text("\n".join(rows) + "\n")
    return root


def test_stsb_regression_reports_spearman_and_pearson(tmp_path, tiny_tokenizer, tiny_stsb):
    run = tmp_path / "stsb"
    finetune.main(finetune_args(tiny_tokenizer, tiny_stsb, run, task="STS-B", max_steps=2, save_best="false"))
    m = read(run)
    assert m["metric"] == "spearman" and {"spearman", "pearson"} <= set(m["best"])
    assert m["scores"] == {"STS-B": pytest.approx(100 * m["best"]["spearman"])}
    assert not list(run.glob("checkpoint-*")) and not (run / "best").exists()


def test_distillation_from_a_finetuned_ann(tmp_path, tiny_tokenizer, tiny_glue):
    teacher = tmp_path / "teacher"
    finetune.main(finetune_args(tiny_tokenizer, tiny_glue, teacher, max_steps=4, max_eval_samples=8))
    assert read(teacher)["dev_examples"] == {"validation": 8}
    assert (teacher / "best" / "config.json").is_file()
    for name, model in (("ann", {}), ("spiking", {"model": "spikelm", "T": 2})):
        student = tmp_path / name
        finetune.main(finetune_args(tiny_tokenizer, tiny_glue, student, max_steps=2, distill=teacher / "best",
                                    distill_weights='{"attention": 0.5}', max_train_samples=16,
                                    logging_steps=1, **model))
        m = read(student)
        assert m["train_examples"] == 16 and m["config"]["distill"] == str(teacher / "best")
        assert m["config"]["distill_weights"]["attention"] == 0.5 and m["steps"] == 2
        logged = scalar_tags(student / "tb").Tags()["scalars"]
        assert {"train/distill_logits", "train/distill_hidden", "train/distill_attention",
                "train/task_loss", "train/loss"} <= set(logged)


@pytest.mark.parametrize("neuron", ["elastic_bi(k=2)", "elastic_bi(k=2, alpha='learnable')", "ste_lif"])
def test_spiking_finetune_reports_firing_rates(tmp_path, tiny_tokenizer, tiny_glue, neuron):
    run = tmp_path / "spike"
    finetune.main(finetune_args(tiny_tokenizer, tiny_glue, run, model="spikelm", neuron=neuron, T=2,
                                max_steps=2, save_best="false"))
    m = read(run)
    assert 0.0 < m["firing_rate"] < 1.0
    assert set(m["firing_rate_per_layer"]) >= {"0", "1"}
    assert m["energy_mj_per_sequence"] > 0 and "energy_unavailable" not in m["best"]
    assert m["model"]["class"] == "SpikeLMForSequenceClassification" and m["model"]["T"] == 2


def test_firing_rates_reach_tensorboard_during_training_and_evaluation(tmp_path, tiny_tokenizer, tiny_glue):
    run = tmp_path / "run"
    finetune.main(finetune_args(tiny_tokenizer, tiny_glue, run, model="spikelm", T=2, max_steps=4,
                                eval_strategy="steps", eval_steps=2, save_best="false", logging_steps=2))
    acc = scalar_tags(run / "tb" / "spikes")
    tags = acc.Tags()["scalars"]
    assert "firing_rate/bert.encoder.layer.0.attention.self.query.neuron" in tags
    assert [e.step for e in acc.Scalars("firing_rate/bert.encoder.layer.1.output.dense.neuron")] == [2, 4]
    assert [e.step for e in acc.Scalars("eval/firing_rate")] == [2, 4]
    evals = read(run)["evals"]
    logged = [v.value for v in acc.Scalars("eval/firing_rate")]  # float32 in TensorBoard
    assert logged == pytest.approx([e["firing_rate"] for e in evals], rel=1e-6)


def test_no_weight_decay_on_neuron_parameters_biases_and_norms(tiny_config):
    from sj_spikelm import SpikeLMForSequenceClassification
    from sj_spikelm.train.arguments import SpikingTrainingArguments
    from sj_spikelm.train.trainer import SpikingTrainer

    model = SpikeLMForSequenceClassification(tiny_config(neuron="elastic_bi(alpha='learnable')"))
    args = SpikingTrainingArguments(output_dir="unused", report_to="none", eval_strategy="no")
    trainer = SpikingTrainer(model=model, args=args)
    decayed = set(trainer.get_decay_parameter_names(model))
    assert "bert.encoder.layer.0.attention.self.query.weight" in decayed
    assert not any(n.endswith((".alpha", ".bias")) or "LayerNorm" in n for n in decayed)
    assert any(n.endswith(".alpha") for n, _ in model.named_parameters())


def test_mnli_reports_both_dev_splits_in_every_evaluation(tmp_path, tiny_tokenizer):
    """The Trainer logs MNLI's matched and mismatched evaluations as separate entries of one
    step; the result merges them, so best and final both carry MNLI-m and MNLI-mm."""
    header = "\t".join(["index", "promptID", "pairID", "genre", "sentence1_binary_parse",
                        "sentence2_binary_parse", "sentence1_parse", "sentence2_parse", "sentence1",
                        "sentence2", "label1", "gold_label"])
    golds = ["entailment", "neutral", "contradiction"]
    folder = tmp_path / "data" / "MNLI"
    folder.mkdir(parents=True)
    for split in ("train", "dev_matched", "dev_mismatched"):
        rows = [header] + ["\t".join([str(i), "1", "2", "g", "", "", "", "", "the film is good",
                                      "the movie was " + ("good", "fine", "bad")[i % 3], golds[i % 3],
                                      golds[i % 3]]) for i in range(12)]
        (folder / f"{split}.tsv").write_text("\n".join(rows) + "\n")
    run = tmp_path / "mnli"
    finetune.main(finetune_args(tiny_tokenizer, tmp_path / "data", run, task="mnli", max_steps=4,
                                eval_strategy="steps", eval_steps=2))
    m = read(run)
    assert m["metric"] == "validation_matched_accuracy"
    assert len(m["evals"]) == 2 and [e["step"] for e in m["evals"]] == [2, 4]
    for evaluation in (m["best"], m["final"], *m["evals"]):
        assert set(evaluation["scores"]) == {"MNLI-m", "MNLI-mm"}
    assert m["dev_examples"] == {"validation_matched": 12, "validation_mismatched": 12}
    assert (run / "best" / "config.json").is_file()
