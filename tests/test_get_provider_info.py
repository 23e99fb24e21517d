"""The provider metadata Airflow discovers, checked the way Airflow's own provider checks do.

Modelled on Airflow's ``run_provider_yaml_files_check`` (schema, every module listed, every class
importable) plus what a third-party package must add: the distribution name, the hooks agreeing with
the declarative connection forms, secrets only in the masked password field, import without I/O,
and discovery through the real ``airflow`` CLI (an unregistered ``--conn-type`` silently becomes
``generic``, so ``connections add`` + ``get`` proves the types are registered).

The two subprocess tests (CLI, import guard) pay for an Airflow start-up each: about 15 s together.
"""

from __future__ import annotations

import importlib
import importlib.metadata
import importlib.util
import inspect
import json
import os
import re
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from dataclasses import fields, is_dataclass
from pathlib import Path
from typing import Any

import pytest
from packaging.utils import canonicalize_name

import airflow_provider_exports
from airflow_provider_exports.exceptions import ExportConfigError
from airflow_provider_exports.get_provider_info import get_provider_info

PACKAGE = airflow_provider_exports.__name__
PACKAGE_DIR = Path(airflow_provider_exports.__file__).resolve().parent
ENTRY_POINT_GROUP = "apache_airflow_provider"
ENTRY_POINT_VALUE = f"{PACKAGE}.get_provider_info:get_provider_info"
# Directories whose public modules must all be listed (Airflow's run_provider_yaml_files_check).
# Only the top level of each: transfers/engine/ is internal.
LISTED_KINDS = ("hooks", "sensors", "triggers", "operators", "transfers")
# The smallest valid extras of each connection type (for the password checks).
MINIMAL_EXTRAS: dict[str, dict[str, str]] = {
    "sitecore_cdp": {"region": "EU"},
    "cordial": {},
    "adobe_aep": {"ims_org_id": "0123456789ABCDEF@AdobeOrg", "sandbox_name": "prod"},
}
CLI_TIMEOUT = 120

INFO = get_provider_info()
CONN_TYPES: dict[str, dict[str, Any]] = {ct["connection-type"]: ct for ct in INFO.get("connection-types", [])}


def _import_object(path: str) -> Any:
    module, _, name = path.rpartition(".")
    return getattr(importlib.import_module(module), name)


def _listed_modules(kind: str) -> list[str]:
    if kind == "transfers":
        return [t["python-module"] for t in INFO.get("transfers", [])]
    return [m for entry in INFO.get(kind, []) for m in entry.get("python-modules", [])]


def _public_modules_on_disk(kind: str) -> list[str]:
    folder = PACKAGE_DIR / kind
    if not folder.is_dir():
        return []
    return sorted(f"{PACKAGE}.{kind}.{p.stem}" for p in folder.glob("*.py") if not p.name.startswith("_"))


