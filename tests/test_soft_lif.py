"""soft_lif: LIF with subtractive reset and BPTT through the reset (BiSpikCLM's neuron)."""
import pytest
import torch
from spikingjelly.activation_based import functional, surrogate

import neuron_zoo
from neuron_zoo import SoftResetLIFNode, build_memoryless, build_neuron, neuron_spec


def reference(x_seq, decay, v_threshold, sg, detach_reset):
    """The neuron's equations written out: H = decay V + X, S = sg(H - th), V = H - th S."""
    v, out = torch.zeros_like(x_seq[0]), []
    for x in x_seq:
        h = decay * v + x
        s = sg(h - v_threshold)
        v = h - v_threshold * (s.detach() if detach_reset else s)
        out.append(s)
    return torch.stack(out)


def test_charge_fire_soft_reset_by_hand():
    node = SoftResetLIFNode(decay=0.5, v_threshold=1.0)
    x = torch.tensor([[0.6, 0.0], [0.6, 2.5], [0.6, 0.0], [1.5, 0.4]])  # [T=4, N=2]
    s = node(x)
    # column 0: H = 0.6, 0.9, 1.05 (fires, V = 0.05), 0.025 + 1.5 = 1.525 (fires, V = 0.525)
    # column 1: H = 0, 2.5 (fires, V = 1.5: the soft reset keeps the excess), 0.75, 0.775
    torch.testing.assert_close(s, torch.tensor([[0., 0.], [0., 1.], [1., 0.], [1., 0.]]))
    torch.testing.assert_close(node.v, torch.tensor([0.525, 0.775]))
    assert s.dtype == x.dtype and set(s.unique().tolist()) <= {0.0, 1.0}


def test_threshold_and_decay_are_used():
    x = torch.tensor([[0.7], [0.7]])
    assert SoftResetLIFNode(decay=0.5, v_threshold=1.0)(x).tolist() == [[0.0], [1.0]]  # 0.35 + 0.7
    assert SoftResetLIFNode(decay=0.25, v_threshold=1.0)(x).tolist() == [[0.0], [0.0]]  # 0.175 + 0.7
    assert SoftResetLIFNode(decay=0.25, v_threshold=0.6)(x).tolist() == [[1.0], [1.0]]  # 0.025 + 0.7


@pytest.mark.parametrize("detach_reset", [False, True])
@pytest.mark.parametrize("name, alpha", [("atan", None), ("sigmoid", 4.0), ("erf", 3.0)])
def test_gradients_equal_the_written_out_equations(detach_reset, name, alpha):
    torch.manual_seed(0)
    x = (torch.randn(5, 3, 4) * 1.5).requires_grad_()
    w = torch.randn(5, 3, 4)
    node = SoftResetLIFNode(decay=0.5, v_threshold=0.8, surrogate=name, surrogate_alpha=alpha,
                            detach_reset=detach_reset)
    y = node(x)
    (y * w).sum().backward()
    x_ref = x.detach().clone().requires_grad_()
    sg = neuron_zoo.soft_lif.build_surrogate(name, alpha)
    spikes = reference(x_ref, 0.5, 0.8, sg, detach_reset)
    (spikes * w).sum().backward()
    torch.testing.assert_close(y.detach(), spikes.detach())
    torch.testing.assert_close(x.grad, x_ref.grad)


def test_gradient_flows_through_the_reset():
    """With a smooth spike function (the surrogate's primitive, SpikingJelly's spiking=False),
    the neuron is an ordinary differentiable function: the non-detached reset gives its exact
    gradient (finite differences), the detached one does not."""
    x = (torch.randn(4, 2, 3, dtype=torch.float64, generator=torch.Generator().manual_seed(1)) + 0.8)
    x.requires_grad_()

    def smooth(detach_reset):
        node = SoftResetLIFNode(decay=0.5, v_threshold=1.0, surrogate="sigmoid", detach_reset=detach_reset)
        node.surrogate_function.set_spiking_mode(False)

        def f(inp):
            functional.reset_net(node)
            return node(inp)
        return f

    assert torch.autograd.gradcheck(smooth(False), (x,), eps=1e-6, atol=1e-6)
    assert not torch.autograd.gradcheck(smooth(True), (x,), eps=1e-6, atol=1e-6, raise_exception=False)
    # and with real spikes the two variants' gradients differ wherever a spike was fired before
    g = {}
    for detach in (False, True):
        xs = x.detach().float().requires_grad_()
        SoftResetLIFNode(decay=0.5, detach_reset=detach)(xs).sum().backward()
        g[detach] = xs.grad
    assert not torch.allclose(g[False], g[True])
    torch.testing.assert_close(g[False][-1], g[True][-1])  # the last step has no later reset


