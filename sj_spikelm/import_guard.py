"""Keep ``transformers`` importable next to optional packages whose compiled extension does
not load.

``transformers`` imports ``torchvision`` (whenever it and Pillow are installed) and
``torchaudio`` while importing its model code. SpikingJelly 2.0 makes pip install both; next
to a CPU build of torch a CUDA build of them fails to load its extension (``RuntimeError`` /
``OSError``), which would make every ``transformers`` model import fail. Neither is used
here, so such a package is hidden (``sys.modules[name] = None``, so ``find_spec`` reports it
missing), with a warning naming it.
"""
from __future__ import annotations

import importlib
import importlib.util
import logging
import sys
from typing import List, Sequence

logger = logging.getLogger(__name__)

OPTIONAL_PACKAGES = ("torchvision", "torchaudio")


def hide_unloadable_packages(names: Sequence[str] = OPTIONAL_PACKAGES) -> List[str]:
    """Import each installed package in ``names``; hide the ones whose import raises.
    Returns the names hidden by this call."""
    hidden = []
    for name in names:
        if name in sys.modules or importlib.util.find_spec(name) is None:
            continue
        try:
            importlib.import_module(name)
        except Exception as err:  # a broken extension raises RuntimeError, OSError, ...
            for key in [k for k in sys.modules if k == name or k.startswith(name + ".")]:
                del sys.modules[key]
            sys.modules[name] = None
            hidden.append(name)
            reason = (str(err).splitlines() or [""])[0]
            logger.warning("%s is installed but does not import (%s: %s); hiding it so that "
                           "transformers can be imported", name, type(err).__name__, reason)
    return hidden
