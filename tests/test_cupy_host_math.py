"""backend='cupy' on the CPU: the fused autograd Function and the node's dispatch run with the
CUDA kernels' per-element math (neuron_zoo/cuda/amplitude_node.cuh, compiled by g++ into a host
harness) in place of the CUDA launches, against the torch backend. Spikes, final membranes,
spike counts and input gradients must be identical; the learnable-alpha gradient equal up to
summation order (1e-6 relative). Skips when g++ is missing."""
import pytest
import torch
from fused_twins import ALPHA, assert_alpha_grad_close, calibrated_state, compare, tie_inputs, twins

from neuron_zoo import ElasticBiNode, STELIFNode, TernaryFixedNode, valid_mask

RESETS = ("reference", "hard", "soft")
STEPS = (1, 2, 3, 4, 8)


@pytest.mark.parametrize("steps", STEPS)
@pytest.mark.parametrize("alpha", ["calibrated", "learnable"])
@pytest.mark.parametrize("bidirectional", [True, False])
@pytest.mark.parametrize("reset", RESETS)
def test_cupy_elastic_bi_matches_torch_backend(launches, reset, bidirectional, alpha, steps):
    for threshold_scale in (0.5, 1.0, 1.5):
        for decay in (0.25, 0.0):
            ref, fused = twins(ElasticBiNode, ALPHA[:steps], reset=reset, bidirectional=bidirectional,
                               alpha=alpha, threshold_scale=threshold_scale, decay=decay)
            x = tie_inputs((steps, 3, 5, 7), decay, threshold_scale * ALPHA, ALPHA)
            compare(ref, fused, x)
    backward = "nz_backward_lsq" if alpha == "learnable" else "nz_backward"
    assert launches[-1].calls == ["nz_forward", backward]


@pytest.mark.parametrize("steps", STEPS)
@pytest.mark.parametrize("cls, kwargs", [
    (STELIFNode, dict(decay=0.25)), (STELIFNode, dict(decay=0.0, v_threshold=0.3)),
    (TernaryFixedNode, dict(decay=0.25)), (TernaryFixedNode, dict(decay=0.0, v_threshold=0.7)),
    (TernaryFixedNode, dict(reset="hard", v_threshold=1.0)), (TernaryFixedNode, dict(reset="soft")),
])
def test_cupy_unit_amplitude_neurons_match_torch_backend(launches, cls, kwargs, steps):
    ref, fused = twins(cls, **kwargs)
    threshold = torch.full((steps,), ref.threshold_scale)
    compare(ref, fused, tie_inputs((steps, 3, 5, 7), ref.decay, threshold, torch.ones(steps)))
    assert launches[-1].calls == ["nz_forward", "nz_backward"]


@pytest.mark.parametrize("alpha", ["calibrated", "learnable"])
@pytest.mark.parametrize("reset", RESETS)
def test_cupy_bfloat16_input_matches_torch_backend(launches, reset, alpha):
    for steps in (1, 4):
        ref, fused = twins(ElasticBiNode, ALPHA[:steps], reset=reset, alpha=alpha)
        compare(ref, fused, tie_inputs((steps, 3, 5, 7), 0.0, 0.5 * ALPHA, ALPHA, dtype=torch.bfloat16))


def test_cupy_bfloat16_conversion_matches_torch(harness):
    tiny = torch.finfo(torch.float32).tiny
    special = [0.0, -0.0, 1.0, -1.0, 1.00390625, 1.01171875, 1.0 + 2 ** -8, 1.0 + 3 * 2 ** -8,
               3.4e38, -3.4e38, float("inf"), -float("inf"), tiny, tiny / 3, 1e-40, 65504.0]
    x = torch.cat([torch.tensor(special), torch.randn(4096) * 10.0 ** torch.randint(-30, 30, (4096,))])
    bits = torch.empty(x.shape, dtype=torch.int16)
    harness.nz_to_bf16(x.data_ptr(), bits.data_ptr(), x.numel())
    assert torch.equal(bits, x.to(torch.bfloat16).view(torch.int16))
    back = torch.empty_like(x)
    harness.nz_from_bf16(bits.data_ptr(), back.data_ptr(), x.numel())
    assert torch.equal(back, bits.view(torch.bfloat16).float())


