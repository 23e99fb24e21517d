"""The docs (the pages under docs/, and README.md, their landing page): every code block is run or checked.

- ``python`` blocks are either included from files the suite runs (``{literalinclude}`` of
  ``example_dags/*.py``, each run by its test in tests/example_dags/, or of ``docs/snippets/*.py``,
  each run here with the test kit against the sandbox), or test files a page shows (a first line
  ``# tests/<name>.py``), which tests/testing/test_plugin.py runs in a fresh project.
- ``bash`` blocks: every script, module, file, lock and extra they name exists, every ``--flag``
  they give a script is one that script reads, a wheel's name carries its distribution's version,
  and the JSON in them parses (each ``AIRFLOW_CONN_*`` into a connection our hook accepts).
- blocks without a language are text (the Layout tree, checked by tests/test_layout.py; the demo's
  output); any other kind of block fails here until it gets a check.
- README.md stays a landing page: at most 300 lines, and its links lead to files and headings
  that exist. The site itself is built by .ci/run (``sphinx-build -W``: warnings are errors).
"""

from __future__ import annotations

import importlib.util
import json
import os
import re
import shlex
from pathlib import Path

import pytest
import tomllib

from airflow_provider_exports import __version__
from tests.conftest import REPO

DOCS = REPO / "docs"
PAGES = sorted(DOCS.rglob("*.md"))
SNIPPETS = DOCS / "snippets"
FENCE = re.compile(r"^(`{3,})([^\n`]*)\n(.*?)^\1[ \t]*$", re.M | re.S)
#: the test files docs/sandbox.md shows, which tests/testing/test_plugin.py runs as written
PAGE_TEST_FILES = {
    ("sandbox.md", "tests/conftest.py"),
    ("sandbox.md", "tests/test_sitecore_dag.py"),
    ("sandbox.md", "tests/test_rate_limited.py"),
}
#: modules the docs run with ``python -m`` that are neither ours nor dependencies
EXTERNAL_MODULES = {"build"}  # PyPA's build, named as the alternative to ``uv build``
#: where a command's flags are read, beyond the script itself
FLAG_SOURCES = {
    "bash .ci/deployment": [".ci/deployment", "dev/deployment/__main__.py"],
    "bash .ci/demo": [".ci/demo", "sandbox/airflow_provider_exports_sandbox/demo.py"],
    "-m airflow_provider_exports_sandbox": ["sandbox/airflow_provider_exports_sandbox/__main__.py"],
    "-m dev.deployment": ["dev/deployment/__main__.py"],
    "bash .ci/soak": [".ci/soak", "dev/deployment/soak.py"],
    "-m dev.deployment.soak": ["dev/deployment/soak.py"],
}


def _blocks(path: Path) -> list[tuple[str, str]]:
    """(info string, body) of every fenced block of a page."""
    return [(info.strip(), body) for _fence, info, body in FENCE.findall(path.read_text())]


def _all_blocks() -> list[tuple[Path, str, str]]:
    return [(page, info, body) for page in [*PAGES, REPO / "README.md"] for info, body in _blocks(page)]


def _directives(name: str) -> list[tuple[Path, str, dict[str, str]]]:
    """(page, argument, ``:option: value`` options) of every MyST ``{name}`` block."""
    found = []
    for page, info, body in _all_blocks():
        directive, _, argument = info.partition(" ")
        if directive == f"{{{name}}}":
            found.append((page, argument.strip(), dict(re.findall(r"^:([\w-]+):\s*(.*)$", body, re.M))))
    return found


# -- every block has a check --------------------------------------------------------------------


def test_every_block_is_of_a_kind_that_is_checked():
    kinds = {info.split()[0] if info else "" for _page, info, _body in _all_blocks()}
    assert kinds <= {"", "python", "bash", "json", "{literalinclude}", "{include}", "{toctree}"}, kinds
    assert {"python", "bash", "{literalinclude}"} <= kinds  # the blocks were read


def test_json_blocks_parse():
    shown = [(page, body) for page, info, body in _all_blocks() if info == "json"]
    for page, body in shown:
        assert isinstance(json.loads(body), dict), page
    assert shown  # docs/soak.md's result line


def test_python_blocks_are_included_from_files_the_tests_run_or_are_test_files_the_kit_runs():
    shown = set()
    for page, info, body in _all_blocks():
        if info == "python":
            first = body.split("\n", 1)[0]
            assert re.fullmatch(r"# tests/\w+\.py", first), (
                f"{page.relative_to(REPO)}: a python block that is no test file; include a file the "
                f"tests run instead ({{literalinclude}} of example_dags/ or docs/snippets/)"
            )
            shown.add((str(page.relative_to(DOCS)), first[2:]))
            compile(body, first[2:], "exec")
    assert shown == PAGE_TEST_FILES


