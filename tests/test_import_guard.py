"""A package whose import raises is hidden (so transformers treats it as missing); others are not."""
import importlib.util
import sys

from sj_spikelm.import_guard import hide_unloadable_packages


def test_broken_package_is_hidden_and_working_one_kept(tmp_path, monkeypatch):
    (tmp_path / "broken_ext_pkg").mkdir()
    (tmp_path / "broken_ext_pkg" / "__init__.py").write_text(
        "from . import sub\nraise OSError('libc10_cuda.so: cannot open shared object file')\n")
    (tmp_path / "broken_ext_pkg" / "sub.py").write_text("")
    (tmp_path / "fine_pkg.py").write_text("VALUE = 1\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    for name in ("broken_ext_pkg", "broken_ext_pkg.sub", "fine_pkg"):
        monkeypatch.delitem(sys.modules, name, raising=False)
    hidden = hide_unloadable_packages(("broken_ext_pkg", "fine_pkg", "no_such_pkg_here"))
    assert hidden == ["broken_ext_pkg"]
    assert sys.modules["broken_ext_pkg"] is None and "broken_ext_pkg.sub" not in sys.modules
    assert importlib.util.find_spec("broken_ext_pkg") is None
    assert sys.modules["fine_pkg"].VALUE == 1
    assert hide_unloadable_packages(("broken_ext_pkg",)) == []  # already handled
