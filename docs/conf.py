"""Sphinx configuration of the docs site: the Markdown pages under docs/, read with MyST-Parser.

Built by .ci/run (and tests/test_docs.py checks the pages' code blocks):
    .venv/bin/sphinx-build -W --keep-going -q -b html docs .docs-build
"""

from __future__ import annotations

import re
from pathlib import Path

_INIT = Path(__file__).resolve().parents[1] / "airflow_provider_exports" / "__init__.py"

project = "airflow-provider-exports"
author = "airflow-provider-exports contributors"
release = re.search(r'__version__ = "([^"]+)"', _INIT.read_text())[1]  # type: ignore[index]
version = release

extensions = ["myst_parser"]
source_suffix = {".md": "markdown"}
root_doc = "index"
# the example DAGs and the snippets are included from their files, never pages of their own
exclude_patterns = ["snippets"]

# anchors for the headings (##, ###, ####) as GitHub makes them, so [text](page.md#heading) works
# on GitHub and here alike; a link to a heading that is not there is a warning, so an error in CI
myst_heading_anchors = 4
myst_enable_extensions = ["colon_fence"]
# a link to a file outside docs/ (../example_dags/x.py) is a link to the repository, not a page
myst_links_external_by_default = False

html_theme = "alabaster"
html_title = "airflow-provider-exports"
html_theme_options = {"description": "Audience and profile exports into S3 and SQL warehouses"}
