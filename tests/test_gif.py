"""The GIF neuron (SpikeLLM): integer spike levels, soft reset, the uniform quantizer it realises,
per-channel step counts, the straight-through gradient, and errors."""
import itertools

import pytest
import torch
from spikingjelly.activation_based import functional

import neuron_zoo
from neuron_zoo import GIFNode, build_neuron, gif_quantize, neuron_spec

X = torch.tensor([0.0, 0.75, 2.5, 4.25, 7.75, -1.5])


@pytest.mark.parametrize("rounding, spikes, residual", [
    # L = 3 (levels 0, 1, 2), T = 3: s[t] = clip(floor(v + b), 0, 2), v <- v - s
    ("floor", [[0, 0, 0], [0, 0, 0], [2, 0, 0], [2, 2, 0], [2, 2, 2], [0, 0, 0]],
     [0.0, 0.75, 0.5, 0.25, 1.75, -1.5]),
    ("nearest", [[0, 0, 0], [1, 0, 0], [2, 1, 0], [2, 2, 0], [2, 2, 2], [0, 0, 0]],
     [0.0, -0.25, -0.5, 0.25, 1.75, -1.5]),
])
def test_levels_and_residual_per_step(rounding, spikes, residual):
    node = GIFNode(levels=3, rounding=rounding)
    s = node.decompose(X, 3)
    assert torch.equal(s, torch.tensor(spikes).T.float())
    assert torch.equal(node.v, torch.tensor(residual))
    assert node.t == 3


@pytest.mark.parametrize("rounding, spikes, residual", [
    # signed, L = 2 (ternary), T = 2: s[t] = sign(v) clip(floor(|v| + b), 0, 1)
    ("floor", [[0, 0], [0, 0], [1, 0], [-1, 0], [-1, -1], [1, 1]], [0.75, -0.75, 0.5, -0.5, -0.25, 1.0]),
    # nearest: magnitude ceil(|v| - 1/2), ties toward zero (1.5 -> 1, residual 0.5 -> 0)
    ("nearest", [[1, 0], [-1, 0], [1, 0], [-1, 0], [-1, -1], [1, 1]], [-0.25, 0.25, 0.5, -0.5, -0.25, 1.0]),
])
def test_signed_ternary_levels_and_residual(rounding, spikes, residual):
    x = torch.tensor([0.75, -0.75, 1.5, -1.5, -2.25, 3.0])
    node = build_neuron(f"gif(levels=2, signed=True, rounding={rounding!r})")
    s = node.decompose(x, 2)
    assert torch.equal(s, torch.tensor(spikes).T.float())
    assert torch.equal(node.v, torch.tensor(residual))


def test_threshold_scales_the_charge():
    node = GIFNode(levels=3, v_threshold=0.5)
    s = node.decompose(torch.tensor([1.25]), 2)  # u = 2.5 thresholds
    assert s.flatten().tolist() == [2.0, 0.0]
    assert node.v.item() == 0.5                   # membrane in units of theta
    assert 1.25 - 0.5 * s.sum().item() == 0.25    # reconstruction error in [0, theta)


def test_input_spread_over_steps_is_integrated():
    node = GIFNode(levels=2)
    s = node(torch.tensor([[0.5], [0.75], [0.0], [1.0]]))
    # v: 0.5 -> 1.25 (fire 1, 0.25) -> 0.25 -> 1.25 (fire 1, 0.25)
    assert s.flatten().tolist() == [0.0, 1.0, 0.0, 1.0]
    assert node.v.item() == 0.25


def _all_code_inputs(lo, hi):
    """Every code k in [lo, hi], the points around it (half-way ties included), beyond the range."""
    k = torch.arange(lo - 2, hi + 3, dtype=torch.float32)
    offsets = torch.tensor([-0.5, -0.25, -1e-3, 0.0, 1e-3, 0.25, 0.5, 0.75])
    return (k[:, None] + offsets).flatten()


@pytest.mark.parametrize("levels, steps, signed, rounding", list(itertools.product(
    (2, 3, 4, 16), (1, 2, 3, 5), (False, True), ("floor", "nearest"))))
