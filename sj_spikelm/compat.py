"""Keep ``transformers`` importable when torchvision / torchaudio are installed but broken.

SpikingJelly 2.0 depends on torchvision and torchaudio, so pip installs them next to a CPU
torch as CUDA builds whose compiled extensions fail to load (``RuntimeError: operator
torchvision::nms does not exist``, ``OSError: libc10_cuda.so``). ``transformers`` imports both
whenever they are installed, which makes every model import fail. :func:`hide_broken_extensions`
tries each import once; a package that is installed but raises something other than
``ImportError`` is marked absent (``sys.modules[name] = None``, so ``importlib.util.find_spec``
returns None and ``transformers`` skips it) with a warning. Working installs are untouched.
"""
from __future__ import annotations

import sys
import warnings
from typing import List

OPTIONAL_TORCH_EXTENSIONS = ("torchvision", "torchaudio")


def hide_broken_extensions(names=OPTIONAL_TORCH_EXTENSIONS) -> List[str]:
    """Mark every package in ``names`` that is installed but fails to import as absent;
    return the names hidden."""
    hidden, reasons = [], []
    for name in names:
        if name in sys.modules:  # already imported (works) or already hidden (None)
            continue
        try:
            __import__(name)
        except ImportError:
            continue
        except Exception as err:  # noqa: BLE001 - any failure of a compiled extension
            for key in [k for k in sys.modules if k == name or k.startswith(name + ".")]:
                del sys.modules[key]
            sys.modules[name] = None
            hidden.append(name)
            reasons.append(f"{name} ({type(err).__name__}: {str(err).splitlines()[0][:100]})")
    if hidden:
        warnings.warn("installed but not importable, hidden so that transformers works: "
                      + "; ".join(reasons),
                      RuntimeWarning, stacklevel=2)
    return hidden

hide_broken_extensions()
