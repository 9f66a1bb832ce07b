"""hide_broken_extensions: an installed package whose import raises (not ImportError) is
marked absent so that find_spec (what transformers checks) reports it missing."""
import importlib.util
import sys

import pytest

from sj_spikelm.compat import hide_broken_extensions


def test_broken_package_is_hidden_working_ones_are_not(tmp_path, monkeypatch):
    pkg = tmp_path / "sj_broken_ext"
    pkg.mkdir()
    (pkg / "__init__.py").write_text("raise RuntimeError('operator sj::nms does not exist')\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.delitem(sys.modules, "sj_broken_ext", raising=False)
    try:
        with pytest.warns(RuntimeWarning, match=r"sj_broken_ext \(RuntimeError: operator sj::nms"):
            hidden = hide_broken_extensions(("sj_broken_ext", "json", "sj_not_installed_at_all"))
        assert hidden == ["sj_broken_ext"]
        assert sys.modules["sj_broken_ext"] is None and importlib.util.find_spec("sj_broken_ext") is None
        with pytest.raises(ImportError):
            import sj_broken_ext  # noqa: F401
        assert sys.modules["json"] is not None
    finally:
        sys.modules.pop("sj_broken_ext", None)
