"""SpikeLM models under `transformers.Trainer` unchanged: calibration on the first training
batch, training steps, evaluation and save/load of the calibrated model."""
import pytest
import torch

from neuron_zoo import needs_calibration
from sj_spikelm import SpikeLMConfig, SpikeLMForSequenceClassification

datasets = pytest.importorskip("datasets")
pytest.importorskip("accelerate", reason="transformers.Trainer needs accelerate")


def toy_dataset(n=16, length=8, vocab=40, seed=0):
    g = torch.Generator().manual_seed(seed)
    ids = torch.randint(5, vocab, (n, length), generator=g)
    labels = (ids[:, 1] > vocab // 2).long()
    return datasets.Dataset.from_dict({"input_ids": ids.tolist(),
                                       "attention_mask": [[1] * length] * n,
                                       "labels": labels.tolist()})


@pytest.mark.parametrize("neuron", ["elastic_bi(k=2)", "elastic_bi(k=2, alpha='learnable')"])
def test_trainer_trains_evaluates_and_saves_a_spiking_model(tmp_path, neuron):
    from transformers import Trainer, TrainingArguments

    torch.manual_seed(0)
    config = SpikeLMConfig(vocab_size=40, hidden_size=32, num_hidden_layers=2, num_attention_heads=2,
                           intermediate_size=64, max_position_embeddings=16, T=2,
                           neuron=neuron, num_labels=2)
    model = SpikeLMForSequenceClassification(config)
    before = {n: p.detach().clone() for n, p in model.named_parameters()}
    args = TrainingArguments(output_dir=str(tmp_path / "out"), max_steps=3, per_device_train_batch_size=4,
                             per_device_eval_batch_size=8, learning_rate=1e-2, report_to=[],
                             save_strategy="no", use_cpu=True, seed=0, dataloader_num_workers=0)
    trainer = Trainer(model=model, args=args, train_dataset=toy_dataset(), eval_dataset=toy_dataset(seed=1))
    calibrated = {}

    def keep_first_alpha(neuron, inputs, output):
        calibrated.setdefault("bert.encoder.layer.0.attention.self.query.neuron.alpha",
                              neuron.alpha.detach().clone())

    model.bert.encoder.layer[0].attention.self.query.neuron.register_forward_hook(keep_first_alpha)
    result = trainer.train()

    assert result.global_step == 3 and torch.isfinite(torch.tensor(result.training_loss))
    assert not needs_calibration(model)  # by the first training batch, inside Trainer's forward
    changed = [n for n, p in model.named_parameters() if not torch.equal(p, before[n])]
    assert "bert.encoder.layer.0.attention.self.query.weight" in changed
    assert "classifier.weight" in changed
    alpha = model.bert.encoder.layer[0].attention.self.query.neuron.alpha
    assert alpha.shape == (2,)
    if "learnable" in neuron:  # the [T] parameter existed when Trainer built its optimizer
        name = "bert.encoder.layer.0.attention.self.query.neuron.alpha"
        assert name in changed and not torch.equal(alpha, calibrated[name])
    metrics = trainer.evaluate()
    assert torch.isfinite(torch.tensor(metrics["eval_loss"]))

    trainer.save_model(str(tmp_path / "model"))
    loaded = SpikeLMForSequenceClassification.from_pretrained(tmp_path / "model").eval()
    batch = {"input_ids": torch.tensor(toy_dataset(n=4)["input_ids"])}
    model.eval()
    with torch.no_grad():
        assert torch.equal(model(**batch).logits, loaded(**batch).logits)
