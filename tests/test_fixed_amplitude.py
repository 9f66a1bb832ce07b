"""STE-LIF (App. A.1, Eq. 19-20) and the fixed-threshold ternary neuron (Eq. 8)."""
import torch

from neuron_zoo import STELIFNode, TernaryFixedNode


def test_ste_lif_hard_reset_and_clip_gradient_by_hand():
    node = STELIFNode(decay=0.25, v_threshold=1.0)
    x = torch.tensor([[0.8], [0.8], [0.8]], requires_grad=True)
    s = node(x)
    # m0 = 0.8 (no spike); m1 = 0.25*0.8 + 0.8 = 1.0 -> spike, reset to 0; m2 = 0.8
    torch.testing.assert_close(s, torch.tensor([[0.0], [1.0], [0.0]]))
    (s * torch.tensor([[1.0], [2.0], [3.0]])).sum().backward()
    # dL/dx2 = 3; dL/dx1 = 2 (nothing flows back through the reset after a spike);
    # dL/dx0 = 1 + 0.25 * 2 = 1.5 (0 <= m <= 1 everywhere)
    torch.testing.assert_close(x.grad, torch.tensor([[1.5], [2.0], [3.0]]))


def test_ste_lif_gradient_zero_outside_zero_one():
    node = STELIFNode(decay=0.0)
    x = torch.tensor([[1.5, -0.2, 0.3, 1.0, 0.0]], requires_grad=True)
    s = node(x)
    torch.testing.assert_close(s, torch.tensor([[1.0, 0, 0, 1, 0]]))
    s.sum().backward()
    torch.testing.assert_close(x.grad, torch.tensor([[0.0, 0, 1, 1, 1]]))


def test_ternary_fixed_threshold_by_hand():
    node = TernaryFixedNode(decay=0.0)
    x = torch.tensor([[0.5, 0.49, -0.5, -0.49, 2.0]])
    torch.testing.assert_close(node(x), torch.tensor([[1.0, 0, -1, 0, 1]]))
    node = TernaryFixedNode(decay=0.25, v_threshold=1.0)
    # reference reset at a = 1: m1 = 0.25 * m0 * (1 - s0) + x1
    s = node(torch.tensor([[-1.2], [-0.5]]))
    # s0 = -1, v0 = -1.2 * 2 = -2.4, m1 = -0.6 - 0.5 = -1.1 -> -1
    torch.testing.assert_close(s, torch.tensor([[-1.0], [-1.0]]))