def test_spike_path_equals_quantizer_for_every_code(levels, steps, signed, rounding):
    hi = steps * (levels - 1)
    lo = -hi if signed else 0
    torch.manual_seed(levels * 100 + steps)
    theta = 0.375
    u = torch.cat([_all_code_inputs(lo, hi), (hi + 4) * (2 * torch.rand(2000) - 1)])
    x = u * theta
    node = GIFNode(levels=levels, v_threshold=theta, signed=signed, rounding=rounding)
    codes = node.decompose(x, steps).sum(0)
    quantized = gif_quantize(x, levels, steps, signed, rounding, v_threshold=theta)
    assert torch.equal(theta * codes, quantized)
    # every reachable code appears and nothing else: T steps of L levels = (hi - lo + 1) levels
    assert set(codes.unique().tolist()) == set(range(lo, hi + 1))
    # each code k is sent exactly (no saturation below the top codes)
    k = torch.arange(lo, hi + 1, dtype=torch.float32)
    assert torch.equal(node.decompose(k * theta, steps).sum(0), k)
    # in range, the reconstruction error is within one threshold (floor) or half of it (nearest)
    b = 0.5 if rounding == "nearest" else 0.0
    err = (x - quantized) / theta
    if signed:
        inside = u.abs() < hi + 1 - b
        if rounding == "floor":
            assert torch.all((err[inside].abs() < 1) & (err[inside] * u[inside] >= 0))
        else:
            assert set(codes[u.abs() == 0.5].tolist()) == {0.0}  # ties toward zero
    else:
        inside = (u >= -b) & (u < hi + 1 - b)
        if rounding == "floor":
            assert torch.all((err[inside] >= 0) & (err[inside] < 1))
    if rounding == "nearest":
        assert torch.all(err[inside].abs() <= 0.5)
    assert inside.sum() > 0


def test_b_bit_code_needs_ceil_steps():
    # 4-bit code (16 levels) with 2-bit spikes (L=4): T = ceil(15 / 3) = 5 steps, not 16 / 4 = 4
    node = GIFNode(levels=4)
    top = torch.tensor([15.0])
    assert node.decompose(top, 5).sum().item() == 15
    assert node.decompose(top, 4).sum().item() == 12  # saturates below the top codes


def test_per_channel_step_counts():
    node = GIFNode(levels=2)
    node.set_channel_steps(torch.tensor([1, 2, 3, 0]))
    s = node.decompose(torch.full((2, 4), 5.0), 3)
    assert torch.equal(s[:, 0], torch.tensor([[1.0, 1, 1, 0], [0, 1, 1, 0], [0, 0, 1, 0]]))
    assert torch.equal(node.v[0], torch.tensor([4.0, 3.0, 2.0, 5.0]))  # silent steps keep the membrane
    steps = torch.tensor([1, 2, 3, 0])
    assert torch.equal(s.sum(0), gif_quantize(torch.full((2, 4), 5.0), 2, steps))
    assert "channel_steps" in node.state_dict()
    node.set_channel_steps(None)
    assert node.decompose(torch.full((4,), 5.0), 3).sum(0).tolist() == [3.0] * 4


def test_per_channel_steps_equal_quantizer_on_random_inputs():
    torch.manual_seed(0)
    steps = torch.tensor([1, 4, 2, 2, 8])
    x = 20 * torch.randn(64, 5)
    for signed, rounding in itertools.product((False, True), ("floor", "nearest")):
        node = GIFNode(levels=3, signed=signed, rounding=rounding)
        node.set_channel_steps(steps)
        assert torch.equal(node.decompose(x, 8).sum(0), gif_quantize(x, 3, steps, signed, rounding))


