"""Elastic bi-spike neuron: every equation on small hand-computed tensors."""
import pytest
import torch

from neuron_zoo import ElasticBiNode

close = dict(rtol=0, atol=1e-6)


def two_steps(x0, x1):
    return torch.tensor([x0, x1])


X0 = [1.0, -1.0, 0.2, -0.2]
# m0 = x0, mean|m0| = 0.6 -> alpha0 = 2 * 0.6 = 1.2, threshold 0.6 -> s0 = [1.2, -1.2, 0, 0]


def test_reference_reset_two_steps():
    node = ElasticBiNode(k=2.0, decay=0.25)
    s = node(two_steps(X0, [0.3, -0.9, -0.5, 0.4]))
    # v0 = m0 * (alpha0 - s0) = [0, -2.4, 0.24, -0.24]
    # m1 = 0.25 v0 + x1 = [0.3, -1.5, -0.44, 0.34]; mean|m1| = 0.645 -> alpha1 = 1.29
    torch.testing.assert_close(node.alpha, torch.tensor([1.2, 1.29]), **close)
    torch.testing.assert_close(s, torch.tensor([[1.2, -1.2, 0, 0], [0, -1.29, 0, 0]]), **close)


def test_hard_reset_two_steps():
    node = ElasticBiNode(k=2.0, decay=0.25, reset="hard")
    s = node(two_steps(X0, [0.3, -0.9, -0.5, 0.4]))
    # v0 = m0 where s0 == 0 else 0 = [0, 0, 0.2, -0.2]
    # m1 = [0.3, -0.9, -0.45, 0.35]; mean|m1| = 0.5 -> alpha1 = 1.0, threshold 0.5
    torch.testing.assert_close(node.alpha, torch.tensor([1.2, 1.0]), **close)
    torch.testing.assert_close(s, torch.tensor([[1.2, -1.2, 0, 0], [0, -1.0, 0, 0]]), **close)


def test_soft_reset_two_steps():
    node = ElasticBiNode(k=2.0, decay=0.25, reset="soft")
    s = node(two_steps(X0, [0.3, -0.9, -0.5, 0.4]))
    # v0 = m0 - s0 = [-0.2, 0.2, 0.2, -0.2]
    # m1 = [0.25, -0.85, -0.45, 0.35]; mean|m1| = 0.475 -> alpha1 = 0.95, threshold 0.475
    torch.testing.assert_close(node.alpha, torch.tensor([1.2, 0.95]), **close)
    torch.testing.assert_close(s, torch.tensor([[1.2, -1.2, 0, 0], [0, -0.95, 0, 0]]), **close)


def calibrated(alpha, **kwargs):
    node = ElasticBiNode(T=len(alpha), **kwargs)
    flags = torch.ones(len(alpha), dtype=torch.bool)
    node.load_state_dict({"alpha": torch.tensor(alpha), "calibrated": flags})
    return node.eval()


def test_threshold_scale_half_vs_one():
    x = torch.tensor([[0.49, 0.5, 0.99, 1.0, -0.6, -1.0]])
    half = calibrated([1.0], threshold_scale=0.5)(x)
    one = calibrated([1.0], threshold_scale=1.0)(x)
    torch.testing.assert_close(half, torch.tensor([[0.0, 1, 1, 1, -1, -1]]), **close)
    torch.testing.assert_close(one, torch.tensor([[0.0, 0, 0, 1, 0, -1]]), **close)


def test_unidirectional_emits_only_positive_spikes():
    node = calibrated([2.0], bidirectional=False)
    s = node(torch.tensor([[1.5, 0.9, -1.5, -3.0]]))
    torch.testing.assert_close(s, torch.tensor([[2.0, 0, 0, 0]]), **close)


def test_decay_zero_carries_no_membrane():
    node = calibrated([1.0, 1.0, 1.0], decay=0.0)
    x = torch.tensor([[0.4], [0.4], [-0.7]])
    # with decay 0, m[t] = x[t] at every step
    torch.testing.assert_close(node(x), torch.tensor([[0.0], [0.0], [-1.0]]), **close)
    carry = calibrated([1.0, 1.0, 1.0], decay=0.25, reset="soft")
    # soft reset: m1 = 0.25 * 0.4 + 0.4 = 0.5 -> fires
    torch.testing.assert_close(carry(x)[1], torch.tensor([1.0]), **close)


def test_calibration_is_k_times_mean_abs_and_then_frozen():
    for k in (2.0, 3.0, 4.0):
        node = ElasticBiNode(k=k, decay=0.0)
        x = torch.tensor([[[1.0, -3.0]], [[0.5, 0.5]]])
        node(x)
        torch.testing.assert_close(node.alpha, torch.tensor([2.0 * k, 0.5 * k]), **close)
        node.reset()
        node(10 * x)  # a later training batch must not move alpha
        torch.testing.assert_close(node.alpha, torch.tensor([2.0 * k, 0.5 * k]), **close)


def test_calibration_ignores_masked_positions():
    from neuron_zoo import valid_mask

    node = ElasticBiNode(k=2.0)
    x = torch.tensor([[[[1.0, -1.0], [100.0, 100.0]]]])  # [T=1, B=1, L=2, D=2]
    with valid_mask(node, torch.tensor([[True, False]])):
        node(x)
    torch.testing.assert_close(node.alpha, torch.tensor([2.0]), **close)
    node2 = ElasticBiNode(k=2.0)
    node2.calibrate(x, mask=torch.tensor([[True, False]]))
    torch.testing.assert_close(node2.alpha, torch.tensor([2.0]), **close)
    with pytest.raises(ValueError, match="does not match"):
        node2.calibrate(x, mask=torch.tensor([True, False]))