def _included() -> list[tuple[Path, Path, dict[str, str]]]:
    return [(page, (page.parent / arg).resolve(), options) for page, arg, options in _directives("literalinclude")]


def test_literal_includes_are_example_dags_or_snippets_that_the_tests_run():
    included = _included()
    assert len(included) >= 5
    for page, target, options in included:
        where = f"{page.relative_to(REPO)}: {target}"
        assert target.is_file(), where
        assert options.get("language") == "python", where
        if target.parent == REPO / "example_dags":
            assert (REPO / "tests" / "example_dags" / f"test_{target.stem}.py").is_file(), where
        else:
            assert target.parent == SNIPPETS, f"{where}: include example_dags/ or docs/snippets/ only"
        for marker in ("start-at", "start-after", "end-at", "end-before"):
            if marker in options:
                assert options[marker].strip('"') in target.read_text(), f"{where}: {marker}"
    # every snippet is on a page, and run below
    snippets = {t.name for _p, t, _o in included if t.parent == SNIPPETS}
    assert snippets == {p.name for p in SNIPPETS.glob("*.py")} == set(SNIPPET_RUNS)


def test_included_text_comes_from_markers_that_are_there():
    includes = _directives("include")
    assert len(includes) == 2  # the README's introduction and install commands
    for page, argument, options in includes:
        text = (page.parent / argument).read_text()
        for marker in ("start-after", "end-before"):
            assert text.count(options[marker]) == 1, f"{page.relative_to(REPO)}: {options[marker]}"


# -- the snippets, run ----------------------------------------------------------------------------


def _run_object_storage_snippet(sandbox, s3, load_dag, run_dag, monkeypatch) -> None:
    monkeypatch.setenv("AIRFLOW_VAR_EXPORTS_LAKE", f"s3://{s3.bucket}")
    monkeypatch.setenv("AIRFLOW_VAR_EXPORTS_LAKE_CONN_ID", "aws_default")
    sandbox.sitecore.add_export("daily_loyalty_members")
    ref = sandbox.sitecore.add_job("daily_loyalty_members", rows=500)

    run = run_dag(load_dag(SNIPPETS / "sitecore_cdp_to_object_storage.py"))

    assert run.state == "success"
    prefix = f"raw/sitecore/ds={run.logical_date:%Y-%m-%d}"
    manifest = s3.manifest(prefix)
    assert manifest["job_ref"] == ref
    assert manifest["destination"] == {"kind": "object_storage", "url": f"s3://{s3.bucket}/{prefix}"}
    assert sorted(f["name"] for f in manifest["files"]) == sorted(n for n, *_ in sandbox.sitecore.expected_files(ref))


SNIPPET_RUNS = {"sitecore_cdp_to_object_storage.py": _run_object_storage_snippet}


@pytest.mark.parametrize("snippet", sorted(SNIPPET_RUNS))
def test_each_snippet_runs_against_the_sandbox(
    snippet, exports_sandbox, exports_s3, exports_load_dag, exports_run_dag, monkeypatch
):
    SNIPPET_RUNS[snippet](exports_sandbox, exports_s3, exports_load_dag, exports_run_dag, monkeypatch)


# -- shell blocks ---------------------------------------------------------------------------------


def _commands(body: str) -> list[list[str]]:
    """The block's commands as shell words, comments dropped but for the alternatives they give
    (``# or: <command>``); lines are joined where a quote or a trailing backslash goes on."""
    commands, pending = [], ""
    for alternative in re.findall(r"# or: (.+)$", body, re.M):
        for command in alternative.split(" && "):
            commands.append(shlex.split(command))
    for line in body.splitlines():
        pending = f"{pending}\n{line}" if pending else line
        if pending.endswith("\\"):
            pending = pending[:-1]
            continue
        try:
            words = shlex.split(pending, comments=True)
        except ValueError:  # a quote still open: the command goes on
            continue
        pending = ""
        if words:
            commands.append(words)
    assert not pending, f"unfinished command: {pending!r}"
    return commands


def _bash_blocks() -> list[tuple[str, str]]:
    return [(str(page.relative_to(REPO)), body) for page, info, body in _all_blocks() if info == "bash"]


