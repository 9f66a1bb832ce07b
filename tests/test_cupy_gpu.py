"""backend='cupy' on a GPU against the torch backend on the same GPU: spikes, final membranes
and spike counts identical; input gradients within 1e-6 relative (fp32) or one unit in the last
place (2^-8 bf16, 2^-11 fp16); learnable-alpha gradients within 1e-6 relative plus summation
order (see fused_twins.assert_alpha_grad_close). Every option, T = 1, 2, 4, 8, random shapes
(vectorized and element-wise paths, many blocks), non-contiguous input, carried membranes, a
side stream, and a small model trained with both backends. Skips without CUDA and CuPy."""
import pytest
import torch
from fused_twins import ALPHA, calibrated_state, compare, tie_inputs, twins
from torch import nn

import neuron_zoo
from neuron_zoo import ElasticBiNode, STELIFNode, TernaryFixedNode, cupy_kernels

DTYPES = (torch.float32, torch.bfloat16, torch.float16)
RESETS = ("reference", "hard", "soft")


@pytest.fixture(scope="module")
def cuda():
    problem = cupy_kernels.cupy_problem()
    if problem is not None:
        pytest.skip(f"needs CUDA and CuPy: {problem}")
    return torch.device("cuda")


def random_shape(steps, seed):
    """[T, B, L, D]: D a multiple of 8 on even seeds (16-byte vector path), odd on odd seeds."""
    g = torch.Generator().manual_seed(seed)
    b, length, d = (int(torch.randint(1, hi, (1,), generator=g)) for hi in (5, 40, 24))
    return (steps, b, length + 1, 8 * d if seed % 2 == 0 else 8 * d + 3)


@pytest.mark.parametrize("steps", (1, 2, 4, 8))
@pytest.mark.parametrize("alpha", ("calibrated", "learnable"))
@pytest.mark.parametrize("bidirectional", (True, False))
@pytest.mark.parametrize("reset", RESETS)
@pytest.mark.parametrize("dtype", DTYPES)
def test_cupy_gpu_elastic_bi_matches_torch_backend(cuda, dtype, reset, bidirectional, alpha, steps):
    for case, (threshold_scale, decay) in enumerate([(0.5, 0.25), (1.0, 0.0), (1.5, 0.25), (0.5, 0.0)]):
        ref, fused = twins(ElasticBiNode, ALPHA[:steps], device=cuda, reset=reset,
                           bidirectional=bidirectional, alpha=alpha, threshold_scale=threshold_scale,
                           decay=decay)
        x = tie_inputs(random_shape(steps, case), decay, threshold_scale * ALPHA, ALPHA, dtype=dtype,
                       seed=case, device=cuda)
        compare(ref, fused, x, exact_grads=False)


@pytest.mark.parametrize("steps", (1, 2, 4, 8))
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("cls, kwargs", [
    (STELIFNode, dict(decay=0.25)), (STELIFNode, dict(decay=0.0, v_threshold=0.3)),
    (TernaryFixedNode, dict(decay=0.25)), (TernaryFixedNode, dict(reset="soft", v_threshold=0.7))])
def test_cupy_gpu_unit_amplitude_neurons_match_torch_backend(cuda, cls, kwargs, dtype, steps):
    ref, fused = twins(cls, device=cuda, **kwargs)
    threshold = torch.full((steps,), ref.threshold_scale)
    x = tie_inputs(random_shape(steps, steps), ref.decay, threshold, torch.ones(steps), dtype=dtype,
                   device=cuda)
    compare(ref, fused, x, exact_grads=False)


@pytest.mark.parametrize("alpha", ("calibrated", "learnable"))
def test_cupy_gpu_many_blocks_grid_stride(cuda, alpha):
    # more elements per step than one wave of blocks covers, so threads loop and blocks reduce
    n = cupy_kernels._sm_count(cuda.index) * cupy_kernels.BLOCKS_PER_SM * cupy_kernels.THREADS * 4 * 2 + 4
    ref, fused = twins(ElasticBiNode, ALPHA[:2], device=cuda, alpha=alpha)
    compare(ref, fused, tie_inputs((2, n), 0.25, 0.5 * ALPHA, ALPHA, device=cuda), exact_grads=False)


