"""The code keeps the shape a newcomer can read: no import circles, no file over 400 lines, no function over 80."""

from tests import structure


def test_no_import_circles_long_files_or_long_functions():
    problems = structure.findings()
    assert not problems, "\n".join(problems)


def test_the_check_sees_a_circle_and_a_deferred_import(tmp_path):
    """The checker itself: a circle made only by an import inside a function is still a circle."""
    package = tmp_path / "pkg"
    package.mkdir()
    (package / "__init__.py").write_text("")
    (package / "a.py").write_text("from pkg import b\n")
    (package / "b.py").write_text("def later():\n    from pkg import a\n")
    (package / "c.py").write_text("from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from pkg import a\n")
    found = structure.modules(tmp_path, "pkg")
    assert structure.circles(structure.import_graph(found)) == [["pkg.a", "pkg.b"]]
