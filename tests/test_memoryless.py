"""The memoryless form of every neuron type (what SpikeLM's key/value neurons use): output at step
t depends on input at step t only, while the neuron it comes from carries state across steps."""
import pytest
import torch
from spikingjelly.activation_based import base
from torch import nn

import neuron_zoo
from neuron_zoo import build_memoryless, build_neuron
from sj_spikelm import SpikeLMConfig, SpikeLMModel

T = 3
SPECS = ["elastic_bi(k=2)", "elastic_bi(k=2, reset='soft', alpha='learnable')", "ste_lif(v_threshold=0.5)",
         "ternary_fixed", "lif", "lif(decay_input=False, tau=4.0)", "psn", "ann"]


def ready(node, x):
    """Calibrate (where the neuron has per-step state) on ``x``, then eval mode."""
    if isinstance(node, neuron_zoo.CalibratedNeuron):
        node.calibrate(x)
    if isinstance(node, neuron_zoo.PSN) and node.stepwise:  # a scalar weight drawn near 0 may never fire
        with torch.no_grad():
            node.weight.fill_(1.0)
    return node.eval()


def response(node, x):
    """Spikes of ``node`` on ``x`` and the gradient of the spikes at steps >= 1 w.r.t. step 0."""
    if hasattr(node, "reset"):
        node.reset()
    x = x.clone().requires_grad_(True)
    s = node(x)
    grad, = torch.autograd.grad(s[1:].sum(), x, allow_unused=True)
    return s.detach(), torch.zeros_like(x) if grad is None else grad


def inputs(seed=0):
    g = torch.Generator().manual_seed(seed)
    x = 1.5 * torch.randn(T, 64, 8, generator=g)
    perturbed = x.clone()
    perturbed[0] += 3.0 * torch.randn(64, 8, generator=g)
    return x, perturbed


def spec_with_T(spec):
    return f"psn(T={T})" if spec == "psn" else spec


@pytest.mark.parametrize("spec", SPECS)
def test_memoryless_output_at_t_depends_on_input_at_t_only(spec):
    torch.manual_seed(0)
    x, perturbed = inputs()
    node = ready(build_memoryless(spec, T), x)
    s, grad = response(node, x)
    s_perturbed, _ = response(node, perturbed)
    assert torch.equal(s_perturbed[1:], s[1:])  # steps >= 1 unchanged
    assert torch.equal(grad[0], torch.zeros_like(grad[0]))  # and no gradient reaches step 0
    if spec != "ann":
        assert not torch.equal(s_perturbed[0], s[0])  # step 0 did change


@pytest.mark.parametrize("spec", [s for s in SPECS if s != "ann"])
def test_the_original_neuron_does_carry_state(spec):
    """The test above could fail: the neuron the memoryless form comes from mixes steps."""
    torch.manual_seed(0)
    x, perturbed = inputs()
    original = spec_with_T(spec)
    if "learnable" in original:
        original = original.replace(")", f", T={T})")
    node = ready(build_neuron(original), x)
    s, grad = response(node, x)
    s_perturbed, _ = response(node, perturbed)
    assert not torch.equal(s_perturbed[1:], s[1:]) or grad[0].abs().sum() > 0
    assert grad[0].abs().sum() > 0


def test_memoryless_equations_by_hand():
    x = torch.tensor([[0.4, 1.2, -0.7], [0.9, 1.0, 1.1], [1.0, -2.0, 0.99]])
    lif = build_memoryless("lif(v_threshold=1.0)", T)  # H[t] = X[t] exactly
    assert (lif.stepwise, lif.decay_input) == (True, False)
    torch.testing.assert_close(lif(x), (x >= 1.0).float(), rtol=0, atol=0)
    lif.step_mode = "s"  # single-step calls: each from V = 0 as well
    torch.testing.assert_close(torch.stack([lif(x[t]) for t in range(T)]), (x >= 1.0).float(), rtol=0, atol=0)
    psn = build_memoryless("psn(T=3)", T)  # one PSN(T=1): H[t] = w X[t] + b
    assert psn.weight.shape == (1, 1) and psn.bias.shape == (1, 1)
    with torch.no_grad():
        psn.weight.fill_(2.0), psn.bias.fill_(-1.0)
    torch.testing.assert_close(psn(x), (2.0 * x - 1.0 >= 0).float(), rtol=0, atol=0)
    elastic = build_memoryless("elastic_bi(k=2, decay=0.5)", T)  # decay 0: m[t] = x[t]
    assert elastic.decay == 0.0 and elastic.T == T and elastic.k == 2.0
    elastic.load_state_dict({"alpha": torch.ones(T), "calibrated": torch.ones(T, dtype=torch.bool)})
    torch.testing.assert_close(elastic(x), ((x >= 0.5).float() - (x <= -0.5).float()), rtol=0, atol=0)
    assert type(build_memoryless("ann", T)) is neuron_zoo.ANNNode


class Leaky(base.MemoryModule):
    """A user's neuron with a membrane and no memoryless rule."""

    def __init__(self, decay: float = 0.5):
        super().__init__()
        self.decay = decay

    def forward(self, x_seq):
        return x_seq


class Declared(Leaky):
    memoryless_arguments = staticmethod(lambda kwargs: {"decay": 0.0} if kwargs["decay"] > 0 else {})

    def __init__(self, decay: float = 0.5):
        super().__init__(decay)
        self.init_kwargs = {"decay": decay}


def test_a_neuron_without_a_rule_is_named_and_a_declared_rule_is_used():
    neuron_zoo.register_neuron("test_leaky", Leaky)
    neuron_zoo.register_neuron("test_declared", Declared)
    with pytest.raises(ValueError, match=r"neuron 'test_leaky' \(Leaky\) declares no memoryless form; give "
                                         r"the class an attribute memoryless_arguments"):
        build_memoryless("test_leaky", T)
    assert build_memoryless("test_declared(decay=0.25)", T).decay == 0.0
    with pytest.raises(ValueError, match="sets T=2 but T=3"):
        build_memoryless("psn(T=2)", T)


@pytest.mark.parametrize("spec, cls", [("lif", neuron_zoo.LIFNode), ("psn", neuron_zoo.PSN),
                                       ("ste_lif", neuron_zoo.STELIFNode)])
def test_spikelm_key_value_neurons_are_memoryless_for_every_neuron(spec, cls):
    config = SpikeLMConfig(vocab_size=20, hidden_size=8, num_hidden_layers=1, num_attention_heads=2,
                           intermediate_size=8, max_position_embeddings=8, T=T, neuron=spec)
    model = SpikeLMModel(config)
    attention = model.encoder.layer[0].attention.self
    for kv in (attention.key_neuron, attention.value_neuron):
        assert type(kv) is cls
        assert getattr(kv, "stepwise", False) or getattr(kv, "decay", None) == 0.0
    assert not getattr(attention.query.neuron, "stepwise", False)
    assert isinstance(attention.key_neuron, nn.Module)