def test_calibrate_method_works_in_eval_and_resets():
    node = ElasticBiNode(k=3.0).eval()
    assert node.calibrate(torch.tensor([[2.0, -4.0]])) is node
    torch.testing.assert_close(node.alpha, torch.tensor([9.0]), **close)
    assert node.spike_counts is None and not isinstance(node.v, torch.Tensor)
    assert node.is_calibrated and not node.training


def test_uncalibrated_eval_is_an_error():
    node = ElasticBiNode().eval()
    with pytest.raises(RuntimeError, match="calibrate"):
        node(torch.randn(2, 3))
    short = calibrated([1.0])
    with pytest.raises(ValueError, match="time step 1 is beyond T=1"):
        short(torch.randn(2, 3))
    half = ElasticBiNode(T=2)
    half.calibrate(torch.ones(2, 3))
    half.clear_calibration()
    half.train()(torch.ones(1, 3))  # a one-step batch calibrates step 0 only
    half.reset()
    with pytest.raises(RuntimeError, match=r"time step 1 is not calibrated \(1 of 2 steps are\)"):
        half.eval()(torch.ones(2, 3))


def test_state_dict_round_trip_into_fresh_node():
    torch.manual_seed(0)
    node = ElasticBiNode(k=3.0)
    node(torch.randn(4, 8, 16))
    fresh = ElasticBiNode(k=3.0)
    fresh.load_state_dict(node.state_dict())
    assert fresh.alpha.shape == (4,)
    node.eval(), fresh.eval()
    node.reset()
    x = torch.randn(4, 8, 16)
    torch.testing.assert_close(fresh(x), node(x), rtol=0, atol=0)


def test_learnable_alpha_is_a_parameter_saved_in_state_dict():
    node = ElasticBiNode(alpha="learnable", T=3)
    node(torch.randn(3, 5))
    params = dict(node.named_parameters())
    assert list(params) == ["alpha"] and params["alpha"].shape == (3,)
    fresh = ElasticBiNode(alpha="learnable", T=3)
    fresh.load_state_dict(node.state_dict())
    torch.testing.assert_close(fresh.alpha, node.alpha)


def test_single_step_equals_multi_step():
    torch.manual_seed(1)
    x = torch.randn(4, 6, 7)
    for reset in ("reference", "hard", "soft"):
        multi = ElasticBiNode(reset=reset, step_mode="m")
        single = ElasticBiNode(reset=reset, T=4, step_mode="s")
        xm, xs = x.clone().requires_grad_(), x.clone().requires_grad_()
        sm = multi(xm)
        ss = torch.stack([single(xs[t]) for t in range(4)])
        torch.testing.assert_close(ss, sm, rtol=0, atol=0)
        torch.testing.assert_close(single.alpha, multi.alpha, rtol=0, atol=0)
        (sm * torch.arange(7.0)).sum().backward()
        (ss * torch.arange(7.0)).sum().backward()
        torch.testing.assert_close(xs.grad, xm.grad, rtol=0, atol=0)


def test_reset_clears_membrane_between_batches():
    torch.manual_seed(2)
    node = calibrated([1.0, 0.8, 0.9, 1.0, 0.8, 0.9, 1.0, 1.0, 1.0], decay=0.5)
    a, b = torch.randn(3, 4, 5), torch.randn(3, 4, 5)
    node(a)
    node.reset()
    in_a_row = node(b)
    fresh = calibrated([1.0, 0.8, 0.9, 1.0, 0.8, 0.9, 1.0, 1.0, 1.0], decay=0.5)(b)
    torch.testing.assert_close(in_a_row, fresh, rtol=0, atol=0)
    carried = node(b)  # no reset: steps 3..5 continue from the membrane left by b
    assert not torch.equal(carried, fresh)
    with pytest.raises(RuntimeError, match="reset"):
        node(torch.randn(3, 2, 5))


def test_half_precision_input_keeps_float32_membrane():
    torch.manual_seed(3)
    x = torch.randn(4, 8, 8).to(torch.bfloat16)
    node16 = ElasticBiNode()
    s16 = node16(x)
    s32 = ElasticBiNode()(x.float())
    assert s16.dtype == torch.bfloat16 and node16.v.dtype == torch.float32
    torch.testing.assert_close(s16, s32.to(torch.bfloat16), rtol=0, atol=0)


@pytest.mark.parametrize("kwargs, match", [
    (dict(k=0.0), "k=0.0"), (dict(decay=1.5), "decay=1.5"), (dict(reset="none"), "reset='none'"),
    (dict(alpha="fixed"), "alpha='fixed'"), (dict(threshold_scale=0), "threshold_scale"),
    (dict(step_mode="x"), "step_mode='x'"), (dict(T=0), "T=0"),
])
def test_bad_arguments_name_the_argument(kwargs, match):
    with pytest.raises(ValueError, match=match):
        ElasticBiNode(**kwargs)


def test_bad_argument_types():
    with pytest.raises(TypeError, match="bidirectional"):
        ElasticBiNode(bidirectional="yes")
    with pytest.raises(TypeError, match="k="):
        ElasticBiNode(k="2")
    with pytest.raises(TypeError, match="backend"):  # a runtime choice (set_backend), not an argument
        ElasticBiNode(backend="torch")