def _flag_sources(words: list[str]) -> list[Path]:
    text = " ".join(words)
    sources = [src for key, srcs in FLAG_SOURCES.items() if re.search(re.escape(key) + r"(\s|$)", text) for src in srcs]
    sources += [w for w in words if w.endswith(".py") and "/" in w and not w.startswith("dist/")]
    return [REPO / s for s in sources]


def test_shell_blocks_name_what_exists():
    extras = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["optional-dependencies"]
    checked = 0
    for where, body in _bash_blocks():
        for words in _commands(body):
            for i, word in enumerate(words):
                if word == "-m" and i + 1 < len(words):
                    module = words[i + 1]
                    assert module in EXTERNAL_MODULES or importlib.util.find_spec(module), f"{where}: -m {module}"
                    checked += 1
                elif word == "bash" and i + 1 < len(words):
                    assert (REPO / words[i + 1]).is_file(), f"{where}: bash {words[i + 1]}"
                    checked += 1
                elif word in ("-c", "-o") and "pip" in words:
                    assert (REPO / words[i + 1]).is_file(), f"{where}: {word} {words[i + 1]}"
                    checked += 1
                elif word == "-e":
                    path = re.sub(r"\[[\w,-]+\]$", "", words[i + 1])
                    assert (REPO / path / "pyproject.toml").is_file(), f"{where}: -e {words[i + 1]}"
                    checked += 1
                elif re.fullmatch(r"[\w/.-]+\.(py|lock)", word) and "/" in word:
                    assert (REPO / word).is_file(), f"{where}: {word}"
                    checked += 1
                for named in re.findall(r"^\.\[([\w,-]+)\]$", word):
                    for extra in named.split(","):
                        assert extra in extras, f"{where}: no extra {extra!r} in pyproject.toml"
                        checked += 1
                wheel = re.fullmatch(r"dist/([\w]+)-([\w.]+)-py3-none-any\.whl(\[[\w,-]+\])?", word)
                if wheel:
                    assert wheel[1] in ("airflow_provider_exports", "airflow_provider_exports_sandbox"), word
                    assert wheel[2] == __version__, f"{where}: {word} is not version {__version__}"
                    checked += 1
    assert checked >= 30


def test_the_flags_shell_blocks_give_a_script_are_the_scripts_own():
    checked = 0
    for where, body in _bash_blocks():
        for words in _commands(body):
            sources = _flag_sources(words)
            if not sources:
                continue
            text = "".join(path.read_text() for path in sources)
            flags = [w.strip("[]").split("=", 1)[0] for w in words]
            for flag in (f for f in flags if re.fullmatch(r"--[a-z][\w-]*", f)):
                assert f'"{flag}"' in text or f"{flag}" in text.split(), f"{where}: {flag} ({words[:3]}...)"
                checked += 1
            for verb in (w for w in words if w == "publish-job"):
                assert f'"{verb}"' in text, f"{where}: {verb}"
    assert checked >= 20


def _json_in(body: str) -> list[str]:
    """The single-quoted JSON objects of a shell block."""
    return re.findall(r"'(\{.*?\})'", body, re.S)


def test_the_json_in_shell_blocks_parses_and_its_connections_are_accepted():
    from airflow_provider_exports.get_provider_info import get_provider_info

    hooks = {c["connection-type"]: c["hook-class-name"] for c in get_provider_info()["connection-types"]}
    connections = 0
    for where, body in _bash_blocks():
        for text in _json_in(body):
            try:
                value = json.loads(text)
            except json.JSONDecodeError as exc:
                pytest.fail(f"{where}: {exc} in {text}")
            if "conn_type" not in value:
                continue
            assert value["conn_type"] in hooks, f"{where}: {value['conn_type']} is no type of ours"
            if "connection_id" in value:  # the REST test of a stored connection: run below
                continue
            extra = value.get("extra", {})
            extra = json.loads(extra) if isinstance(extra, str) else extra
            module, _, name = hooks[value["conn_type"]].rpartition(".")
            hook = getattr(importlib.import_module(module), name)("docs")
            hook._settings_of(value.get("login"), value.get("password"), extra)  # raises naming a bad field
            connections += 1
    assert connections >= 4  # the three connection pages, allowed_hosts


# -- the Test button's REST workaround, run as written ----------------------------------------------

ADMIN_PASSWORD = "docs-admin-password"


def _rest_workaround() -> str:
    """The REST half of docs/errors.md's Test-button block, its placeholders filled in."""
    page = (DOCS / "errors.md").read_text()
    block = next(body for info, body in _blocks(DOCS / "errors.md") if "/api/v2/connections/test" in body)
    assert page.count("/api/v2/connections/test") == 1
    script = block[block.index("# 2. the REST API") :]
    assert "<user>" in script and "<password>" in script
    return script.replace("<user>", "admin").replace("<password>", ADMIN_PASSWORD)


