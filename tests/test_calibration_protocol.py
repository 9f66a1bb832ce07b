"""The CalibratedNeuron protocol on the elastic neuron: fixed [T] state and calibrated flags,
in-place (re)calibration an optimizer survives, refused statistics (NaN, +-inf, zeros, no valid
element) that leave the step uncalibrated, and checked loads."""
import pytest
import torch

from neuron_zoo import (
    CalibrationError,
    ElasticBiNode,
    calibration_report,
    needs_calibration,
    valid_mask,
)

close = dict(rtol=0, atol=1e-6)


def test_state_has_its_final_shape_from_construction():
    node = ElasticBiNode(T=3)
    assert node.alpha.shape == (3,) and node.calibrated.dtype == torch.bool
    assert node.calibrated.tolist() == [False] * 3 and node.calibrated_steps == 0 and not node.is_calibrated
    assert set(node.state_dict()) == {"alpha", "calibrated"}
    learnable = ElasticBiNode(alpha="learnable", T=3)
    assert [n for n, _ in learnable.named_parameters()] == ["alpha"] and learnable.alpha.shape == (3,)
    with pytest.raises(ValueError, match="learnable alpha needs T"):
        ElasticBiNode(alpha="learnable")


def test_unsized_neuron_is_sized_once_by_its_first_calibrating_input():
    node = ElasticBiNode(k=2.0, decay=0.0)
    assert node.T is None and node.alpha.shape == (0,)
    with pytest.raises(RuntimeError, match="not calibrated"):
        node.eval()(torch.ones(3, 2))
    node.train()(torch.tensor([[1.0, -1.0], [2.0, 2.0], [0.5, -0.5]]))
    assert node.T == 3 and node.is_calibrated
    torch.testing.assert_close(node.alpha, torch.tensor([2.0, 4.0, 1.0]), **close)
    node.reset()
    with pytest.raises(ValueError, match="time step 3 is beyond T=3"):
        node(torch.ones(4, 2))
    with pytest.raises(ValueError, match="single-step mode needs T"):
        ElasticBiNode(step_mode="s")(torch.ones(2))


def test_calibrate_writes_in_place_so_an_earlier_optimizer_keeps_working():
    node = ElasticBiNode(alpha="learnable", T=2, decay=0.0)
    alpha = node.alpha
    optimizer = torch.optim.SGD(node.parameters(), lr=0.1)
    node.calibrate(torch.tensor([[1.0, -3.0], [0.5, 0.5]]))
    assert node.alpha is alpha and node.is_calibrated
    torch.testing.assert_close(alpha.detach(), torch.tensor([4.0, 1.0]), **close)
    node(torch.tensor([[3.0, -1.0], [0.8, 0.1]], requires_grad=True)).sum().backward()
    assert alpha.grad.shape == (2,) and alpha.grad.abs().sum() > 0
    before = alpha.detach().clone()
    optimizer.step()
    assert not torch.equal(alpha.detach(), before)


def test_learnable_alpha_of_the_first_training_batch_gets_a_T_shaped_gradient():
    node = ElasticBiNode(alpha="learnable", T=3)
    x = torch.randn(3, 4, 5, generator=torch.Generator().manual_seed(0), requires_grad=True)
    node(x).square().sum().backward()  # calibrates each step on the way, then uses it
    assert node.is_calibrated and node.alpha.grad.shape == (3,) and (node.alpha.grad != 0).all()


@pytest.mark.parametrize("T", [2, None])
def test_calibrated_under_inference_mode_still_trains(T):
    alpha = "learnable" if T else "calibrated"
    node = ElasticBiNode(alpha=alpha, T=T)
    x = torch.randn(2, 4, 5, generator=torch.Generator().manual_seed(1))
    with torch.inference_mode():
        node.calibrate(x)
    assert node.is_calibrated and not node.alpha.is_inference() and not node.calibrated.is_inference()
    xg = x.clone().requires_grad_()
    node(xg).square().sum().backward()
    assert xg.grad is not None
    if T:
        assert node.alpha.grad.shape == (2,) and node.alpha.grad.abs().sum() > 0
    node.clear_calibration()
    node.reset()
    node(x)  # recalibrates outside inference mode: the tensors were never inference tensors
    assert node.is_calibrated


