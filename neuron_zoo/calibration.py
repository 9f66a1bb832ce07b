"""Per-time-step neuron state calibrated from data, as one protocol: SpikeLM's amplitude
``alpha[t] = k * mean|m[t]|`` (Eq. 10) is the example, a user's neuron can follow the same rules.
Models, ``from_pretrained``, DDP and optimizers then treat every such neuron alike.

A :class:`CalibratedNeuron` declares its per-step tensors with :meth:`~CalibratedNeuron.init_calibration`;
each is ``[T, *shape]`` (a buffer, or a parameter when learnable) next to the persistent bool buffer
``calibrated`` (``[T]``). A step is calibrated once, by the first training-mode forward (or
:meth:`~CalibratedNeuron.calibrate` call) that reaches it, and frozen from then on; an uncalibrated
step in eval mode raises. A statistic that is not finite, not positive where the state must be
positive, or computed over no valid element is refused with :class:`CalibrationError`, and the step
stays uncalibrated (the next good batch calibrates it).

The ``calibrated`` flags steer control flow from a host-side copy, refreshed (one device read,
which also checks the values of the calibrated steps) whenever the buffer is replaced, e.g. by
``model.to()`` or by ``from_pretrained``, and after ``load_state_dict``. Writing the buffer in place
by hand is not supported: use :meth:`~CalibratedNeuron.calibrate`,
:meth:`~CalibratedNeuron.clear_calibration` or ``load_state_dict``.
"""
from __future__ import annotations

import dataclasses
from typing import Dict, Optional, Tuple

import torch
import torch.distributed as dist
from torch import nn

from .masking import expand_mask, valid_mask
from .validation import check_neuron_input, check_positive_int


class CalibrationError(RuntimeError):
    """A calibration statistic or a loaded calibrated value that cannot be used (not finite, not
    positive, or from no valid element), or a step used in eval mode before it was calibrated.
    The message names the neuron (spec and module name) and the time step or state key."""


@dataclasses.dataclass(frozen=True)
class StepState:
    """How a per-step tensor of a :class:`CalibratedNeuron` is kept: ``learnable`` (an
    ``nn.Parameter`` trained after calibration, else a buffer), ``positive`` (calibration must
    give values > 0, not only finite) and ``shape`` (per step; ``()`` for one scalar per step).

    Every calibrated step must hold finite values; a buffer with ``positive`` also positive ones,
    checked on every load. A learnable state is checked for positivity only when calibrated:
    training may then move it (SpikeLM clamps the amplitude in use to 1e-5), and a checkpoint
    of such a run must load."""

    learnable: bool = False
    positive: bool = False
    shape: Tuple[int, ...] = ()