def test_single_step_equals_multi_step_and_reset_clears_state():
    torch.manual_seed(0)
    x = torch.randn(6, 2, 5) * 2
    multi = SoftResetLIFNode(decay=0.25)
    single = SoftResetLIFNode(decay=0.25, step_mode="s")
    expected = multi(x)
    torch.testing.assert_close(torch.stack([single(xt) for xt in x]), expected)
    multi.reset()
    torch.testing.assert_close(multi(x), expected)
    node, step = SoftResetLIFNode(decay=0.5), torch.full((1, 1), 0.7)
    assert node(step).item() == 0.0 and node(step).item() == 1.0  # 0.7, then 0.35 + 0.7: state carried
    node.reset()
    assert node(step).item() == 0.0
    assert multi.spike_counts.shape == (6, 3)
    torch.testing.assert_close(multi.firing_rate, expected.mean())


def test_memoryless_form_carries_nothing_across_steps():
    node = build_memoryless("soft_lif(decay=0.25)", T=4)
    assert node.stepwise
    x = torch.randn(4, 3, 5)
    y = x.clone()
    y[0] += 5.0
    assert torch.equal(node(x)[1:], node(y)[1:])
    torch.testing.assert_close(node(x), (x >= 1.0).float())  # H[t] = X[t]


def test_built_by_name_with_arguments_and_round_trips():
    assert "soft_lif" in neuron_zoo.list_neurons()
    node = build_neuron("soft_lif(decay=0.25, v_threshold=0.5, surrogate='sigmoid', surrogate_alpha=4.0)")
    assert type(node) is SoftResetLIFNode
    assert (node.decay, node.v_threshold, node.v_reset, node.detach_reset) == (0.25, 0.5, None, False)
    assert isinstance(node.surrogate_function, surrogate.Sigmoid) and node.surrogate_function.alpha == 4.0
    spec = neuron_spec(node)
    assert spec == "soft_lif(decay=0.25, v_threshold=0.5, surrogate='sigmoid', surrogate_alpha=4.0)"
    assert build_neuron(spec).init_kwargs == node.init_kwargs
    assert neuron_spec(build_neuron("soft_lif")) == "soft_lif"


@pytest.mark.parametrize("spec, error, match", [
    ("soft_lif(decay=1.0)", ValueError, r"decay=1.0 is out of range; accepted: \(0.0, 1.0\)"),
    ("soft_lif(decay=0.0)", ValueError, "decay=0.0 is out of range"),
    ("soft_lif(v_threshold=0)", ValueError, "v_threshold=0.0 is out of range"),
    ("soft_lif(surrogate='relu')", ValueError, "surrogate='relu' is not accepted; choose one of 'atan'"),
    ("soft_lif(surrogate_alpha=-1.0)", ValueError, "surrogate_alpha=-1.0 is out of range"),
    ("soft_lif(detach_reset=1)", TypeError, "detach_reset=1 must be a bool"),
    ("soft_lif(tau=2.0)", ValueError, "has no argument 'tau'"),
])
def test_bad_arguments_are_named(spec, error, match):
    with pytest.raises(error, match=match):
        build_neuron(spec)


def test_integer_input_is_refused():
    with pytest.raises(TypeError, match="soft_lif.*input dtype torch.int64"):
        SoftResetLIFNode()(torch.ones(2, 3, dtype=torch.long))
