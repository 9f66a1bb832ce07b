"""The neuron backend is a runtime choice: never in a spec or a saved config, so a model saved
while running on CuPy loads on this CPU-only machine; use_backend restores what was there."""
import json

import pytest
import torch

import neuron_zoo
from neuron_zoo import ElasticBiNode, STELIFNode, build_neuron, cupy_kernels, neuron_spec
from sj_spikelm import SpikeLMConfig, SpikeLMForSequenceClassification


@pytest.fixture
def fake_cupy(monkeypatch):
    """Let backend='cupy' be chosen on a machine without CuPy (nothing is run on it here)."""
    monkeypatch.setattr(cupy_kernels, "require_cupy", lambda: None)


def test_spec_holds_no_runtime_choice(fake_cupy):
    node = build_neuron("elastic_bi(k=3, reset='hard')")
    node.step_mode = "s"
    neuron_zoo.set_backend(node, "cupy")
    assert neuron_spec(node) == "elastic_bi(k=3, reset='hard')"
    single = ElasticBiNode(k=3.0, step_mode="s", T=2)
    assert neuron_spec(single) == "elastic_bi(k=3.0, T=2)"
    assert SpikeLMConfig(neuron=node).neuron == "elastic_bi(k=3, reset='hard')"
    with pytest.raises(ValueError, match="has no argument 'backend'"):
        build_neuron("elastic_bi(backend='cupy')")
    assert build_neuron("elastic_bi(k=2)").backend == "torch"


def test_model_saved_on_cupy_loads_on_a_cpu_only_machine(fake_cupy, tiny_config, batch, tmp_path):
    model = SpikeLMForSequenceClassification(tiny_config(num_labels=2)).calibrate(**batch).eval()
    expected = model(**batch).logits
    assert neuron_zoo.set_backend(model, "cupy") == 2 * 8
    model.save_pretrained(tmp_path)
    assert "cupy" not in (tmp_path / "config.json").read_text()
    assert "backend" not in json.loads((tmp_path / "config.json").read_text())["neuron"]
    loaded = SpikeLMForSequenceClassification.from_pretrained(tmp_path).eval()
    backends = {m.backend for m in loaded.modules() if isinstance(m, neuron_zoo.AmplitudeSpikeNode)}
    assert backends == {"torch"}
    assert torch.equal(loaded(**batch).logits, expected)


def test_use_backend_restores_each_neurons_backend(fake_cupy):
    model = torch.nn.Sequential(ElasticBiNode(), STELIFNode(), neuron_zoo.LIFNode())
    model[1].backend = "cupy"
    with neuron_zoo.use_backend(model, "cupy") as inside:
        assert inside is model and [model[0].backend, model[1].backend] == ["cupy", "cupy"]
    assert [model[0].backend, model[1].backend] == ["torch", "cupy"]
    with pytest.raises(KeyError):
        with neuron_zoo.use_backend(model, "torch"):
            assert [model[0].backend, model[1].backend] == ["torch", "torch"]
            raise KeyError("inside the block")
    assert [model[0].backend, model[1].backend] == ["torch", "cupy"]
    with pytest.raises(ValueError, match="backend='triton' is not accepted"):
        with neuron_zoo.use_backend(model, "triton"):
            pass
    assert [model[0].backend, model[1].backend] == ["torch", "cupy"]


def test_use_backend_without_cupy_says_why_and_changes_nothing(monkeypatch):
    monkeypatch.setattr(cupy_kernels, "cupy_problem", lambda: "CuPy is not installed (test)")
    model = torch.nn.Sequential(ElasticBiNode(), STELIFNode())
    with pytest.raises(RuntimeError, match="backend='cupy' cannot run here: CuPy is not installed"):
        with neuron_zoo.use_backend(model, "cupy"):
            pass
    assert [m.backend for m in model] == ["torch", "torch"]