@pytest.fixture
def api_server(exports_airflow_db, tmp_path, monkeypatch):
    """Airflow's API (the api-server's app) served on a loopback port in a thread, with the simple
    auth manager and one user, ``admin``; yields its URL."""
    import socket
    import threading
    import time

    import uvicorn

    passwords = tmp_path / "passwords.json"
    passwords.write_text(json.dumps({"admin": ADMIN_PASSWORD}))
    monkeypatch.setenv("AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_USERS", "admin:admin")
    monkeypatch.setenv("AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_PASSWORDS_FILE", str(passwords))
    from airflow.api_fastapi.app import create_app, purge_cached_app

    app = create_app(apps="core")
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    server = uvicorn.Server(uvicorn.Config(app, log_level="warning", lifespan="off"))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started:
        assert thread.is_alive() and time.monotonic() < deadline, "the API did not start"
        time.sleep(0.05)
    yield f"http://127.0.0.1:{sock.getsockname()[1]}"
    server.should_exit = True
    thread.join(10)
    sock.close()
    purge_cached_app()  # the auth manager made for this app goes with it


def _airflow_version() -> tuple[int, int]:
    from airflow import __version__ as airflow_version
    from packaging.version import Version

    return Version(airflow_version).release[:2]  # type: ignore[return-value]


def _run_rest_workaround(url: str) -> str:
    import subprocess

    result = subprocess.run(
        ["bash", "-c", _rest_workaround()],
        env={"PATH": "/usr/bin:/bin", "AIRFLOW_URL": url},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    return result.stdout


def test_the_rest_workaround_for_the_test_button_runs_as_written(exports_sandbox, api_server, monkeypatch):
    # the stored connection: the kit's AIRFLOW_CONN_SITECORE_CDP_DEFAULT, pointing at the sandbox
    monkeypatch.delenv("AIRFLOW__CORE__TEST_CONNECTION", raising=False)
    refused = _run_rest_workaround(api_server)
    assert "Testing connections is disabled" in refused, refused

    monkeypatch.setenv("AIRFLOW__CORE__TEST_CONNECTION", "Enabled")
    answer = json.loads(_run_rest_workaround(api_server))
    if _airflow_version() < (3, 3):  # tests only the body's fields (the page says so)
        assert answer["status"] is False and "login: the Sitecore CDP API key" in answer["message"], answer
        return
    assert answer["status"] is True, answer
    assert exports_sandbox.sitecore.requests_to("/v2/audienceExports/*", "GET")  # it did read the API

    conn = json.loads(os.environ["AIRFLOW_CONN_SITECORE_CDP_DEFAULT"])
    monkeypatch.setenv("AIRFLOW_CONN_SITECORE_CDP_DEFAULT", json.dumps(conn | {"password": "wrong-secret-value"}))
    text = _run_rest_workaround(api_server)
    answer = json.loads(text)
    assert answer["status"] is False and "password (the API secret)" in answer["message"], answer
    assert "wrong-secret-value" not in text and conn["password"] not in text


# -- the README, a landing page ---------------------------------------------------------------------


def _slug(heading: str) -> str:
    """GitHub's (and MyST's) anchor of a heading."""
    text = re.sub(r"[^\w\- ]", "", heading.strip().lower().replace("`", ""))
    return text.replace(" ", "-")


def _anchors(page: Path) -> set[str]:
    text = FENCE.sub("", page.read_text())
    return {_slug(h) for h in re.findall(r"^#{1,6} (.+)$", text, re.M)}


def test_the_readme_is_a_landing_page_of_at_most_300_lines():
    lines = (REPO / "README.md").read_text().splitlines()
    assert len(lines) <= 300, f"README.md has {len(lines)} lines: move the detail into docs/"


def test_the_readmes_links_lead_to_files_and_headings_that_exist():
    readme = REPO / "README.md"
    links = re.findall(r"\]\(([^)\s]+)\)", FENCE.sub("", readme.read_text()))
    local = [link for link in links if not re.match(r"[a-z]+://", link)]
    assert len(local) >= 20
    for link in local:
        path, _, anchor = link.partition("#")
        target = (REPO / path) if path else readme
        assert target.exists(), f"README.md links to {path}, which does not exist"
        if anchor:
            assert anchor in _anchors(target), f"README.md links to {link}: no such heading"