def _all_public_modules() -> list[str]:
    """Every module of the package without a ``_`` in its dotted path (``__init__`` counts as its package)."""
    names = []
    for path in sorted(PACKAGE_DIR.rglob("*.py")):
        parts = list(path.relative_to(PACKAGE_DIR).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts.pop()
        if any(p.startswith("_") for p in parts):
            continue
        names.append(".".join([PACKAGE, *parts]))
    return names


def _hook_class(conn_type: str) -> type:
    return _import_object(CONN_TYPES[conn_type]["hook-class-name"])


def _subprocess_env() -> dict[str, str]:
    """The test session's Airflow settings (temp AIRFLOW_HOME, its DB) without any injected connection."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("AIRFLOW_CONN_")}
    env["PYTHONWARNINGS"] = "ignore"
    return env


# ---------------------------------------------------------------------------------------------
# schema and identity


def test_validates_against_core_provider_info_schema() -> None:
    import airflow
    import jsonschema

    schema_path = Path(airflow.__file__).parent / "provider_info.schema.json"
    schema = json.loads(schema_path.read_text())
    validator_cls = jsonschema.validators.validator_for(schema)
    validator_cls.check_schema(schema)
    errors = sorted(validator_cls(schema).iter_errors(INFO), key=lambda e: list(e.path))
    assert not errors, "\n".join(f"{list(e.path)}: {e.message}" for e in errors)


def test_package_name_is_the_distribution_name() -> None:
    """Discovery raises when they differ (core ``providers_discovery.py``)."""
    dist = importlib.metadata.distribution(INFO["package-name"])
    assert canonicalize_name(dist.metadata["Name"]) == INFO["package-name"]
    ours = [ep for ep in dist.entry_points if ep.group == ENTRY_POINT_GROUP]
    assert [ep.value for ep in ours] == [ENTRY_POINT_VALUE]
    assert ours[0].load() is get_provider_info


def test_version_is_the_package_version() -> None:
    assert INFO["versions"][0] == airflow_provider_exports.__version__
    assert importlib.metadata.version(INFO["package-name"]) == airflow_provider_exports.__version__


def test_integration_names_are_unique_and_every_reference_resolves() -> None:
    names = [i["integration-name"] for i in INFO.get("integrations", [])]
    assert len(names) == len(set(names)), names
    for kind in ("hooks", "sensors", "triggers", "operators"):
        for entry in INFO.get(kind, []):
            assert entry["integration-name"] in names, (kind, entry)
    for transfer in INFO.get("transfers", []):
        ends = {transfer["source-integration-name"], transfer["target-integration-name"]}
        assert ends & set(names), transfer


# ---------------------------------------------------------------------------------------------
# modules and classes


def _listed_class_paths() -> Iterator[str]:
    for ct in INFO.get("connection-types", []):
        yield ct["hook-class-name"]
    yield from INFO.get("extra-links", [])
    yield from INFO.get("notifications", [])


@pytest.mark.parametrize("class_path", list(_listed_class_paths()))
def test_every_listed_class_imports(class_path: str) -> None:
    assert class_path.startswith(f"{PACKAGE}."), f"{class_path} is outside {PACKAGE}"
    obj = _import_object(class_path)
    assert inspect.isclass(obj), class_path


@pytest.mark.parametrize("kind", LISTED_KINDS)
def test_every_listed_module_imports(kind: str) -> None:
    for module in _listed_modules(kind):
        assert module.startswith(f"{PACKAGE}.{kind}."), f"{module} is listed under {kind}"
        importlib.import_module(module)


@pytest.mark.parametrize("kind", LISTED_KINDS)
def test_every_public_module_is_listed(kind: str) -> None:
    """As in Airflow's provider checks; modules starting with ``_`` and sub-packages are internal."""
    missing = sorted(set(_public_modules_on_disk(kind)) - set(_listed_modules(kind)))
    assert not missing, f"get_provider_info() does not list these {kind} modules: {missing}"
    listed_twice = {m for m in _listed_modules(kind) if _listed_modules(kind).count(m) > 1}
    assert not listed_twice, listed_twice


def test_extra_links_are_operator_links() -> None:
    from airflow.providers.common.compat.sdk import BaseOperatorLink

    for path in INFO.get("extra-links", []):
        assert issubclass(_import_object(path), BaseOperatorLink), path


def test_every_hook_with_a_conn_type_is_a_connection_type() -> None:
    """A hook class in a listed hooks module with its own ``conn_type`` must be declared."""
    from airflow.providers.common.compat.sdk import BaseHook

    declared = {ct["hook-class-name"] for ct in INFO.get("connection-types", [])}
    found = set()
    for module_name in _listed_modules("hooks"):
        module = importlib.import_module(module_name)
        for _, cls in inspect.getmembers(module, inspect.isclass):
            if (
                cls.__module__ == module_name
                and issubclass(cls, BaseHook)
                and not inspect.isabstract(cls)
                and "conn_type" in vars(cls)
            ):
                found.add(f"{module_name}.{cls.__name__}")
    assert found == declared


# ---------------------------------------------------------------------------------------------
# hooks agree with the declarative connection forms


@pytest.mark.parametrize("conn_type", sorted(CONN_TYPES))
def test_hook_identity_matches_provider_info(conn_type: str) -> None:
    entry = CONN_TYPES[conn_type]
    hook = _hook_class(conn_type)
    assert hook.conn_type == conn_type
    assert hook.hook_name == entry["hook-name"]
    assert hook.conn_name_attr == f"{conn_type}_conn_id"
    assert hook.default_conn_name == f"{conn_type}_default"
    # The conn-id parameter is named after conn_name_attr and defaults to default_conn_name.
    param = inspect.signature(hook.__init__).parameters[hook.conn_name_attr]
    assert param.default == hook.default_conn_name
    hook_modules = _listed_modules("hooks")
    assert hook.__module__ in hook_modules, f"{hook.__module__} is not under hooks python-modules"


@pytest.mark.parametrize("conn_type", sorted(CONN_TYPES))
def test_hook_ui_field_behaviour_matches_provider_info(conn_type: str) -> None:
    """Airflow < 3.2 reads the hook, 3.2+ the dict: both must hide and relabel the same fields."""
    declared = CONN_TYPES[conn_type]["ui-field-behaviour"]
    behaviour = _hook_class(conn_type).get_ui_field_behaviour()
    assert sorted(behaviour["hidden_fields"]) == sorted(declared["hidden-fields"])
    assert behaviour["relabeling"] == declared["relabeling"]


@pytest.mark.parametrize("conn_type", sorted(CONN_TYPES))
def test_hook_defines_ui_field_behaviour_itself(conn_type: str) -> None:
    """Airflow 3.1 reads ``get_ui_field_behaviour`` only from the hook class's own ``__dict__``."""
    assert "get_ui_field_behaviour" in vars(_hook_class(conn_type))


# ---------------------------------------------------------------------------------------------
# secrets live in the password field, which Airflow masks


def _secrets_masker_module() -> Any:
    for name in (
        "airflow.sdk._shared.secrets_masker",
        "airflow._shared.secrets_masker",
        "airflow.sdk.execution_time.secrets_masker",
        "airflow.utils.log.secrets_masker",
    ):
        try:
            module = importlib.import_module(name)
        except ImportError:
            continue
        if hasattr(module, "DEFAULT_SENSITIVE_FIELDS"):
            return module
    pytest.fail("DEFAULT_SENSITIVE_FIELDS not found in the installed Airflow")


def _normalise(name: str) -> str:
    """As ``SecretsMasker.should_hide_value_for_key`` does."""
    return re.sub(r"\W+", "_", name.strip().lower())


# Names a reader would take for a secret even where Airflow's substring list would miss them
# (``x-api-key`` does not contain ``api_key`` until normalised; ``credential`` is not in the list).
_LOOKS_SECRET = re.compile(r"secret|token|passw|pwd|api_?key|private|credential|bearer|auth_?header")


def test_masker_hides_the_password_field() -> None:
    masker = _secrets_masker_module()
    assert "password" in masker.DEFAULT_SENSITIVE_FIELDS
    assert masker.should_hide_value_for_key("password")


@pytest.mark.parametrize("conn_type", sorted(CONN_TYPES))
def test_no_conn_field_is_a_secret(conn_type: str) -> None:
    """Extras are masked only by name: none of ours may hold a secret, or look like one."""
    masker = _secrets_masker_module()
    for name in CONN_TYPES[conn_type].get("conn-fields", {}):
        normalised = _normalise(name)
        matched = [s for s in masker.DEFAULT_SENSITIVE_FIELDS if s in normalised]
        assert not matched, (
            f"{conn_type} extra {name!r} would be masked ({matched}): keep secrets in password"
        )
        assert not masker.should_hide_value_for_key(name), name
        assert not _LOOKS_SECRET.search(normalised), f"{conn_type} extra {name!r} looks like a secret"


@pytest.mark.parametrize("conn_type", sorted(CONN_TYPES))
def test_the_secret_is_the_password_field(conn_type: str) -> None:
    """The form shows a labelled password; the hook reads its secret from it, never from extras."""
    behaviour = CONN_TYPES[conn_type]["ui-field-behaviour"]
    assert "password" not in behaviour["hidden-fields"]
    assert behaviour["relabeling"].get("password"), "label the password field with the vendor's name"

    hook = _hook_class(conn_type)
    assert conn_type in MINIMAL_EXTRAS, f"add the minimal extras of {conn_type} to MINIMAL_EXTRAS"
    extras = MINIMAL_EXTRAS[conn_type]
    sentinel = "pw-SENTINEL-0123456789"
    # A secret put in an extra is not picked up: the password stays required.
    stray = dict.fromkeys(("password", "client_secret", "api_key", "secret", "token"), sentinel)
    with pytest.raises(ExportConfigError) as err:
        hook.settings_from_connection("client-id", None, {**extras, **stray})
    assert err.value.field == "password"

    settings = hook.settings_from_connection("client-id", sentinel, extras)
    assert sentinel not in repr(settings)
    if is_dataclass(settings):
        holding = [f for f in fields(settings) if getattr(settings, f.name) == sentinel]
        assert holding, "the password does not reach the settings"
        assert all(not f.repr for f in holding), [f.name for f in holding]


# ---------------------------------------------------------------------------------------------
# subprocess: import without I/O, and discovery through the real CLI

_IMPORT_GUARD = textwrap.dedent(
    """
    import importlib, json, socket, sys

    def _no_network(*args, **kwargs):
        raise RuntimeError(f"network I/O while importing: {args!r}")

    socket.socket.connect = _no_network
    socket.socket.connect_ex = _no_network
    socket.create_connection = _no_network
    socket.getaddrinfo = _no_network

    import airflow  # what Airflow itself loads is not ours (3.1 loads psycopg2 when installed)

    before = set(sys.modules)
    for name in json.loads(sys.argv[1]):
        importlib.import_module(name)
    print(json.dumps(sorted(set(sys.modules) - before)))
    """
)
# Optional heavy modules (TOOLCHAIN.md: imported inside the methods that need them).
_HEAVY = ("pyarrow", "pandas", "polars", "psycopg", "psycopg2", "moto", "openapi_core")


def test_importing_public_modules_does_no_io(tmp_path: Path) -> None:
    modules = _all_public_modules()
    assert f"{PACKAGE}.hooks.sitecore_cdp" in modules
    cwd = tmp_path / "cwd"
    cwd.mkdir()
    proc = subprocess.run(
        [sys.executable, "-c", _IMPORT_GUARD, json.dumps(modules)],
        cwd=cwd,
        env=_subprocess_env(),
        capture_output=True,
        text=True,
        timeout=CLI_TIMEOUT,
        stdin=subprocess.DEVNULL,
    )
    assert proc.returncode == 0, proc.stderr[-4000:]
    loaded = set(json.loads(proc.stdout.strip().splitlines()[-1]))  # on top of `import airflow`
    assert not sorted(m for m in _HEAVY if m in loaded), "heavy optional modules imported at import time"
    assert not list(cwd.iterdir()), "importing wrote files into the working directory"


# The CLI's own entry point (``airflow.__main__.main``, what the ``airflow`` script runs), called for
# several commands in ONE process: each separate ``airflow`` start-up costs 7-8 s.
_CLI_DRIVER = textwrap.dedent(
    """
    import contextlib, io, json, sys, warnings
    from airflow.__main__ import main

    results = []
    for argv in json.loads(sys.argv[1]):
        sys.argv = ["airflow", *argv]
        out, code = io.StringIO(), 0
        with warnings.catch_warnings(record=True) as caught, contextlib.redirect_stdout(out):
            warnings.simplefilter("always")
            try:
                main()
            except SystemExit as exc:
                code = exc.code
        results.append({
            "argv": argv,
            "code": code,
            "stdout": out.getvalue(),
            "warnings": [str(w.message) for w in caught if issubclass(w.category, UserWarning)],
        })
    print("@@RESULTS@@" + json.dumps(results))
    """
)


def _json_output(result: dict[str, Any]) -> Any:
    assert result["code"] in (0, None), result
    text = result["stdout"]
    start = min(i for i in (text.find("["), text.find("{")) if i >= 0)
    return json.loads(text[start:])


def test_airflow_cli_discovers_the_provider_and_its_connection_types(airflow_db: Path) -> None:
    conn_ids = {ct: f"provider_info_check_{ct}" for ct in CONN_TYPES}
    commands: list[list[str]] = [["providers", "list", "-o", "json"], ["providers", "hooks", "-o", "json"]]
    for conn_type, conn_id in conn_ids.items():
        commands.append(
            [
                "connections", "add", conn_id,
                "--conn-type", conn_type,
                "--conn-login", "client-id",
                "--conn-password", "pw-secret-value",
                "--conn-extra", json.dumps(MINIMAL_EXTRAS.get(conn_type, {})),
            ]
        )  # fmt: skip
        commands.append(["connections", "get", conn_id, "-o", "json"])

    proc = subprocess.run(
        [sys.executable, "-c", _CLI_DRIVER, json.dumps(commands)],
        env=_subprocess_env(),
        capture_output=True,
        text=True,
        timeout=CLI_TIMEOUT,
        stdin=subprocess.DEVNULL,
    )
    assert proc.returncode == 0, proc.stderr[-4000:]
    marker = proc.stdout.rfind("@@RESULTS@@")
    assert marker >= 0, (proc.stdout[-2000:], proc.stderr[-4000:])
    results = json.loads(proc.stdout[marker + len("@@RESULTS@@") :])
    providers, hooks, *conn_results = results

    packages = {p["package_name"]: p for p in _json_output(providers)}
    assert INFO["package-name"] in packages, sorted(packages)
    assert packages[INFO["package-name"]]["version"] == airflow_provider_exports.__version__

    by_type = {h["connection_type"]: h for h in _json_output(hooks)}
    for conn_type in ("sitecore_cdp", "cordial", "adobe_aep"):
        assert conn_type in CONN_TYPES, f"{conn_type} is not declared"
        assert conn_type in by_type, f"{conn_type} not discovered"
        assert by_type[conn_type]["class"] == CONN_TYPES[conn_type]["hook-class-name"]
        assert by_type[conn_type]["package_name"] == INFO["package-name"]
    for conn_type, entry in CONN_TYPES.items():
        assert by_type[conn_type]["class"] == entry["hook-class-name"]
        assert by_type[conn_type]["conn_id_attribute_name"] == _hook_class(conn_type).conn_name_attr

    for (conn_type, conn_id), added, got in zip(
        conn_ids.items(), conn_results[::2], conn_results[1::2], strict=True
    ):
        assert added["code"] in (0, None), added
        invalid = [w for w in added["warnings"] if "invalid" in w.lower()]
        assert not invalid, invalid
        (conn,) = _json_output(got)
        assert conn["conn_id"] == conn_id
        assert conn["conn_type"] == conn_type, (
            f"{conn_type} was not registered (stored as {conn['conn_type']})"
        )


# ---------------------------------------------------------------------------------------------
# the connection forms where the UI reads them: a real `airflow api-server`

API_SERVER_START_TIMEOUT = 300  # seconds; about 10 on a quiet machine, far more on a busy one


def _airflow_version() -> tuple[int, int]:
    from airflow import __version__
    from packaging.version import Version

    release = Version(__version__).release
    return release[0], release[1]


@pytest.fixture(scope="module")
def api_server(airflow_db: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    """``airflow api-server`` on a free loopback port, with its own AIRFLOW_HOME and a copy of the
    session's migrated SQLite metadata DB, the simple auth manager letting everyone in as admin and
    connection tests enabled. Yields an httpx client with an admin token."""
    import signal
    import socket
    import sqlite3
    import time

    import httpx

    try:
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            port = probe.getsockname()[1]
    except OSError as exc:  # the one environmental reason to skip: no loopback networking
        pytest.skip(f"cannot bind a loopback port for the api-server: {exc}")
    home = tmp_path_factory.mktemp("api-server-home")
    with sqlite3.connect(airflow_db / "airflow.db") as source, sqlite3.connect(home / "airflow.db") as copy:
        source.backup(copy)
    env = {
        k: v
        for k, v in _subprocess_env().items()
        if not k.startswith("AIRFLOW__") or k == "AIRFLOW__CORE__LOAD_EXAMPLES"
    }
    env |= {
        "AIRFLOW_HOME": str(home),
        "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": f"sqlite:///{home / 'airflow.db'}",
        "AIRFLOW__CORE__AUTH_MANAGER": (
            "airflow.api_fastapi.auth.managers.simple.simple_auth_manager.SimpleAuthManager"
        ),
        "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_ALL_ADMINS": "True",
        "AIRFLOW__CORE__TEST_CONNECTION": "Enabled",
        "AIRFLOW__API_AUTH__JWT_SECRET": "api-server-test-only-jwt-secret",
    }
    log_path = home / "api-server.log"
    with open(log_path, "wb") as log:
        proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "airflow",
                "api-server",
                "-H",
                "127.0.0.1",
                "-p",
                str(port),
                "-w",
                "1",
                "--apps",
                "core",
            ],
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,  # its uvicorn worker too is stopped through the process group
        )
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + API_SERVER_START_TIMEOUT
        while True:
            if proc.poll() is not None:
                pytest.fail(
                    f"airflow api-server exited with {proc.returncode}:\n{log_path.read_text()[-4000:]}"
                )
            try:
                if httpx.get(f"{base}/api/v2/monitor/health", timeout=5).status_code < 500:
                    break
            except httpx.TransportError:
                pass
            if time.monotonic() > deadline:
                pytest.fail(
                    f"airflow api-server did not answer in {API_SERVER_START_TIMEOUT} s:\n"
                    f"{log_path.read_text()[-4000:]}"
                )
            time.sleep(0.5)
        token = httpx.get(f"{base}/auth/token", timeout=30).json()["access_token"]
        with httpx.Client(base_url=base, headers={"Authorization": f"Bearer {token}"}, timeout=60) as client:
            client.log_path = log_path  # type: ignore[attr-defined]
            yield client
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGTERM)
            try:  # a throwaway server: a short grace, then it is killed
                proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()


