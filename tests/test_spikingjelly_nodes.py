"""SpikingJelly's own LIF and PSN as zoo members."""
import pytest
import torch
from spikingjelly.activation_based import functional, neuron, surrogate

from neuron_zoo import PSN, LIFNode


def test_lif_is_spikingjelly_lif_with_atan():
    node = LIFNode(tau=2.0)
    ref = neuron.LIFNode(tau=2.0, surrogate_function=surrogate.ATan(), step_mode="m")
    x = torch.rand(4, 3, 5) * 3
    torch.testing.assert_close(node(x), ref(x))
    assert isinstance(node.surrogate_function, surrogate.ATan)


def test_lif_state_cleared_by_reset_net():
    node = LIFNode()
    x = torch.rand(4, 3, 5) * 3
    first = node(x)
    functional.reset_net(node)
    torch.testing.assert_close(node(x), first)
    with pytest.raises(ValueError, match="tau"):
        LIFNode(tau=1.0)


def test_psn_checks_T():
    node = PSN(T=3)
    assert node(torch.randn(3, 2, 4)).shape == (3, 2, 4)
    with pytest.raises(ValueError, match=r"PSN\(T=3\)"):
        node(torch.randn(4, 2, 4))
    with pytest.raises(ValueError, match="T=0"):
        PSN(T=0)