@pytest.mark.parametrize("signed, rounding, x, expected", [
    (False, "floor", [-0.5, 0.0, 3.0, 4.0, 4.5], [0.0, 1, 1, 1, 0]),       # window 0 <= u <= 4
    (False, "nearest", [-0.25, 0.0, 3.0, 4.0, 4.25], [0.0, 1, 1, 1, 0]),   # window 0 <= u <= 4
    (True, "nearest", [-4.25, -4.0, -0.5, 4.0, 4.25], [0.0, 1, 1, 1, 0]),  # window |u| <= 4
    (True, "floor", [-4.5, -4.0, 0.25, 4.0, 4.5], [0.0, 1, 1, 1, 0]),      # window |u| <= 4
])
def test_straight_through_gradient_of_train_and_quantizer(signed, rounding, x, expected):
    w = torch.tensor([1.0, 2.0, 3.0, 4.0, 5.0])
    xs = [torch.tensor(x, requires_grad=True) for _ in range(2)]
    node = GIFNode(levels=3, signed=signed, rounding=rounding)
    (node.decompose(xs[0], 2).sum(0) * w).sum().backward()
    (gif_quantize(xs[1], 3, 2, signed, rounding) * w).sum().backward()
    assert torch.equal(xs[0].grad, w * torch.tensor(expected))
    assert torch.equal(xs[1].grad, xs[0].grad)


def test_single_step_mode_matches_multi_step_and_reset_net():
    x_seq = 3 * torch.randn(4, 2, 5)
    multi = GIFNode(levels=3, signed=True)
    single = GIFNode(levels=3, signed=True, step_mode="s")
    s_multi = multi(x_seq)
    s_single = torch.stack([single(x) for x in x_seq])
    assert torch.equal(s_multi, s_single) and torch.equal(multi.v, single.v)
    functional.reset_net(multi)
    assert multi.t == 0 and multi.v == 0.0 and multi.spike_counts is None


def test_registry_and_spec_round_trip():
    assert neuron_zoo.list_neurons()["gif"] == {
        "levels": 2, "v_threshold": 1.0, "signed": False, "rounding": "floor", "step_mode": "m"}
    node = build_neuron("gif(levels=4, signed=True)")
    assert isinstance(node, GIFNode) and (node.levels, node.signed) == (4, True)
    assert neuron_spec(node) == "gif(levels=4, signed=True)"
    assert node.firing_rate is None
    node.decompose(torch.tensor([0.0, 5.0]), 2)
    assert node.firing_rate.item() == 0.5  # 2 of 4 (step, element) pairs fired


@pytest.mark.parametrize("kwargs, error, match", [
    ({"levels": 1}, ValueError, "levels=1 is out of range"),
    ({"levels": 2.0}, TypeError, "levels=2.0 must be an int"),
    ({"v_threshold": 0.0}, ValueError, "v_threshold=0.0 is out of range"),
    ({"signed": 1}, TypeError, "signed=1 must be a bool"),
    ({"rounding": "round"}, ValueError, "rounding='round' is not accepted; choose one of 'floor', 'nearest'"),
    ({"step_mode": "x"}, ValueError, "step_mode='x' is not accepted"),
])
def test_bad_arguments(kwargs, error, match):
    with pytest.raises(error, match=match):
        GIFNode(**kwargs)


def test_bad_inputs_and_step_counts():
    node = GIFNode()
    with pytest.raises(TypeError, match="input dtype torch.int64 is not accepted"):
        node(torch.ones(2, 3, dtype=torch.long))
    with pytest.raises(ValueError, match="steps=0 is out of range"):
        node.decompose(torch.ones(3), 0)
    with pytest.raises(TypeError, match="1-D integer tensor"):
        node.set_channel_steps(torch.ones(3))
    with pytest.raises(ValueError, match="must be >= 0"):
        node.set_channel_steps(torch.tensor([1, -1]))
    node.set_channel_steps(torch.tensor([1, 2]))
    with pytest.raises(ValueError, match="channel_steps for 2 channels but the input's last dimension is 3"):
        node.decompose(torch.ones(3), 2)
    with pytest.raises(ValueError, match="steps has 2 channels"):
        gif_quantize(torch.ones(3), 2, torch.tensor([1, 2]))
    with pytest.raises(ValueError, match="steps=0 is out of range"):
        gif_quantize(torch.ones(3), 2, 0)
    node.reset()
    node.set_channel_steps(None)
    node(torch.ones(1, 3))
    with pytest.raises(RuntimeError, match="call reset"):
        node(torch.ones(1, 4))
