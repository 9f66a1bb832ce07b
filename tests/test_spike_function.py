"""Straight-through gradients (Eq. 7) and the LSQ alpha gradient against an independent
formulation written with plain autograd."""
import math

import pytest
import torch

from neuron_zoo import ElasticBiNode, straight_through_spike


def test_input_gradient_is_one_inside_the_range_only():
    m = torch.tensor([0.5, 1.5, -0.9, -1.1, 0.1, 1.0, -1.0], requires_grad=True)
    straight_through_spike(m, 1.0, 0.5, True).sum().backward()
    torch.testing.assert_close(m.grad, torch.tensor([1.0, 0, 1, 0, 1, 1, 1]))
    m.grad = None
    straight_through_spike(m, 1.0, 0.5, False).sum().backward()
    torch.testing.assert_close(m.grad, torch.tensor([1.0, 0, 0, 0, 1, 1, 0]))


def test_alpha_gradient_is_lsq_step_size_gradient_by_hand():
    m = torch.tensor([0.3, 0.8, 2.0, -0.6, -3.0])
    a = torch.tensor(1.0, requires_grad=True)
    straight_through_spike(m, a, 0.5, True).sum().backward()
    # q = [0, 1, 1, -1, -1]; inside: q - m/a = [-0.3, 0.2, -, -0.4, -]; above: 1; below: -1
    expected = (-0.3 + 0.2 + 1.0 - 0.4 - 1.0) / math.sqrt(5)
    torch.testing.assert_close(a.grad, torch.tensor(expected))


def lsq_reference(x_seq, alpha, decay, threshold_scale, bidirectional, reset):
    """SpikeLM's recurrence with the LSQ quantiser written as in Esser et al. (2020):
    s = a_hat * ((q - u).detach() + u), u = clamp(m / a_hat, q_n, 1), grad scale on a."""
    q_n = -1.0 if bidirectional else 0.0
    v, out = torch.zeros_like(x_seq[0]), []
    for t in range(x_seq.shape[0]):
        m = decay * v + x_seq[t]
        a = alpha[t]
        g = 1.0 / math.sqrt(m.numel())
        a_hat = (a - a * g).detach() + a * g
        thr = threshold_scale * a.detach()
        q = (m >= thr).double() - ((m <= -thr).double() if bidirectional else 0)
        u = torch.clamp(m / a_hat, q_n, 1.0)
        s = a_hat * ((q.detach() - u).detach() + u)
        out.append(s)
        sd, ad = s.detach(), a.detach()
        v = {"reference": lambda: m * (ad - sd), "hard": lambda: m * (sd == 0),
             "soft": lambda: m - sd}[reset]()
    return torch.stack(out)


@pytest.mark.parametrize("reset", ["reference", "hard", "soft"])
@pytest.mark.parametrize("bidirectional", [True, False])
@pytest.mark.parametrize("threshold_scale", [0.5, 1.0])
def test_gradients_match_lsq_reference(reset, bidirectional, threshold_scale):
    torch.manual_seed(0)
    T = 4
    x = torch.randn(T, 5, 6, dtype=torch.float64)
    alpha0 = torch.tensor([1.1, 0.7, 1.3, 0.9], dtype=torch.float64)
    w = torch.randn(T, 5, 6, dtype=torch.float64)

    node = ElasticBiNode(decay=0.25, threshold_scale=threshold_scale, reset=reset,
                         bidirectional=bidirectional, alpha="learnable", T=T).double()
    node.load_state_dict({"alpha": alpha0, "calibrated": torch.ones(T, dtype=torch.bool)})
    xa = x.clone().requires_grad_()
    s = node(xa)
    (s * w).sum().backward()

    alpha_ref = alpha0.clone().requires_grad_()
    xb = x.clone().requires_grad_()
    s_ref = lsq_reference(xb, alpha_ref, 0.25, threshold_scale, bidirectional, reset)
    (s_ref * w).sum().backward()

    torch.testing.assert_close(s, s_ref, rtol=0, atol=1e-12)
    torch.testing.assert_close(xa.grad, xb.grad, rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(node.alpha.grad, alpha_ref.grad, rtol=1e-10, atol=1e-12)


def test_calibrated_alpha_gets_no_gradient():
    node = ElasticBiNode()
    x = torch.randn(2, 4, requires_grad=True)
    node(x).sum().backward()
    assert node.alpha.grad is None and not node.alpha.requires_grad
