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
