"""The fine-tuning job end to end on tiny data: regression (STS-B), distillation from a
fine-tuned ANN, evaluation subsampling; spiking models when present."""
import json

import pytest
from tiny import finetune_args

from sj_spikelm.train import finetune


def read(run_dir):
    return json.loads((run_dir / "metrics.json").read_text())


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
    finetune.main(finetune_args(tiny_tokenizer, tiny_stsb, run, task="STS-B", max_steps=2, save_best="false",
                                save_final="false"))
    m = read(run)
    assert m["metric"] == "spearman" and set(m["best"]["validation"]) == {"spearman", "pearson"}
    assert m["scores"] == {"STS-B": pytest.approx(100 * m["best"]["validation"]["spearman"])}
    assert not (run / "checkpoint").exists() and not (run / "best").exists()


def test_distillation_from_a_finetuned_ann(tmp_path, tiny_tokenizer, tiny_glue):
    teacher = tmp_path / "teacher"
    finetune.main(finetune_args(tiny_tokenizer, tiny_glue, teacher, max_steps=4, max_eval_samples=8))
    assert read(teacher)["dev_examples"] == {"validation": 8}
    for name, model in (("ann", {}), ("spiking", {"model": "spikelm", "T": 2})):
        student = tmp_path / name
        finetune.main(finetune_args(tiny_tokenizer, tiny_glue, student, max_steps=2, distill=teacher / "best",
                                    distill_weights='{"attention": 0.5}', max_train_samples=16, **model))
        m = read(student)
        assert m["train_examples"] == 16 and m["config"]["distill"] == str(teacher / "best")
        assert m["config"]["distill_weights"]["attention"] == 0.5 and m["steps"] == 2
        logged = {tag for f in (student / "tb").iterdir() for tag in _scalar_tags(f)}
        assert {"train/distill_logits", "train/distill_hidden", "train/distill_attention",
                "train/task_loss"} <= logged


def _scalar_tags(event_file):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    acc = EventAccumulator(str(event_file))
    acc.Reload()
    return acc.Tags()["scalars"]


@pytest.mark.parametrize("neuron", ["elastic_bi(k=2)", "elastic_bi(k=2, alpha='learnable')", "ste_lif"])
def test_spiking_finetune_reports_firing_rates(tmp_path, tiny_tokenizer, tiny_glue, neuron):
    run = tmp_path / "spike"
    finetune.main(finetune_args(tiny_tokenizer, tiny_glue, run, model="spikelm", neuron=neuron, T=2,
                                max_steps=2, save_best="false"))
    m = read(run)
    assert 0.0 < m["firing_rate"] < 1.0
    assert set(m["firing_rate_per_layer"]) >= {"0", "1"}
    assert m["energy_mj_per_sequence"] > 0 and "energy_unavailable" not in m["best"]


def test_training_firing_rate_window_leaves_out_evaluation(tmp_path, tiny_tokenizer, tiny_glue, monkeypatch):
    """The monitor's hooks are off while the dev set runs, so TensorBoard's training firing
    rates count training forwards only."""
    from sj_spikelm.train import loop

    monitors, during_eval = [], []
    make_monitor = loop._firing_rate_monitor

    def capture(*args, **kwargs):
        monitors.append(make_monitor(*args, **kwargs))
        return monitors[-1]

    evaluate, loss = finetune.GlueJob.evaluate, finetune.GlueJob.loss
    during_training = []

    def checked_loss(self, model, batch):
        if monitors:  # (the calibration forward comes before the monitor)
            during_training.append(monitors[0].counts.is_enable())
        return loss(self, model, batch)

    def checked(self, model):
        during_eval.append(monitors[0].counts.is_enable())
        return evaluate(self, model)

    monkeypatch.setattr(loop, "_firing_rate_monitor", capture)
    monkeypatch.setattr(finetune.GlueJob, "evaluate", checked)
    monkeypatch.setattr(finetune.GlueJob, "loss", checked_loss)
    finetune.main(finetune_args(tiny_tokenizer, tiny_glue, tmp_path / "run", model="spikelm", T=2,
                                max_steps=4, eval_every=2, save_best="false"))
    assert during_eval == [False, False] and during_training == [True] * 4
