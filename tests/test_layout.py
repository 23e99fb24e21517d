"""The docs' Layout page (docs/layout.md) names what is there: every file and folder it names exists, and every
runtime module lies in a folder it names (a module added in a new folder must be placed there)."""

from __future__ import annotations

import re

from tests.conftest import REPO

#: the width of the tree's name column in the Layout page's block
NAME_COLUMN = 36
TOKEN = re.compile(r"[\w<>./-]+")


def _layout_block() -> list[str]:
    text = (REPO / "docs" / "layout.md").read_text()
    section = text[text.index("# Layout\n") :]
    return section.split("```\n", 2)[1].splitlines()


def _named_paths() -> tuple[set[str], set[str]]:
    """(folders, files) the Layout block names, as paths from the repository root."""
    folders: set[str] = set()
    files: set[str] = set()
    parents: list[tuple[int, list[str]]] = []  # (indent, the folders a name line opened)
    here: list[str] = [""]
    for line in _layout_block():
        name, description = line[:NAME_COLUMN], line[NAME_COLUMN:]
        if name.strip():
            indent = len(name) - len(name.lstrip())
            while parents and parents[-1][0] >= indent:
                parents.pop()
            base = parents[-1][1] if parents else [""]
            names = TOKEN.findall(name)
            opened = [b + n for b in base for n in names if n.endswith("/")]
            files.update(b + n for b in base for n in names if n.endswith(".py"))
            if opened:
                parents.append((indent, opened))
                here = opened
            else:
                here = base
            folders.update(opened)
        for token in TOKEN.findall(description):
            if "<" in token or not (token.endswith(".py") or token.endswith("/")):
                continue
            candidates = {h + token for h in here}
            found = [c for c in candidates if (REPO / c).exists()]
            (folders if token.endswith("/") else files).add(found[0] if found else sorted(candidates)[0])
    return folders, files


def test_every_path_the_layout_names_exists():
    folders, files = _named_paths()
    assert "airflow_provider_exports/transfers/engine/sql/" in folders
    assert "airflow_provider_exports/hooks/_http.py" in files
    missing = sorted(p for p in folders | files if not (REPO / p).exists())
    assert missing == [], f"docs/layout.md names paths that do not exist: {missing}"


def test_every_runtime_module_lies_in_a_folder_the_layout_names():
    folders, _ = _named_paths()
    package = REPO / "airflow_provider_exports"
    unplaced = sorted(
        str(path.relative_to(REPO))
        for path in package.rglob("*.py")
        if str(path.parent.relative_to(REPO)) + "/" not in folders
    )
    assert unplaced == [], f"runtime modules in folders docs/layout.md does not name: {unplaced}"


def _lines(path: str) -> int:
    return len((REPO / "airflow_provider_exports" / path).read_bytes().splitlines())


def test_what_a_fourth_vendor_writes_is_measured_from_sitecore_cdps_files():
    """The table's figures are Sitecore CDP's files as they are (update docs/layout.md with the code)."""
    text = (REPO / "docs" / "layout.md").read_text()
    section = text[text.index("## What a fourth vendor writes") :]
    rows = [line.split("|")[1:-1] for line in section.splitlines() if line.startswith("| `")]
    checked = 0
    for first, _what, figure in rows:
        paths = [p.replace("<vendor>", "sitecore_cdp") for p in re.findall(r"`([\w/<>.]+\.py)`", first)]
        if len(paths) == 1 and "/" in paths[0]:
            assert _lines(paths[0]) == int(figure), paths[0]
            checked += 1
        elif "_to_s3.py" in first:
            operators = [f"transfers/sitecore_cdp_to_{d}.py" for d in ("s3", "sql", "object_storage")]
            sizes = [_lines(p) for p in operators]
            assert figure.strip() == f"{min(sizes)}\u2013{max(sizes)} each"
            checked += 1
    assert checked == 5
    from dev.code_size import measure

    measured = measure()
    total = measured["vendors"]["Sitecore CDP"], measured["vendor_code_lines"]["Sitecore CDP"]
    assert f"together: {total[0]:,} lines, {total[1]:,} of them code lines" in " ".join(section.split())


def test_no_runtime_module_is_over_600_lines():
    """Modules are cut by responsibility (issue 17); ``python dev/code_size.py`` prints the figures."""
    from dev.code_size import TARGETS, modules

    over = {m: n for m, n in modules().items() if n > TARGETS["module_lines"]}
    assert over == {}, f"runtime modules over {TARGETS['module_lines']} lines: {over}"


def test_code_lines_leave_out_docstrings_comments_and_blank_lines(tmp_path):
    """What ``dev/code_size.py`` prints as code lines: the lines no rewording of prose shrinks."""
    from dev.code_size import code_lines

    module = tmp_path / "m.py"
    module.write_text(
        '"""A module.\n\nIts docstring."""\n\n# a comment\nimport os\n\n\nclass A:\n'
        '    """A class."""\n\n    x = "not a docstring"\n\n    def f(self):\n'
        '        """One line."""\n        return os.sep  # a trailing comment\n',
        encoding="utf-8",
    )
    assert code_lines(module) == 5  # import, class, x, def, return