def global_sum_count(values: torch.Tensor, mask: Optional[torch.Tensor] = None, per_channel: bool = False
                     ) -> Tuple[torch.Tensor, torch.Tensor]:
    """``(sum, count)`` of ``values`` over the elements selected by ``mask`` (a bool prefix of
    ``values.shape``, all elements if None), both summed over every rank of ``torch.distributed``
    when it is initialised, so every rank derives the same statistic. Stays on the device.
    ``per_channel=True``: one sum per channel (the last dimension, ``[C]``), ``count`` the number
    of selected elements per channel, e.g. for ``alpha[t, c] = k * sum_c / count``."""
    values = values.detach()
    mask = expand_mask(mask, values)
    if mask is not None:
        values = torch.where(mask, values, torch.zeros_like(values))
    total = values.reshape(-1, values.shape[-1]).sum(0) if per_channel else values.sum()
    per = values.shape[-1] if per_channel and values.dim() else 1
    if mask is None:
        count = torch.tensor(float(values.numel() // max(per, 1)), dtype=total.dtype, device=values.device)
    else:
        count = (mask.sum() * (values.numel() // max(mask.numel() * per, 1))).to(total.dtype)
    if dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1:
        both = torch.cat([total.reshape(-1), count.reshape(1)])
        dist.all_reduce(both)
        total, count = both[:-1].reshape(total.shape), both[-1]
    return total, count


def _label(node) -> str:
    from .lifecycle import neuron_label

    return neuron_label(node)


def _loaded(tensor: torch.Tensor) -> bool:
    """Whether ``transformers``' ``from_pretrained`` loaded ``tensor`` from the checkpoint (it
    flags every tensor it loads with ``_is_hf_initialized``; missing ones are left uninitialised)."""
    return bool(getattr(tensor, "_is_hf_initialized", False))


class CalibratedNeuron:
    """Mixin for neurons whose state is calibrated per time step from data (see the module
    docstring). A subclass calls :meth:`init_calibration` in ``__init__``, :meth:`begin_steps`
    at the start of every forward, and, for each step ``t`` it runs::

        if self.needs_calibrating(t):            # uncalibrated, training mode or calibrate()
            self.store_calibration(t, count, name=value)   # validated, then written in place
        ... use self.<name>[t] ...

    ``T`` (time steps): an int allocates every per-step tensor with its final ``[T, ...]``
    shape at construction (what ``from_pretrained``, DDP and optimizers need); None sizes them
    once, from the first calibrating multi-step input or loaded checkpoint (single-step mode
    then needs ``T``), and is refused for learnable state."""

    valid_mask: Optional[torch.Tensor] = None
    _calibrating: bool = False

    def init_calibration(self, T: Optional[int], **states: StepState) -> None:
        """Register the per-step tensors ``states`` (name -> :class:`StepState`) and the
        ``calibrated`` flags, all steps uncalibrated (values 0)."""
        if T is not None:
            check_positive_int("T", T)
        if not states:
            raise ValueError("init_calibration needs at least one per-step state, e.g. alpha=StepState()")
        learnable = [name for name, s in states.items() if s.learnable]
        if T is None and learnable:
            raise ValueError(
                f"{type(self).__name__}: a learnable {learnable[0]} needs T (time steps) at construction, "
                f"e.g. T=4: the parameter must exist with its final [T] shape before an optimizer is built")
        self.T = T
        self.__dict__["_step_states"] = dict(states)
        for name, spec in states.items():
            value = torch.zeros((T or 0, *spec.shape))
            if spec.learnable:
                setattr(self, name, nn.Parameter(value))
            else:
                self.register_buffer(name, value)
        self.register_buffer("calibrated", torch.zeros(T or 0, dtype=torch.bool))

    # ---- host-side view of the flags -------------------------------------------------------
    def _flags(self) -> Tuple[bool, ...]:
        cache = self.__dict__.get("_flags_cache")
        if cache is not None and cache[0] is self.calibrated:
            return cache[1]
        states = {name: getattr(self, name) for name in self._step_states}
        if self.calibrated.is_meta or any(v.is_meta for v in states.values()):
            return (False,) * self.calibrated.shape[0]  # not materialised (transformers builds on meta)
        flags = self._checked_flags(self.calibrated, states, self._state_key)
        self._set_flags(flags)
        return flags

    def _set_flags(self, flags: Tuple[bool, ...]) -> None:
        self.__dict__["_flags_cache"] = (self.calibrated, tuple(flags))

    def _state_key(self, name: str) -> str:
        module = getattr(self, "module_name", None)
        return f"{module}.{name}" if module else name

    def _step_validity(self, states: Dict[str, torch.Tensor]) -> torch.Tensor:
        """``[T]`` bool: every per-step tensor of the step finite, and positive where a buffer
        must be (see :class:`StepState`)."""
        valid = None
        for name, value in states.items():
            ok = torch.isfinite(value)
            spec = self._step_states[name]
            if spec.positive and not spec.learnable:
                ok = ok & (value > 0)
            if ok.dim() > 1:
                ok = ok.flatten(1).all(1)
            valid = ok if valid is None else valid & ok.to(valid.device)
        return valid

    def _checked_flags(self, flags: torch.Tensor, states: Dict[str, torch.Tensor], key) -> Tuple[bool, ...]:
        """``flags`` as a tuple (one device read), after checking that every step they mark
        calibrated holds valid values; ``CalibrationError`` naming the key and steps otherwise."""
        with torch.no_grad():
            flags = flags.detach().to(torch.bool)
            valid = self._step_validity(states).to(flags.device)
            flags, bad = torch.stack([flags, flags & ~valid]).cpu()
        if bad.any():
            steps = bad.nonzero().flatten().tolist()
            names = ", ".join(key(name) for name in states)
            raise CalibrationError(
                f"{_label(self)}: {names} holds a non-finite or non-positive value at time step(s) "
                f"{steps} marked calibrated; the checkpoint is corrupt (recalibrate: clear_calibration() "
                "and one training-mode forward)")
        return tuple(flags.tolist())

    # ---- public protocol ---------------------------------------------------------------------
    @property
    def calibrated_steps(self) -> int:
        """Number of calibrated time steps."""
        return sum(self._flags())

    @property
    def is_calibrated(self) -> bool:
        """True when all ``T`` steps are calibrated (False while ``T`` is unknown)."""
        flags = self._flags()
        return bool(flags) and all(flags)

    def train(self, mode: bool = True):
        """``nn.Module.train``, which also checks the calibration state if it was replaced since
        the last check: ``from_pretrained`` loads tensors without ``load_state_dict`` and ends
        with ``model.eval()``, so a corrupt calibrated value is refused at load time."""
        result = super().train(mode)
        self._flags()
        return result

    def clear_calibration(self) -> None:
        """Mark every step uncalibrated and reset the per-step values to 0, in place (the same
        parameter and buffer objects, so an optimizer keeps its references)."""
        with torch.no_grad():
            for name in self._step_states:
                getattr(self, name).data.zero_()
            self.calibrated.fill_(False)
        self._set_flags((False,) * self.calibrated.shape[0])

    def begin_steps(self, t0: int, steps: int, multi_step: bool) -> None:
        """Check (and, with ``T=None``, size) the state for a forward over steps
        ``t0 .. t0 + steps - 1``: beyond ``T`` is a ``ValueError``."""
        if self.T is None:
            if not multi_step:
                raise ValueError(f"{_label(self)}: single-step mode needs T (time steps) to hold its "
                                 "per-step state; build the neuron with T=<steps>")
            if self.training or self._calibrating:
                self._size_state(t0 + steps)
            else:
                raise CalibrationError(f"{_label(self)} is not calibrated (T unknown); run one forward in "
                                       "training mode or call calibrate(x_seq) before using it in eval mode")
        if t0 + steps > self.T:
            raise ValueError(
                f"{_label(self)}: time step {t0 + steps - 1} is beyond T={self.T} (state for steps "
                f"0..{self.T - 1}); call reset() between sequences or build the neuron with T={t0 + steps}")

    def needs_calibrating(self, t: int) -> bool:
        """Whether step ``t`` must be calibrated now: uncalibrated, in training mode or inside
        :meth:`calibrate`. An uncalibrated step in eval mode raises :class:`CalibrationError`."""
        flags = self._flags()
        if flags[t]:
            return False
        if self.training or self._calibrating:
            return True
        raise CalibrationError(
            f"{_label(self)}: time step {t} is not calibrated ({sum(flags)} of {self.T} steps are); "
            "run one forward in training mode or call calibrate(x_seq) before using it in eval mode")

    def store_calibration(self, t: int, valid_count: torch.Tensor, **values: torch.Tensor) -> None:
        """Write ``values`` (per-step tensor name -> value for step ``t``) and mark ``t``
        calibrated, after checking, in one device read, that ``valid_count`` > 0 and every value
        is finite (and positive where required); else raise :class:`CalibrationError` naming the
        neuron, the step and the reason, leaving the step uncalibrated."""
        if set(values) != set(self._step_states):
            raise ValueError(f"store_calibration needs values for {sorted(self._step_states)}, "
                             f"got {sorted(values)}")
        with torch.no_grad():
            checks = [torch.as_tensor(valid_count).reshape(()) > 0]
            for name, value in values.items():
                checks.append(torch.isfinite(value).all())
                if self._step_states[name].positive:
                    checks.append((value > 0).all())
            if not all(torch.stack([c.to(checks[0].device) for c in checks]).tolist()):
                raise CalibrationError(self._refusal(t, valid_count, values))
            for name, value in values.items():
                getattr(self, name).data[t] = value
            self.calibrated[t] = True
        flags = list(self._flags())
        flags[t] = True
        self._set_flags(tuple(flags))

    def _refusal(self, t: int, valid_count, values: Dict[str, torch.Tensor]) -> str:
        if float(valid_count) <= 0:
            reason = ("the batch has no valid element at this step (an empty batch, an all-False mask "
                      "or only padding)")
        else:
            shown = {name: value.tolist() for name, value in values.items()}
            reason = (f"the statistic {shown} is not finite and positive (NaN or +-inf in the input, "
                      "or only zeros)")
        return (f"{_label(self)}: refusing to calibrate time step {t}: {reason}; the step stays "
                "uncalibrated and calibrates on the next batch that reaches it")

    def calibrate(self, x_seq: torch.Tensor, mask: Optional[torch.Tensor] = None):
        """Recalibrate every step on ``x_seq`` (``[T, N, *]``, all ``T`` steps) in any mode,
        counting only the elements where ``mask`` (bool, leading dims of a step, e.g.
        ``[B, L]``) is True. Writes in place; leaves the neuron reset; returns it. Raises
        :class:`CalibrationError` at the first refused step (earlier steps keep their new
        values, that one and later ones stay uncalibrated)."""
        check_neuron_input(self, x_seq, multi_step=True)
        if self.T is None:
            self._size_state(x_seq.shape[0])
        elif x_seq.shape[0] != self.T:
            raise ValueError(f"{_label(self)}: calibrate needs all T={self.T} steps, got x_seq of shape "
                             f"{tuple(x_seq.shape)}")
        reset = getattr(self, "reset", None)
        step_mode = getattr(self, "step_mode", None)
        if reset is not None:
            reset()
        self.clear_calibration()
        if step_mode is not None:
            self.step_mode = "m"
        self._calibrating = True
        try:
            with torch.no_grad(), valid_mask(self, mask):
                self(x_seq)
        finally:
            self._calibrating = False
            if step_mode is not None:
                self.step_mode = step_mode
            if reset is not None:
                reset()
        return self

    # ---- sizing, loading and initialisation -----------------------------------------------------
    def _size_state(self, T: int) -> None:
        """Give an unsized (``T=None``) neuron its ``[T, ...]`` state, all uncalibrated."""
        check_positive_int("T", T)
        with torch.inference_mode(False):  # normal tensors even when sized under inference_mode
            for name, spec in self._step_states.items():
                old = getattr(self, name)
                setattr(self, name, torch.zeros((T, *spec.shape), dtype=old.dtype, device=old.device))
            self.calibrated = torch.zeros(T, dtype=torch.bool, device=self.calibrated.device)
        self.T = T
        self._set_flags((False,) * T)

    def _load_from_state_dict(self, state_dict, prefix, local_metadata, strict, missing_keys,
                              unexpected_keys, error_msgs):
        """Check the per-step tensors before loading them: a different ``T`` raises naming both
        shapes; a non-finite (or non-positive where required) value at a step marked calibrated
        raises :class:`CalibrationError` naming the key. Checkpoints from before the
        ``calibrated`` flags: an empty tensor loads as uncalibrated, and without flags a step
        counts as calibrated when its values are valid (alpha finite and > 0)."""
        incoming = {name: state_dict[prefix + name] for name in self._step_states
                    if prefix + name in state_dict}
        if incoming and not any(v.is_meta for v in incoming.values()):
            self._prepare_incoming(state_dict, prefix, incoming)
        super()._load_from_state_dict(state_dict, prefix, local_metadata, strict, missing_keys,
                                      unexpected_keys, error_msgs)
        self.__dict__.pop("_flags_cache", None)

    def _prepare_incoming(self, state_dict, prefix: str, incoming: Dict[str, torch.Tensor]) -> None:
        flags_key = prefix + "calibrated"
        for name, value in incoming.items():
            own = getattr(self, name)
            if value.dim() != own.dim() or tuple(value.shape[1:]) != tuple(own.shape[1:]):
                raise RuntimeError(f"{_label(self)}: {prefix}{name} has shape {tuple(value.shape)} in the "
                                   f"checkpoint, expected [T, {', '.join(map(str, own.shape[1:]))}] "
                                   f"(shape {tuple(own.shape)} here)".replace("[T, ]", "[T]"))
        steps = {value.shape[0] for value in incoming.values()}
        if len(steps) > 1:
            raise RuntimeError(f"{_label(self)}: the per-step tensors under {prefix!r} disagree on T: "
                               f"{ {n: tuple(v.shape) for n, v in incoming.items()} }")
        steps = steps.pop()
        if steps == 0:  # saved before it was calibrated by a version with growing state
            for name, value in incoming.items():
                state_dict[prefix + name] = torch.zeros_like(getattr(self, name))
            state_dict[flags_key] = torch.zeros_like(self.calibrated)
            return
        if self.T is None:
            self._size_state(steps)
        elif steps != self.T:
            name, value = next(iter(incoming.items()))
            raise RuntimeError(
                f"{_label(self)}: {prefix}{name} has shape {tuple(value.shape)} in the checkpoint "
                f"({steps} time steps) but shape {tuple(getattr(self, name).shape)} here (T={self.T}); "
                f"build the model with T={steps} to load it")
        if flags_key not in state_dict:  # saved before the calibrated flags existed
            state_dict[flags_key] = self._step_validity(incoming)
        flags = state_dict[flags_key]
        if tuple(flags.shape) != (steps,) or flags.dtype != torch.bool:
            raise RuntimeError(f"{_label(self)}: {flags_key} must be a bool tensor of shape ({steps},), got "
                               f"{flags.dtype} of shape {tuple(flags.shape)}")
        self._checked_flags(flags, incoming, lambda name: prefix + name)

    def init_calibration_state(self) -> None:
        """Called when a model initialises its weights (:func:`neuron_zoo.init_neuron_state`):
        state that ``from_pretrained`` loaded is kept and checked; a checkpoint without the
        ``calibrated`` flags counts valid steps as calibrated; anything else is cleared."""
        names = list(self._step_states)
        if all(_loaded(getattr(self, name)) for name in names):
            if _loaded(self.calibrated):
                self.__dict__.pop("_flags_cache", None)
                self._flags()  # checks the loaded values now
                return
            states = {name: getattr(self, name) for name in names}
            with torch.no_grad():
                self.calibrated.copy_(self._step_validity(states))
            self._set_flags(tuple(self.calibrated.cpu().tolist()))
            return
        self.clear_calibration()


def calibrated_neurons(module: nn.Module) -> Dict[str, CalibratedNeuron]:
    """``{qualified name: neuron}`` of every :class:`CalibratedNeuron` in ``module``."""
    return {name: m for name, m in module.named_modules() if isinstance(m, CalibratedNeuron)}


def needs_calibration(module: nn.Module) -> bool:
    """Whether some :class:`CalibratedNeuron` in ``module`` has an uncalibrated step."""
    return any(not node.is_calibrated for node in calibrated_neurons(module).values())


def calibration_report(module: nn.Module) -> Dict[str, Tuple[int, Optional[int]]]:
    """``{qualified module name: (calibrated steps, T)}`` for every :class:`CalibratedNeuron`
    in ``module`` (``T`` None while an unsized neuron has seen no input)."""
    return {name: (node.calibrated_steps, node.T) for name, node in calibrated_neurons(module).items()}