@pytest.mark.parametrize("alpha", ["calibrated", "learnable"])
def test_cupy_continues_membrane_without_reset(launches, alpha):
    steps = 3
    ref, fused = twins(ElasticBiNode, ALPHA[:2 * steps], alpha=alpha, decay=0.5)
    g = torch.Generator().manual_seed(2)
    x1, x2, g1, g2 = (torch.randn(steps, 4, 6, generator=g) for _ in range(4))
    grads = []
    for node in (ref, fused):
        a, b = x1.clone().requires_grad_(True), x2.clone().requires_grad_(True)
        s1, s2 = node(a), node(b)  # no reset: the second call starts at step 3 from v[2]
        ((s1 * g1).sum() + (s2 * g2).sum()).backward()
        grads.append((s1, s2, a.grad, b.grad))
    for got, want in zip(grads[1], grads[0]):
        assert torch.equal(got, want)
    assert fused.t == 2 * steps and torch.equal(fused.v, ref.v)
    if alpha == "learnable":
        assert_alpha_grad_close(fused, ref, torch.cat([g1, g2]))
    assert [c for k in launches for c in k.calls].count("nz_forward") == 2


def test_cupy_first_batch_calibrates_on_torch_path_then_fuses(launches):
    ref, fused = twins(ElasticBiNode, k=3.0, decay=0.25)
    g = torch.Generator().manual_seed(3)
    x1, x2, gs = (torch.randn(4, 5, 8, generator=g) for _ in range(3))
    for node in (ref, fused):
        node(x1)  # training mode, alpha empty: calibrates on the torch path
        node.reset()
    assert torch.equal(fused.alpha, ref.alpha) and launches == []  # no fused call yet
    compare(ref, fused, x2)
    assert launches[-1].calls == ["nz_forward", "nz_backward"]


def test_cupy_gradient_flows_into_fused_call_from_a_later_torch_call(launches):
    steps = 2
    ref, fused = twins(ElasticBiNode, ALPHA[:steps], T=2 * steps, decay=0.5)  # steps 2, 3 still to calibrate
    g = torch.Generator().manual_seed(4)
    x1, x2 = (torch.randn(steps, 3, 4, generator=g) for _ in range(2))
    grads = []
    for node in (ref, fused):
        a, b = x1.clone().requires_grad_(True), x2.clone().requires_grad_(True)
        node(a)  # its spikes are not used: only the membrane it hands on carries gradient
        node(b).square().sum().backward()
        grads.append((a.grad, b.grad))
    assert torch.equal(fused.alpha, ref.alpha) and fused.calibrated_steps == 2 * steps
    assert torch.equal(grads[1][0], grads[0][0]) and torch.equal(grads[1][1], grads[0][1])
    assert grads[1][0].abs().sum() > 0  # reached x1 through the membrane handed to the torch path
    assert [c for k in launches for c in k.calls] == ["nz_forward", "nz_backward"]


def test_cupy_non_contiguous_input(launches):
    ref, fused = twins(ElasticBiNode, ALPHA[:4], alpha="learnable")
    x = torch.randn(5, 7, 4, generator=torch.Generator().manual_seed(5)).permute(2, 1, 0)
    assert not x.is_contiguous()
    compare(ref, fused, x)


def test_cupy_masked_statistics_fall_back_to_torch_reduction(launches):
    ref, fused = twins(ElasticBiNode, ALPHA[:2])
    x = torch.randn(2, 3, 4, 5, generator=torch.Generator().manual_seed(6))
    mask = torch.tensor([[True, False, True, True]] * 3)
    for node in (ref, fused):
        with valid_mask(node, mask):
            node(x)
    assert torch.equal(fused.spike_counts, ref.spike_counts)
    assert float(fused.spike_counts.sum()) == 2 * 9 * 5


def test_cupy_saves_code_or_input_not_membranes(launches):
    steps, n = 3, 4 * 6
    node = ElasticBiNode(T=steps)
    node.backend = "cupy"
    node.load_state_dict(calibrated_state(ALPHA[:steps]))
    x = torch.randn(steps, 4, 6, requires_grad=True)
    code, amp = node(x).grad_fn.saved_tensors
    assert code.dtype == torch.uint8 and code.shape == ((steps + 1) // 2, n) and amp.shape == (steps,)
    learnable = ElasticBiNode(alpha="learnable", T=steps)
    learnable.backend = "cupy"
    learnable.load_state_dict(calibrated_state(ALPHA[:steps]))
    saved_x, amp, thr, v0 = learnable(x).grad_fn.saved_tensors
    assert saved_x.data_ptr() == x.data_ptr() and amp.shape == thr.shape == (steps,) and v0 is None
    node.reset()
    with torch.no_grad():
        assert node(x).grad_fn is None
