"""Loads the sandbox fixtures in a source checkout, where the ``pytest11`` entry point is not installed."""

from __future__ import annotations

from importlib.metadata import entry_points

_PLUGIN = "airflow_provider_exports.sandbox.pytest_plugin"

if not any(ep.value == _PLUGIN for ep in entry_points(group="pytest11")):
    from airflow_provider_exports.sandbox.pytest_plugin import (  # noqa: F401
        exports_sandbox,
        moto_s3,
        postgres,
        s3,
        sandbox,
    )
