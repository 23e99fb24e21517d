"""The bounds on outside input: each an ``[exports]`` Airflow setting, read when it is used."""

from __future__ import annotations

import subprocess
import sys

import pytest

from airflow_provider_exports.exceptions import ExportConfigError, LimitExceeded
from airflow_provider_exports.utils import limits


def test_every_bound_is_a_provider_setting_with_its_default():
    options = limits.provider_config()["exports"]["options"]
    assert {name: int(o["default"]) for name, o in options.items()} == {
        limit.name: limit.default for limit in limits.ALL
    }


def test_airflow_lists_the_settings_and_a_deployment_raises_one(monkeypatch):
    """``airflow config`` knows the section from the provider info, as docs/security.md says."""
    got = subprocess.run(
        [sys.executable, "-m", "airflow", "config", "get-value", "exports", "max_pages"],
        capture_output=True, text=True, check=True, timeout=120,
    )
    assert got.stdout.strip().splitlines()[-1] == "1000"
    assert limits.PAGES.value == 1000
    monkeypatch.setenv("AIRFLOW__EXPORTS__MAX_PAGES", "2_500")
    assert limits.PAGES.value == 2500  # read when used, not at import


@pytest.mark.parametrize("value", ["0", "-1", "lots"])
def test_a_bad_setting_names_itself(monkeypatch, value):
    monkeypatch.setenv("AIRFLOW__EXPORTS__MAX_PAGES", value)
    with pytest.raises(ExportConfigError, match=r"\[exports\] max_pages"):
        limits.PAGES.value  # noqa: B018


def test_the_error_names_the_setting_and_how_to_raise_it():
    err = limits.PAGES.exceeded("Cordial GET https://api.cordial.io/v2/jobs", "1,000 pages read")
    assert isinstance(err, LimitExceeded)
    assert str(err) == (
        "Cordial GET https://api.cordial.io/v2/jobs: 1,000 pages read, past the bound of 1,000 "
        "(max_pages); raise it with [exports] max_pages (AIRFLOW__EXPORTS__MAX_PAGES) if this input "
        "is expected"
    )
