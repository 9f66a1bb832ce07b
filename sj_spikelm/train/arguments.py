"""Job arguments: ``TrainingArguments`` (with this project's defaults and run-control fields)
plus small dataclasses for the model, the spiking neurons, the data and the distillation.

Every job parses them with :func:`parse_args`: the defaults, overridden by a YAML file
(``--config file.yaml``, a flat mapping ``field: value`` over all dataclasses), overridden by
flags (``--learning_rate 3e-5``), through ``transformers.HfArgumentParser``. An unknown key, a
value of the wrong type, or a non-finite number raises ``ValueError`` naming the field before
anything is loaded. :func:`check_values` runs the same checks on a mapping (the grid validates
every run of a grid with it before starting the first).
"""
from __future__ import annotations

import dataclasses
import json
import math
from dataclasses import dataclass, field
from typing import Any, Dict, List, Optional, Sequence, Tuple, Union

import yaml
from transformers import HfArgumentParser, TrainingArguments

from .distill import check_weights

MODELS = ("bert", "spikelm")


def as_mapping(name: str, value: Union[None, str, Dict[str, Any]]) -> Dict[str, Any]:
    """A dict-valued field given as a mapping (YAML file), a YAML/JSON string (flag) or None."""
    if value is None:
        return {}
    if isinstance(value, str):
        try:
            value = yaml.safe_load(value)
        except yaml.YAMLError as err:
            raise ValueError(f"{name}={value!r} is not a YAML/JSON mapping: {err}") from None
        value = {} if value is None else value
    if not isinstance(value, dict):
        raise ValueError(f"{name}={value!r} must be a mapping such as '{{\"hidden_size\": 256}}'")
    return value


@dataclass
class ModelArguments:
    """Which model to train and where its weights come from (see :mod:`.build`)."""

    model: str = field(default="spikelm", metadata={"help": f"one of {', '.join(MODELS)}: the ANN "
                       "(a Hugging Face BERT) or a spiking model"})
    init_from: Optional[str] = field(default=None, metadata={
        "help": "checkpoint folder, hub name or pkg:<package>/<folder>: an ANN (converted with from_ann "
                "for model=spikelm) or a spiking checkpoint; unset: a fresh model from model_config"})
    tokenizer: Optional[str] = field(default=None, metadata={"help": "tokenizer folder or hub name "
                                                                     "(default: init_from's)"})
    model_config: Optional[Union[dict, str]] = field(default=None, metadata={
        "help": "config fields of a fresh model (no init_from), e.g. '{\"hidden_size\": 256}'"})
    model_overrides: Optional[Union[dict, str]] = field(default=None, metadata={
        "help": "config fields applied on top of a checkpoint, e.g. '{\"hidden_dropout_prob\": 0.0}'"})

    def __post_init__(self):
        if self.model not in MODELS:
            raise ValueError(f"model={self.model!r}; accepted: {', '.join(MODELS)}")
        self.model_config = as_mapping("model_config", self.model_config)
        self.model_overrides = as_mapping("model_overrides", self.model_overrides)


@dataclass
class SpikingArguments:
    """The neuron and time steps of a spiking model (unset: a spiking checkpoint's own)."""

    neuron: Optional[str] = field(default=None, metadata={"help": 'zoo neuron spec, e.g. "elastic_bi(k=2)"'})
    k: Optional[float] = field(default=None, metadata={"help": "overrides the neuron's k"})
    T: Optional[int] = field(default=None, metadata={"help": "time steps"})

    def __post_init__(self):
        if self.T is not None and self.T < 1:
            raise ValueError(f"T={self.T!r} is out of range; accepted: an int >= 1")
        if self.k is not None and not self.k > 0:
            raise ValueError(f"k={self.k!r} is out of range; accepted: > 0")
        if self.neuron is not None:
            from .build import resolve_neuron

            resolve_neuron(self.neuron, self.k)  # raises naming an unknown neuron or argument