def test_clear_calibration_resets_in_place_and_the_next_batch_recalibrates():
    node = ElasticBiNode(k=2.0, decay=0.0, T=1)
    node.calibrate(torch.tensor([[1.0, -3.0]]))
    alpha = node.alpha
    node.clear_calibration()
    assert node.alpha is alpha and alpha.tolist() == [0.0] and not node.is_calibrated
    with pytest.raises(CalibrationError, match="time step 0 is not calibrated"):
        node.eval()(torch.ones(1, 2))
    node.train()(torch.tensor([[2.0, 2.0]]))
    torch.testing.assert_close(node.alpha, torch.tensor([4.0]), **close)


@pytest.mark.parametrize("bad", [float("nan"), float("inf"), -float("inf")])
def test_non_finite_first_batch_is_refused_and_the_next_batch_calibrates(bad):
    node = ElasticBiNode(k=2.0, T=2)
    x = torch.randn(2, 3, 4, generator=torch.Generator().manual_seed(2))
    poisoned = x.clone()
    poisoned[0, 1, 2] = bad
    with pytest.raises(CalibrationError, match=r"elastic_bi\(T=2\): refusing to calibrate time step 0: "
                                               r"the statistic .* is not finite"):
        node(poisoned)
    assert node.calibrated_steps == 0 and node.alpha.tolist() == [0.0, 0.0]
    node.reset()
    s = node(x)
    assert node.is_calibrated and torch.isfinite(node.alpha).all() and torch.isfinite(s).all()
    reference = ElasticBiNode(k=2.0, T=2)
    reference(x)
    assert torch.equal(node.alpha, reference.alpha)


def test_a_refused_later_step_keeps_the_earlier_ones():
    node = ElasticBiNode(k=2.0, decay=0.0, T=2)
    with pytest.raises(CalibrationError, match="time step 1"):
        node(torch.tensor([[1.0, -1.0], [float("nan"), 1.0]]))
    assert node.calibrated.tolist() == [True, False]
    node.reset()
    node(torch.tensor([[5.0, 5.0], [3.0, -3.0]]))  # step 0 frozen, step 1 calibrates now
    torch.testing.assert_close(node.alpha, torch.tensor([2.0, 6.0]), **close)


def test_all_zero_step_is_refused():
    with pytest.raises(CalibrationError, match="not finite and positive"):
        ElasticBiNode(T=1)(torch.zeros(1, 4))


@pytest.mark.parametrize("case", ["empty batch", "all-False mask", "all padding"])
def test_no_valid_element_is_refused_not_frozen_at_zero(case):
    node = ElasticBiNode(k=2.0, T=2)
    x = torch.randn(2, 3, 4, generator=torch.Generator().manual_seed(3))
    with pytest.raises(CalibrationError, match="time step 0: the batch has no valid element"):
        if case == "empty batch":
            node(torch.empty(2, 0, 4))
        elif case == "all-False mask":
            node.calibrate(x, mask=torch.zeros(3, dtype=torch.bool))
        else:
            with valid_mask(node, torch.zeros(3, dtype=torch.bool)):
                node(x)
    assert node.calibrated_steps == 0
    node.reset()
    node(x)
    assert node.is_calibrated and (node.alpha > 0.1).all()


def test_refusal_inside_a_model_names_the_module(tiny_config, batch):
    from sj_spikelm import SpikeLMModel

    model = SpikeLMModel(tiny_config())
    padding = {**batch, "attention_mask": torch.zeros_like(batch["attention_mask"])}
    name = r"elastic_bi\(T=2\) at encoder\.layer\.0\.attention\.self\.query\.neuron"
    with pytest.raises(CalibrationError, match=name + ": refusing to calibrate time step 0: the batch has"):
        model.calibrate(**padding)
    assert needs_calibration(model) and all(n == (0, 2) for n in calibration_report(model).values())
    model.calibrate(**batch)
    assert not needs_calibration(model)


