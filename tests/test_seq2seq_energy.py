"""Energy of the spiking encoder-decoder (Appendix A.3 extended to the decoder): MAC counts of
the ANN twin against a hand count, AC rows from the measured firing rates, errors."""
import pytest
import torch

from sj_spikelm import SpikeLMForConditionalGeneration, SpikeLMSeq2SeqConfig
from sj_spikelm.energy import estimate_seq2seq_energy

TINY = dict(vocab_size=40, d_model=8, encoder_layers=2, decoder_layers=1, encoder_attention_heads=2,
            decoder_attention_heads=2, encoder_ffn_dim=12, decoder_ffn_dim=20, max_position_embeddings=16,
            pad_token_id=1, bos_token_id=0, eos_token_id=2, decoder_start_token_id=2)


@pytest.fixture
def batch():
    g = torch.Generator().manual_seed(0)
    input_ids = torch.randint(3, 40, (2, 5), generator=g)
    attention_mask = torch.tensor([[1, 1, 1, 1, 1], [1, 1, 1, 0, 0]])  # S = 5, 3
    labels = torch.randint(3, 40, (2, 4), generator=g)
    labels[1, 2:] = -100  # L = 4, 2
    return dict(input_ids=input_ids, attention_mask=attention_mask, labels=labels)


def model(neuron, T, batch=None):
    torch.manual_seed(0)
    m = SpikeLMForConditionalGeneration(SpikeLMSeq2SeqConfig(**TINY, neuron=neuron, T=T))
    if batch is not None:
        m.calibrate(**batch)
    return m.eval()


def test_ann_twin_is_all_macs_by_hand_count(batch):
    report = estimate_seq2seq_energy(model("ann", 4), batch)
    D, Fe, Fd, V = 8, 12, 20, 40
    S, L = [5, 3], [4, 2]
    macs = 0
    for s, t in zip(S, L):
        encoder = 4 * s * D * D + 2 * s * s * D + 2 * s * D * Fe
        decoder = (4 * t * D * D + 2 * D * t * (t + 1) // 2            # causal self-attention
                   + 2 * t * D * D + 2 * s * D * D + 2 * D * t * s      # cross-attention
                   + 2 * t * D * Fd)
        macs += 2 * encoder + decoder + t * D * V
    assert all(r["kind"] == "MAC" for r in report.rows) and report.T == 1  # the ANN repeats one step
    assert sum(r["ops"] for r in report.rows) == pytest.approx(macs / 2)
    assert report.total_mj == pytest.approx(macs / 2 * 4.6e-9)
    assert report.mean_tokens == pytest.approx((8 + 6) / 2)


def test_spiking_rows_use_the_measured_firing_rates(batch):
    m = model("elastic_bi(k=2)", 3, batch)
    report = estimate_seq2seq_energy(m, batch)
    rows = {r["layer"]: r for r in report.rows}
    k = rows["decoder.layers.0.encoder_attn.k_proj"]  # cross-attention keys: the source tokens
    assert k["kind"] == "AC" and k["dense_ops"] == pytest.approx((5 + 3) * 8 * 8 / 2)
    assert k["rate"] == pytest.approx(float(m.model.decoder.layers[0].encoder_attn.k_proj.neuron.firing_rate))
    assert k["ops"] == pytest.approx(k["dense_ops"] * 3 * k["rate"])
    scores = rows["decoder.layers.0.self_attn.scores (Q K^T)"]
    assert scores["dense_ops"] == pytest.approx((10 + 3) * 8 / 2)  # L (L + 1) / 2 causal pairs
    assert rows["lm_head"]["kind"] == "MAC" and rows["lm_head"]["steps"] == 1
    assert 0 < k["rate"] < 1
    ann = estimate_seq2seq_energy(model("ann", 1), batch)
    assert report.total_mj < ann.total_mj  # AC at these rates is cheaper than dense MACs


def test_energy_errors(batch):
    m = model("ann", 1)
    with pytest.raises(ValueError, match="labels or decoder_input_ids"):
        estimate_seq2seq_energy(m, {"input_ids": batch["input_ids"]})
    with pytest.raises(ValueError, match="precision='int8'"):
        estimate_seq2seq_energy(m, batch, precision="int8")
    with pytest.raises(TypeError, match="SpikeLMForConditionalGeneration"):
        estimate_seq2seq_energy(torch.nn.Linear(2, 2), batch)