@dataclass
class DistillationArguments:
    """Knowledge distillation from an ANN teacher (:mod:`.distill`)."""

    distill: Optional[str] = field(default=None, metadata={"help": "teacher folder or hub name"})
    distill_weights: Optional[Union[dict, str]] = field(default=None, metadata={
        "help": "weights of the loss terms task, logits, hidden, attention (default 1 each)"})
    distill_temperature: float = field(default=1.0, metadata={"help": "temperature tau of the KL term"})

    def __post_init__(self):
        self.distill_weights = check_weights(as_mapping("distill_weights", self.distill_weights))
        if not self.distill_temperature > 0:
            raise ValueError(f"distill_temperature={self.distill_temperature!r} is out of range; "
                             "accepted: > 0")


@dataclass
class SpikingTrainingArguments(TrainingArguments):
    """``transformers.TrainingArguments`` with this project's defaults (TensorBoard, logging every
    50 steps, evaluation after every epoch, no periodic checkpoints, one checkpoint kept, seed 0,
    10% warm-up, weight decay 0.01 (not on biases, norms or neuron parameters)) and the
    run-control fields of a job."""

    output_dir: Optional[str] = field(default="runs/run", metadata={
        "aliases": ["--run_dir"], "help": "the run folder (config.yaml, train.log, tb/, checkpoints, "
                                          "best/, metrics.json)"})
    report_to: Union[None, str, List[str]] = field(default="tensorboard", metadata={
        "help": "TensorBoard (in <run_dir>/tb), or 'none'"})
    logging_steps: float = 50
    eval_strategy: str = "epoch"
    save_strategy: str = "no"
    save_total_limit: Optional[int] = 1
    per_device_train_batch_size: int = 32
    per_device_eval_batch_size: int = 128
    learning_rate: float = 5e-5
    weight_decay: float = 0.01
    warmup_steps: float = 0.1
    num_train_epochs: float = 3.0
    seed: int = 0
    restore_callback_states_from_checkpoint: bool = True
    # True multiplies the loss of a model whose forward takes **kwargs (a Hugging Face BERT) by
    # the number of processes when its loss ignores num_items_in_batch (sequence classification):
    # DDP gradients then differ from one process's by that factor (measured: 2 ranks, SGD)
    average_tokens_across_devices: bool = False
    use_cpu: Optional[bool] = field(default=None, metadata={
        "help": "train on the CPU; unset: when no CUDA device is present (then torchrun's CPU "
                "processes form one gloo DDP group)"})
    # run control (not training hyper-parameters)
    threads: int = field(default=0, metadata={"help": "torch CPU threads (0: torch's default)"})
    resume: bool = field(default=True, metadata={"help": "continue from the newest complete checkpoint "
                                                         "in the run folder"})
    stop_after: int = field(default=0, metadata={"help": "end this invocation after step N with a checkpoint "
                                                         "(time slices); the schedule spans the run"})
    save_best: bool = field(default=True, metadata={"help": "save the best evaluation's model to best/"})
    save_final: bool = field(default=False, metadata={"help": "save the final model to <run_dir>/final"})

    def __post_init__(self):
        for name in ("threads", "stop_after"):
            if getattr(self, name) < 0:
                raise ValueError(f"{name}={getattr(self, name)!r} is out of range; accepted: >= 0")
        if self.use_cpu is None:
            import torch

            self.use_cpu = not torch.cuda.is_available()
        super().__post_init__()


RUN_CONTROL = ("output_dir", "resume", "stop_after", "threads", "disable_tqdm", "dataloader_num_workers",
               "local_rank", "logging_dir", "logging_steps", "logging_strategy", "logging_first_step",
               "save_strategy", "save_steps", "save_total_limit", "save_best", "save_final", "report_to")
"""Fields a re-run of the same run folder may change (they do not change the trained model)."""