def test_needs_calibration_and_report_over_a_module():
    model = torch.nn.Sequential(torch.nn.Linear(2, 2), ElasticBiNode(T=2), ElasticBiNode(), torch.nn.ReLU())
    assert needs_calibration(model) and calibration_report(model) == {"1": (0, 2), "2": (0, None)}
    model[1].train()(torch.randn(1, 3, 2))
    assert calibration_report(model) == {"1": (1, 2), "2": (0, None)}
    model[1].reset()
    model[1:3](torch.randn(2, 3, 2))
    assert not needs_calibration(model) and calibration_report(model) == {"1": (2, 2), "2": (2, 2)}
    assert not needs_calibration(torch.nn.Linear(2, 2))


@pytest.mark.parametrize("value, what", [(float("nan"), "nan"), (-1.0, "negative"), (0.0, "zero")])
def test_load_refuses_bad_alpha_at_a_calibrated_step_naming_the_key(value, what):
    node = ElasticBiNode(T=2)
    bad = {"alpha": torch.tensor([1.0, value]), "calibrated": torch.tensor([True, True])}
    with pytest.raises(CalibrationError, match=r"alpha holds a non-finite or non-positive value at time "
                                               r"step\(s\) \[1\]"):
        node.load_state_dict(bad)
    assert node.calibrated_steps == 0
    wrapped = torch.nn.Sequential(torch.nn.Linear(2, 2), ElasticBiNode(T=2))
    state = {**wrapped.state_dict(), "1.alpha": bad["alpha"], "1.calibrated": bad["calibrated"]}
    with pytest.raises(CalibrationError, match=r"1\.alpha holds"):
        wrapped.load_state_dict(state)
    legacy = {"alpha": bad["alpha"]}  # no flags: the bad step simply counts as uncalibrated
    node.load_state_dict(legacy)
    assert node.calibrated.tolist() == [True, False]


def test_load_refuses_another_T_naming_both_shapes():
    source = ElasticBiNode(T=3)
    source.calibrate(torch.randn(3, 4))
    with pytest.raises(RuntimeError, match=r"alpha has shape \(3,\) in the checkpoint \(3 time steps\) but "
                                           r"shape \(2,\) here \(T=2\); build the model with T=3"):
        ElasticBiNode(T=2).load_state_dict(source.state_dict())
    unsized = ElasticBiNode()
    unsized.load_state_dict(source.state_dict())  # an unsized neuron takes the checkpoint's T
    assert unsized.T == 3 and torch.equal(unsized.alpha, source.alpha) and unsized.is_calibrated


def test_checkpoints_from_before_the_flags_load():
    node = ElasticBiNode(T=2)
    node.load_state_dict({"alpha": torch.tensor([1.5, 0.5])})  # calibrated, growing-alpha version
    assert node.is_calibrated
    node.load_state_dict({"alpha": torch.empty(0)})  # saved before calibration
    assert node.calibrated_steps == 0 and node.alpha.tolist() == [0.0, 0.0]


def test_trained_learnable_alpha_below_zero_still_loads():
    """Training may push a learnable alpha through 0 (its amplitude is then 1e-5): the checkpoint
    of that run must load; a NaN one must not."""
    node = ElasticBiNode(alpha="learnable", T=2)
    node.load_state_dict({"alpha": torch.tensor([1.0, -0.5]), "calibrated": torch.tensor([True, True])})
    assert node.is_calibrated and node.alpha.tolist() == [1.0, -0.5]
    s = node.eval()(torch.tensor([[0.0], [1e-5]]))
    torch.testing.assert_close(s, torch.tensor([[0.0], [1e-5]]), rtol=0, atol=0)
    flags = torch.tensor([True, True])
    with pytest.raises(CalibrationError, match=r"\[1\]"):
        node.load_state_dict({"alpha": torch.tensor([1.0, float("nan")]), "calibrated": flags})