def test_the_ui_connection_forms(api_server: Any) -> None:
    response = api_server.get("/ui/connections/hook_meta")
    assert response.status_code == 200, response.text
    meta = {entry["connection_type"]: entry for entry in response.json()}

    for conn_type, entry in CONN_TYPES.items():
        form = meta[conn_type]
        assert form["hook_name"] == entry["hook-name"]
        standard = form["standard_fields"]
        behaviour = entry["ui-field-behaviour"]
        if _airflow_version() < (3, 2) and importlib.util.find_spec("wtforms") is None:
            # Airflow 3.1 reads a hook's form only where wtforms is installed (docs/versions.md);
            # without it no provider's form has field behaviours.
            assert standard is None or standard["login"] is None
            continue
        for field in ("login", "password"):
            if field in behaviour["hidden-fields"]:
                assert standard[field]["hidden"] is True
            else:
                assert standard[field]["title"] == behaviour["relabeling"][field]
                assert standard[field]["placeholder"] == behaviour["placeholders"][field]
        assert all(standard[f]["hidden"] for f in ("host", "port", "url_schema"))
        if _airflow_version() >= (3, 2):  # 3.1 builds no extra fields (extras are given as JSON)
            extras = form["extra_fields"]
            assert set(extras) == set(entry["conn-fields"])
            for name, field in extras.items():
                assert None not in field["schema"].get("enum", []), f"{conn_type}.{name} offers null"

    if _airflow_version() >= (3, 2):
        region = meta["sitecore_cdp"]["extra_fields"]["region"]["schema"]
        assert region["enum"] == ["AP", "EU", "JP", "US"]
        assert region["values_display"]["EU"] == "EU (Europe)"
        api_host = meta["cordial"]["extra_fields"]["api_host"]
        assert api_host["value"] == "api.cordial.io"
        assert api_host["schema"]["examples"] == ["api.cordial.io", "api.usw2.cordial.io"]
        assert meta["adobe_aep"]["extra_fields"]["sandbox_name"]["schema"]["examples"] == ["prod"]

    # Airflow's form metadata has no default connection id for any type (its own included); the
    # hooks declare theirs, which the operators use when no conn id is given.
    assert {entry["default_conn_name"] for entry in meta.values()} == {None}
    assert {ct: _hook_class(ct).default_conn_name for ct in CONN_TYPES} == {
        "sitecore_cdp": "sitecore_cdp_default",
        "cordial": "cordial_default",
        "adobe_aep": "adobe_aep_default",
    }


