"""Building neurons by name: specs, defaults, templates, and errors naming what is accepted."""
import pytest
import torch

import neuron_zoo
from neuron_zoo import ElasticBiNode, build_neuron, list_neurons, neuron_spec, parse_spec


def test_list_neurons_has_every_neuron_with_defaults():
    listing = list_neurons()
    assert set(listing) >= {"elastic_bi", "ste_lif", "lif", "psn", "ternary_fixed", "ann"}
    assert listing["elastic_bi"]["k"] == 2.0 and listing["elastic_bi"]["reset"] == "reference"
    assert listing["psn"]["T"] is neuron_zoo.REQUIRED


@pytest.mark.parametrize("spec, cls", [
    ("elastic_bi(k=3, reset='hard')", neuron_zoo.ElasticBiNode), ("ste_lif", neuron_zoo.STELIFNode),
    ("lif", neuron_zoo.LIFNode), ("psn(T=4)", neuron_zoo.PSN),
    ("ternary_fixed", neuron_zoo.TernaryFixedNode), ("ann", neuron_zoo.ANNNode),
])
def test_build_each_neuron_and_run_it(spec, cls):
    node = build_neuron(spec)
    assert type(node) is cls
    assert node(torch.randn(4, 2, 3)).shape == (4, 2, 3)


def test_spec_arguments_and_overrides_reach_the_neuron():
    node = build_neuron("elastic_bi(k=3, reset='hard', bidirectional=False)", decay=0.0)
    assert (node.k, node.reset_mode, node.bidirectional, node.decay) == (3.0, "hard", False, 0.0)


def test_instance_is_a_template_for_fresh_neurons():
    template = ElasticBiNode(k=4.0, reset="soft")
    template(torch.randn(2, 3))  # calibrate the template: its state must not be copied
    node = build_neuron(template, decay=0.0)
    assert node is not template and node.calibrated_steps == 0
    assert (node.k, node.reset_mode, node.decay) == (4.0, "soft", 0.0)
    custom = torch.nn.ReLU()
    assert isinstance(build_neuron(custom), torch.nn.ReLU) and build_neuron(custom) is not custom
    with pytest.raises(ValueError, match="not a registered neuron"):
        build_neuron(custom, decay=0.0)


def test_neuron_spec_round_trips():
    for spec in ["elastic_bi(k=3, reset='hard')", "psn(T=2)", "ste_lif(v_threshold=0.5)", "ann"]:
        node = build_neuron(spec)
        again = build_neuron(neuron_spec(node))
        assert again.init_kwargs == node.init_kwargs
    assert neuron_spec(build_neuron("elastic_bi")) == "elastic_bi"
    assert neuron_spec(build_neuron("elastic_bi(k=3.0)")) == "elastic_bi(k=3.0)"


def test_accepts_argument():
    assert neuron_zoo.accepts_argument("elastic_bi(k=3)", "decay")
    assert not neuron_zoo.accepts_argument("ann", "decay")
    assert neuron_zoo.accepts_argument("psn(T=4)", "T")


@pytest.mark.parametrize("spec, match", [
    ("spikelm", "unknown neuron 'spikelm'; registered neurons: elastic_bi"),
    ("elastic_bi(kk=2)", "has no argument 'kk'; accepted arguments: k, decay"),
    ("psn", "needs argument.* T"),
    ("elastic_bi(2)", "by keyword"),
    ("elastic_bi(k=__import__('os').getpid())", "not a literal"),
    ("elastic_bi(k=2", "cannot parse"),
    ("os.system('true')", "cannot parse"),
    ("elastic_bi(reset='sideways')", "reset='sideways' is not accepted; choose one of 'reference'"),
])
def test_errors_name_what_is_wrong_and_what_is_accepted(spec, match):
    with pytest.raises(ValueError, match=match):
        build_neuron(spec)


def test_parse_spec_literals():
    assert parse_spec(" elastic_bi(k=2.5, reset='hard', bidirectional=False) ") == (
        "elastic_bi", {"k": 2.5, "reset": "hard", "bidirectional": False})
    with pytest.raises(TypeError):
        parse_spec(3)


def test_set_backend_switches_and_validates():
    model = torch.nn.Sequential(ElasticBiNode(), neuron_zoo.STELIFNode(), neuron_zoo.ANNNode())
    assert neuron_zoo.set_backend(model, "torch") == 2
    with pytest.raises(ValueError, match="backend='triton' is not accepted; choose one of 'torch'"):
        neuron_zoo.set_backend(model, "triton")


def test_canonical_spec_checks_and_writes_without_building():
    # elastic_bi(alpha='learnable') cannot be built without T; its spec can still be written
    assert neuron_zoo.canonical_spec("elastic_bi(alpha='learnable', k=2.0)", k=3) == \
        "elastic_bi(alpha='learnable', k=3)"
    assert neuron_zoo.canonical_spec(ElasticBiNode(k=2.0, step_mode="s")) == "elastic_bi"
    with pytest.raises(ValueError, match="has no argument 'kk'"):
        neuron_zoo.canonical_spec("elastic_bi", kk=1)
    with pytest.raises(ValueError, match="needs argument"):
        neuron_zoo.canonical_spec("psn")


def test_name_neurons_labels_errors_with_the_module_name():
    model = torch.nn.Sequential(torch.nn.Linear(2, 2), torch.nn.Sequential(ElasticBiNode(T=1)),
                                torch.nn.ReLU())
    assert neuron_zoo.name_neurons(model) == 1
    assert neuron_zoo.neuron_label(model[1][0]) == "elastic_bi(T=1) at 1.0"
    assert neuron_zoo.is_neuron(model[1][0]) and not neuron_zoo.is_neuron(model[0])
    with pytest.raises(RuntimeError, match=r"elastic_bi\(T=1\) at 1\.0: time step 0 is not calibrated"):
        model.eval()(torch.randn(1, 3, 2))


def test_init_neuron_state_clears_calibration_and_reinitialises_own_parameters():
    node = ElasticBiNode(T=2)
    node.calibrate(torch.randn(2, 5))
    neuron_zoo.init_neuron_state(node)
    assert node.calibrated_steps == 0 and node.alpha.tolist() == [0.0, 0.0]
    psn = neuron_zoo.PSN(T=3)
    with torch.no_grad():
        psn.weight.fill_(7.0), psn.bias.fill_(7.0)
    neuron_zoo.init_neuron_state(psn)
    assert psn.weight.abs().max() <= 3 ** -0.5 and torch.equal(psn.bias, torch.full((3, 1), -1.0))
    for p in psn.parameters():  # what from_pretrained marks as loaded is kept
        p._is_hf_initialized = True
    with torch.no_grad():
        psn.bias.fill_(7.0)
    neuron_zoo.init_neuron_state(psn)
    assert torch.equal(psn.bias, torch.full((3, 1), 7.0))
    linear = torch.nn.Linear(2, 2)
    before = linear.weight.detach().clone()
    neuron_zoo.init_neuron_state(linear)  # not a neuron: untouched
    assert torch.equal(linear.weight, before)