def check_finite(objects: Sequence[Any]) -> None:
    """``ValueError`` naming the first float field of the dataclasses ``objects`` that holds a
    NaN or an infinity (e.g. ``--learning_rate inf``)."""
    for obj in objects:
        for f in dataclasses.fields(obj):
            value = getattr(obj, f.name, None)
            if isinstance(value, float) and not math.isfinite(value):
                raise ValueError(f"{f.name}={value!r} is not a finite number")


class _Parser(HfArgumentParser):
    """``HfArgumentParser`` that raises ``ValueError`` (naming the argument) instead of exiting."""

    def error(self, message):
        raise ValueError(message)


def _parser(types: Sequence[type], description: Optional[str]) -> HfArgumentParser:
    parser = _Parser(types, description=description, allow_abbrev=False)
    parser.add_argument("--config", help="YAML file of field: value over all the fields below; flags "
                                         "override it")
    return parser


def _field_names(types: Sequence[type]) -> List[str]:
    return [f.name for t in types for f in dataclasses.fields(t) if f.init]


def load_yaml_config(path: str) -> Dict[str, Any]:
    """The mapping in a YAML config file (``ValueError`` naming the file otherwise)."""
    with open(path, encoding="utf-8") as fh:
        values = yaml.safe_load(fh) or {}
    if not isinstance(values, dict):
        raise ValueError(f"--config {path}: expected a mapping of field: value, got {type(values).__name__}")
    return values


def parse_args(types: Sequence[type], argv: Optional[Sequence[str]] = None,
               description: Optional[str] = None, values: Optional[Dict[str, Any]] = None) -> Tuple:
    """One instance of each dataclass in ``types``: defaults < ``values`` (or the ``--config``
    YAML file) < flags in ``argv``. Unknown keys, wrong types and non-finite numbers raise
    ``ValueError`` naming the field."""
    parser = _parser(types, description)
    argv = list(argv) if argv is not None else None
    config_path = parser.parse_known_args(argv)[0].config
    values = dict(values or {})
    if config_path:
        values = {**load_yaml_config(config_path), **values}
    accepted = _field_names(types)
    unknown = sorted(k for k in values if k not in accepted)
    if unknown:
        raise ValueError(f"unknown config field(s) {unknown}; accepted: {', '.join(accepted)}")
    parser.set_defaults(**{k: _as_text(v) for k, v in values.items()})
    parsed = parser.parse_args_into_dataclasses(args=argv)
    parsed = tuple(p for p in parsed if dataclasses.is_dataclass(p))
    check_finite(parsed)
    return parsed


def _as_text(value: Any) -> Any:
    """A config-file value as the text a flag would give, so argparse type-checks and converts
    it like a flag (it leaves non-string defaults alone): ``8.5`` for an int field is an error,
    not a silent float. Mappings become JSON; lists and None stay."""
    if value is None or isinstance(value, list):
        return value
    return json.dumps(value) if isinstance(value, dict) else str(value)


def check_values(types: Sequence[type], values: Dict[str, Any]) -> Tuple:
    """:func:`parse_args` on a mapping, without command-line flags."""
    return parse_args(types, argv=[], values=values)


def resolve_locations(objects: Sequence[Any]) -> None:
    """Expand, in place, every ``data:...`` / ``pkg:...`` string field of the argument
    dataclasses ``objects`` to a path (:func:`sj_spikelm.data.paths.resolve_location`)."""
    from ..data.paths import resolve_location

    for obj in objects:
        if isinstance(obj, TrainingArguments):
            continue
        for f in dataclasses.fields(obj):
            value = getattr(obj, f.name)
            if isinstance(value, str) and value.startswith(("data:", "pkg:")):
                setattr(obj, f.name, resolve_location(value))


def flat_config(objects: Sequence[Any]) -> Dict[str, Any]:
    """All fields of the argument dataclasses as one flat mapping (usable again as ``--config``)."""
    out: Dict[str, Any] = {}
    for obj in objects:
        if isinstance(obj, TrainingArguments):
            items = obj.to_dict().items()
        else:
            items = ((f.name, getattr(obj, f.name)) for f in dataclasses.fields(obj))
        for key, value in items:
            out[key] = value
    return out
