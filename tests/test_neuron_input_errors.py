"""Bad input and bad specs get clear errors naming the neuron, never a silent coercion: non-floating
input (integers were spiked back into their integer dtype), T=0, PSN fed a dtype other than its
weights', a spec repeating an argument."""
import pytest
import torch

from neuron_zoo import PSN, build_neuron
from sj_spikelm import SpikeLMConfig

SPECS = ["elastic_bi(k=0.5)", "ste_lif", "ternary_fixed", "lif", "psn(T=2)", "ann"]


@pytest.mark.parametrize("spec", SPECS)
@pytest.mark.parametrize("dtype", [torch.int64, torch.int32, torch.bool, torch.complex64])
def test_non_floating_input_is_refused_naming_neuron_and_dtypes(spec, dtype):
    x = (torch.randn(2, 3, 4) * 3).to(dtype)
    name = spec.split("(")[0]
    with pytest.raises(TypeError, match=rf"{name}.*input dtype {dtype} is not accepted; accepted dtypes: "
                                        r"float16, bfloat16, float32, float64"):
        build_neuron(spec)(x)


@pytest.mark.parametrize("spec", ["elastic_bi(k=0.5, T=2)", "ste_lif", "lif", "ann"])
def test_non_floating_single_step_input_is_refused(spec):
    node = build_neuron(spec)
    node.step_mode = "s"
    with pytest.raises(TypeError, match="input dtype torch.int64 is not accepted"):
        node(torch.tensor([3, 1]))


@pytest.mark.parametrize("spec", SPECS)
def test_zero_time_steps_is_refused(spec):
    with pytest.raises(ValueError, match=r"multi-step input has T=0 time steps \(shape \(0, 3, 4\)\); "
                                         r"accepted: T >= 1"):
        build_neuron(spec)(torch.randn(0, 3, 4))


def test_every_floating_dtype_runs_and_keeps_its_dtype():
    for spec in ["elastic_bi", "ste_lif", "lif", "ann"]:
        for dtype in (torch.float16, torch.bfloat16, torch.float64):
            assert build_neuron(spec)(torch.randn(2, 3).to(dtype)).dtype == dtype


def test_psn_needs_its_weight_dtype_or_autocast():
    node = PSN(T=2)
    x = torch.randn(2, 3, 4, generator=torch.Generator().manual_seed(0))
    for dtype in (torch.bfloat16, torch.float64):
        with pytest.raises(TypeError, match=rf"psn\(T=2\): input dtype {dtype} differs from its weight dtype "
                                            r"torch.float32; convert the model"):
            node(x.to(dtype))
    double = PSN(T=2).double()
    double.load_state_dict(node.state_dict())  # converted model: float64 input, float64 math
    torch.testing.assert_close(double(x.double()), node(x).double())
    with torch.autocast("cpu", dtype=torch.bfloat16):
        assert node(x.bfloat16()).dtype == torch.bfloat16


def test_spec_repeating_an_argument_is_refused():
    with pytest.raises(ValueError, match=r"argument 'k' is given twice in neuron spec 'elastic_bi\(k=3, k="):
        build_neuron("elastic_bi(k=3, k=4)")
    with pytest.raises(ValueError, match="given twice"):
        SpikeLMConfig(neuron="ste_lif(decay=0.1, decay=0.2)")


def test_construction_refuses_T_zero():
    with pytest.raises(ValueError, match="T=0"):
        build_neuron("elastic_bi(T=0)")
    with pytest.raises(ValueError, match="T=0"):
        build_neuron("psn(T=0)")