def test_the_rest_connection_test_works_where_the_ui_test_button_fails(api_server: Any, sandbox: Any) -> None:
    """Airflow 3.3.x's Test button sends ``port: 0`` for a connection without a port, and the API
    refuses that for a stored connection (apache/airflow#73298 fixes it); the same request without
    the port, as ``POST /api/v2/connections/test`` documents it, tests the connection."""
    for attr, conn_type in (("sitecore", "sitecore_cdp"), ("cordial", "cordial"), ("adobe", "adobe_aep")):
        server = getattr(sandbox, attr)
        conn = server.connection()
        body = {
            "connection_id": f"rest_test_{conn_type}",
            "conn_type": conn_type,
            "login": conn.get("login"),
            "password": conn["password"],
            "extra": json.dumps(conn["extra"]),
        }
        stored = api_server.post("/api/v2/connections", json=body)
        assert stored.status_code in (201, 409), stored.text

        as_the_ui_sends_it = api_server.post(
            "/api/v2/connections/test", json=body | {"password": "***", "port": 0, "host": ""}
        )
        if _airflow_version() >= (3, 3):
            assert as_the_ui_sends_it.status_code == 400, as_the_ui_sends_it.text
            assert "differs from the stored connection" in as_the_ui_sends_it.text

        # 3.3 reuses the stored secret when the request masks it; older versions test what is sent.
        secret = "***" if _airflow_version() >= (3, 3) else conn["password"]
        tested = api_server.post("/api/v2/connections/test", json=body | {"password": secret})
        assert tested.status_code == 200, tested.text
        assert tested.json()["status"] is True, tested.json()
        assert tested.json()["message"].startswith(f"Connected to {server.vendor}")

        wrong = api_server.post(
            "/api/v2/connections/test",
            json=body | {"connection_id": f"rest_test_new_{conn_type}", "password": "wrong-secret-value"},
        )
        assert wrong.status_code == 200 and wrong.json()["status"] is False, wrong.text
        assert "wrong-secret-value" not in wrong.text


def test_a_connection_type_with_an_underscore_survives_the_uri_round_trip(caplog, capfd) -> None:
    """Why the types keep their names (docs/connections/index.md): Airflow's ``get_uri`` writes ``_`` as
    ``-`` (and warns) and reading turns it back, so stored ``sitecore_cdp`` connections keep working;
    a type spelled with ``-`` would come back as another type."""
    from airflow.models.connection import Connection

    caplog.set_level("WARNING")
    for conn_type in CONN_TYPES:
        uri = Connection(conn_id="x", conn_type=conn_type, login="id", password="pw").get_uri()
        assert Connection(conn_id="x", uri=uri).conn_type == conn_type
    logged = caplog.text + "".join(capfd.readouterr())  # stdlib logging or structlog, by version
    assert "Connection schemes (type: sitecore_cdp) shall not contain '_'" in logged
    assert Connection(
        conn_id="x", uri=Connection(conn_id="x", conn_type="sitecore-cdp").get_uri()
    ).conn_type == ("sitecore_cdp")
