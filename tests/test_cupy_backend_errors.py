"""backend='cupy' without what it needs: errors naming what is missing, CPU tensors refused,
set_backend over a model, and an import that neither needs nor loads CuPy."""
import subprocess
import sys
import types

import pytest
import torch
from torch import nn

import neuron_zoo
from neuron_zoo import ElasticBiNode, STELIFNode, TernaryFixedNode, cupy_kernels


def test_cupy_backend_without_cupy_says_cupy_is_missing(monkeypatch):
    monkeypatch.setitem(sys.modules, "cupy", None)  # import cupy -> ImportError
    with pytest.raises(RuntimeError, match=r"backend='cupy' cannot run here: CuPy is not installed.*cuda12"):
        neuron_zoo.set_backend(ElasticBiNode(), "cupy")


def test_cupy_backend_without_cuda_says_cuda_is_missing(monkeypatch):
    fake = types.ModuleType("cupy")
    fake.cuda = types.SimpleNamespace(is_available=lambda: False)
    monkeypatch.setitem(sys.modules, "cupy", fake)
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    with pytest.raises(RuntimeError, match=r"PyTorch finds no CUDA device"):
        STELIFNode().backend = "cupy"
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    with pytest.raises(RuntimeError, match=r"CuPy finds no CUDA device"):
        TernaryFixedNode().backend = "cupy"


def test_cupy_backend_on_this_machine_runs_or_says_why():
    problem = cupy_kernels.cupy_problem()
    if problem is None:
        assert neuron_zoo.set_backend(ElasticBiNode(), "cupy") == 1
    else:
        with pytest.raises(RuntimeError, match="cannot run here") as err:
            neuron_zoo.set_backend(nn.Sequential(ElasticBiNode()), "cupy")
        assert problem in str(err.value)


def test_cupy_backend_refuses_cpu_tensors(monkeypatch):
    monkeypatch.setattr(cupy_kernels, "require_cupy", lambda: None)
    node = ElasticBiNode()
    node.backend = "cupy"
    with pytest.raises(RuntimeError, match=r"CUDA tensors, got an input on cpu"):
        node(torch.randn(2, 3))


def test_set_backend_switches_every_amplitude_neuron(monkeypatch):
    monkeypatch.setattr(cupy_kernels, "require_cupy", lambda: None)
    model = nn.Sequential(ElasticBiNode(), nn.Linear(3, 3), STELIFNode(), TernaryFixedNode(),
                          neuron_zoo.LIFNode(), neuron_zoo.ANNNode())
    assert neuron_zoo.set_backend(model, "cupy") == 3
    assert [m.backend for m in model if isinstance(m, neuron_zoo.AmplitudeSpikeNode)] == ["cupy"] * 3
    assert neuron_zoo.set_backend(model, "torch") == 3 and model[0].backend == "torch"
    with pytest.raises(ValueError, match=r"backend='cuda'.*'torch', 'cupy'"):
        neuron_zoo.set_backend(model, "cuda")


def test_import_neither_needs_nor_loads_cupy():
    script = """
import importlib.abc, sys
attempts = []
class NoCupy(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name.split('.')[0] in ('cupy', 'cupy_backends'):
            attempts.append(name)
            raise ImportError('CuPy hidden for this test')
sys.meta_path.insert(0, NoCupy())
import torch, neuron_zoo
from neuron_zoo import cupy_kernels
assert attempts == [], attempts
assert not cupy_kernels._COMPILED
node = neuron_zoo.ElasticBiNode()
assert node(torch.randn(2, 3, 4)).shape == (2, 3, 4)
print(cupy_kernels.cupy_problem())
"""
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("CuPy is not installed")
