"""The lock files agree: the deployment check installs CI's versions, plus what only it needs.

``requirements/deployment.lock`` is compiled with ``-c requirements/ci.lock``; one left behind
after a dependency changed in ``pyproject.toml`` makes ``bash .ci/deployment`` unresolvable (it
happened: s3fs and the OpenLineage provider were added to the test extra, and the deployment
lock still pinned an older boto3).
"""

from __future__ import annotations

import re

import tomllib
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

from tests.conftest import REPO

PIN = re.compile(r"^([A-Za-z0-9_.\-]+)==([^\s;]+)", re.M)


def _pins(lock: str) -> dict[str, str]:
    text = (REPO / "requirements" / lock).read_text()
    return {canonicalize_name(name): version for name, version in PIN.findall(text)}


def test_the_deployment_lock_pins_what_ci_pins_at_the_same_versions():
    ci, deployment = _pins("ci.lock"), _pins("deployment.lock")
    assert len(ci) > 100
    differ = {
        name: (version, deployment.get(name))
        for name, version in ci.items()
        if deployment.get(name) != version
    }
    assert differ == {}, "regenerate requirements/deployment.lock (its header has the command)"


def test_the_deployment_lock_pins_the_deployment_extra():
    extras = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["optional-dependencies"]
    deployment = _pins("deployment.lock")
    for spec in extras["deployment"]:
        req = Requirement(spec)
        name = canonicalize_name(req.name)
        assert name in deployment, f"{req.name} is not in requirements/deployment.lock"
        assert req.specifier.contains(deployment[name]), (
            f"{req.name}=={deployment[name]} is not {req.specifier}"
        )


def test_every_lock_pins_what_the_sandbox_distribution_needs():
    """``sandbox/pyproject.toml`` names only what the provider's [test] extra holds, so the locks
    (compiled from ``pyproject.toml``) pin it and ``.ci/_setup.sh`` installs it from them."""
    sandbox = tomllib.loads((REPO / "sandbox" / "pyproject.toml").read_text())["project"]
    for lock in ("ci.lock", "floor.lock", "deployment.lock"):
        pins = _pins(lock)
        for spec in sandbox["dependencies"]:
            req = Requirement(spec)
            name = canonicalize_name(req.name)
            if name == "airflow-provider-exports":
                continue  # this repository's own provider, installed from the root
            assert name in pins, f"{req.name} (sandbox/pyproject.toml) is not in requirements/{lock}"
            assert req.specifier.contains(pins[name]), f"{lock}: {req.name}=={pins[name]} is not {req.specifier}"
