"""Neurons that remember their constructor arguments, so any instance can be written back as
a spec string or used as a template for fresh copies (``build_neuron(instance)``)."""
from __future__ import annotations

import functools
import inspect


class RecordsInitArgs:
    """Stores the bound constructor arguments of the most derived class in ``init_kwargs``."""

    def __init_subclass__(cls, **kwargs):
        super().__init_subclass__(**kwargs)
        if "__init__" not in cls.__dict__:
            return
        init = cls.__init__
        signature = inspect.signature(init)

        @functools.wraps(init)
        def recording_init(self, *args, **kw):
            init(self, *args, **kw)
            if type(self).__init__ is recording_init:
                bound = signature.bind(self, *args, **kw)
                bound.apply_defaults()
                arguments = dict(bound.arguments)
                arguments.pop("self")
                self.__dict__["init_kwargs"] = arguments

        cls.__init__ = recording_init
