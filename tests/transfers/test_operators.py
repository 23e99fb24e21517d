"""The shape of the public transfer operators: a source and a destination composed, not a lattice
of classes, and each argument an attribute of the same name, as Airflow renders them."""

from __future__ import annotations

import importlib
import inspect

import pytest
from airflow.sdk import BaseOperator

from airflow_provider_exports.get_provider_info import get_provider_info
from airflow_provider_exports.transfers._base import TransferOperator

#: provider classes a public operator's MRO may hold (its own included)
MAX_PROVIDER_CLASSES = 4


def _public_operators() -> list[type[BaseOperator]]:
    found: dict[str, type[BaseOperator]] = {}
    for transfer in get_provider_info()["transfers"]:
        module = importlib.import_module(transfer["python-module"])
        for name in module.__all__:
            obj = getattr(module, name)
            if inspect.isclass(obj) and issubclass(obj, BaseOperator):
                found[name] = obj
    return [found[name] for name in sorted(found)]


def _provider_classes(cls: type) -> list[str]:
    return [c.__name__ for c in cls.__mro__ if c.__module__.startswith("airflow_provider_exports")]


PUBLIC = _public_operators()


def test_every_public_operator_is_at_most_four_provider_classes_deep():
    depths = {cls.__name__: _provider_classes(cls) for cls in PUBLIC}
    assert len(depths) == 19  # 18 vendor operators and FanOutCommitOperator
    deepest = max(depths, key=lambda name: len(depths[name]))
    print(f"longest provider MRO: {deepest}: {' > '.join(depths[deepest])}")
    too_deep = {name: mro for name, mro in depths.items() if len(mro) > MAX_PROVIDER_CLASSES}
    assert too_deep == {}
    assert not [name for cls in PUBLIC for name in _provider_classes(cls) if name.endswith("Mixin")]


@pytest.mark.parametrize("operator", [c for c in PUBLIC if issubclass(c, TransferOperator)], ids=lambda c: c.__name__)
def test_each_argument_is_kept_verbatim_under_its_own_name(operator):
    parameters = {
        name: p
        for klass in operator.__mro__
        if "__init__" in vars(klass) and issubclass(klass, TransferOperator)
        for name, p in inspect.signature(vars(klass)["__init__"]).parameters.items()
        if p.kind is inspect.Parameter.KEYWORD_ONLY
    }
    assert set(operator.template_fields) <= set(parameters)
    # values to be rendered: no parse-time check looks into them
    required = {n: f"{{{{ params.{n} }}}}" for n, p in parameters.items() if p.default is inspect.Parameter.empty}
    op = operator(task_id="t", **required)
    for name, p in parameters.items():
        assert getattr(op, name) == required.get(name, p.default), name