@pytest.mark.parametrize("dtype", DTYPES)
def test_cupy_gpu_non_contiguous_and_offset_input(cuda, dtype):
    ref, fused = twins(ElasticBiNode, ALPHA[:4], device=cuda, alpha="learnable")
    base = torch.randn(6, 33, 4, device=cuda, dtype=dtype)
    compare(ref, fused, base.permute(2, 1, 0), exact_grads=False)  # strided
    ref.reset(), fused.reset()
    compare(ref, fused, base.reshape(-1)[1:1 + 4 * 64].view(4, 64), exact_grads=False)  # misaligned start


@pytest.mark.parametrize("alpha", ("calibrated", "learnable"))
def test_cupy_gpu_continues_membrane_without_reset(cuda, alpha):
    steps = 4
    ref, fused = twins(ElasticBiNode, ALPHA[:2 * steps], device=cuda, alpha=alpha, decay=0.5)
    x1, x2, g1, g2 = (torch.randn(steps, 8, 40, device=cuda) for _ in range(4))
    results = []
    for node in (ref, fused):
        a, b = x1.clone().requires_grad_(True), x2.clone().requires_grad_(True)
        s1, s2 = node(a), node(b)
        ((s1 * g1).sum() + (s2 * g2).sum()).backward()
        results.append((s1, s2, node.v, a.grad, b.grad))
    for got, want in zip(results[1][:3], results[0][:3]):
        assert torch.equal(got, want)
    for got, want in zip(results[1][3:], results[0][3:]):
        torch.testing.assert_close(got, want, rtol=1e-6, atol=0)


def test_cupy_gpu_runs_on_the_current_stream(cuda):
    ref, fused = twins(ElasticBiNode, ALPHA[:4], device=cuda)
    side = torch.cuda.Stream(cuda)
    big = torch.randn(4096, 4096, device=cuda)
    with torch.cuda.stream(side):
        side.wait_stream(torch.cuda.current_stream(cuda))
        x = (big @ big)[:1024].reshape(4, -1) * 1e-3  # slow producer on the side stream
        s = fused(x)  # must wait for x: launched on `side`, not on the default stream
    side.synchronize()
    assert torch.equal(s, ref(x))


def test_cupy_gpu_compiles_each_configuration_once(cuda):
    node = ElasticBiNode(T=3).to(cuda)
    neuron_zoo.set_backend(node, "cupy")
    node.load_state_dict(calibrated_state(ALPHA[:3]))
    node(torch.randn(3, 16, device=cuda))
    compiled = dict(cupy_kernels._COMPILED)
    node.reset()
    node(torch.randn(3, 40, device=cuda))
    assert cupy_kernels._COMPILED == compiled
    assert cupy_kernels.amplitude_kernels(torch.float32, 3, "reference", True) is \
        compiled[(torch.float32, 3, "reference", True)]


def test_cupy_gpu_refuses_float64_and_cpu_input(cuda):
    node = ElasticBiNode(T=2).to(cuda)
    neuron_zoo.set_backend(node, "cupy")
    node.load_state_dict(calibrated_state(ALPHA[:2]))
    with pytest.raises(TypeError, match="float64"):
        node(torch.randn(2, 8, device=cuda, dtype=torch.float64))
    with pytest.raises(RuntimeError, match="CUDA tensors"):
        node(torch.randn(2, 8))


def small_model(backend, seed=0):
    torch.manual_seed(seed)
    model = nn.Sequential(nn.Linear(32, 64), ElasticBiNode(decay=0.25), nn.Linear(64, 64),
                          ElasticBiNode(alpha="learnable", reset="hard", T=4), nn.Linear(64, 32),
                          STELIFNode(), nn.Linear(32, 4))
    neuron_zoo.set_backend(model, backend)
    return model


def test_cupy_gpu_small_model_trains_like_torch_backend(cuda):
    steps, batch = 4, 16
    data = [(torch.randn(steps, batch, 32, device=cuda), torch.randn(steps, batch, 4, device=cuda))
            for _ in range(4)]
    trained = []
    for backend in ("torch", "cupy"):
        model = small_model(backend).to(cuda)
        model(data[0][0])  # first training batch: calibrates every alpha (torch path)
        for m in model.modules():
            if isinstance(m, neuron_zoo.AmplitudeSpikeNode):
                m.reset()
        optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
        for x, y in data:
            loss = nn.functional.mse_loss(model(x), y)
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            for m in model.modules():
                if isinstance(m, neuron_zoo.AmplitudeSpikeNode):
                    m.reset()
        trained.append(model.state_dict())
    for name, value in trained[0].items():
        torch.testing.assert_close(trained[1][name], value, rtol=1e-5, atol=1e-6, msg=name)
