"""Asset events only when a transfer landed something: ``landed_assets``.

An Asset in a task's ``outlets`` gets an event each time the task succeeds, also when a rerun found
its job already at the destination and moved nothing, so downstream DAGs would run again. Airflow's
way to let a task decide is an ``AssetAlias`` outlet: only the assets the task adds to it through
``outlet_events`` get an event. A transfer given ``landed_assets`` declares one alias per asset
(``exports-landed:<asset uri>``) and adds the asset to it only when its summary is not ``skipped``.
A DAG scheduled on the asset runs on those events as on any other.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from airflow.providers.common.compat.sdk import Asset, AssetAlias

from airflow_provider_exports.exceptions import ExportConfigError

if TYPE_CHECKING:
    from airflow.providers.common.compat.sdk import Context

ALIAS_PREFIX = "exports-landed:"


def landed_alias(asset: Asset) -> AssetAlias:
    """The alias through which ``asset`` gets its event."""
    return AssetAlias(name=f"{ALIAS_PREFIX}{asset.uri}")


def check_landed_assets(value: Any) -> list[Asset]:
    """``landed_assets`` as a list of Assets; anything else fails naming the argument."""
    items = [value] if isinstance(value, Asset) else list(value or ())
    wrong = [item for item in items if not isinstance(item, Asset)]
    if wrong:
        raise ExportConfigError(
            "landed_assets", f"{wrong[0]!r} is not an Asset; give Asset(...) objects (airflow.sdk.Asset)"
        )
    return items


def with_alias_outlets(outlets: Any, assets: Sequence[Asset]) -> list[Any]:
    """The task's ``outlets`` and the aliases of ``assets``."""
    given = [] if outlets is None else list(outlets) if isinstance(outlets, (list, tuple)) else [outlets]
    return [*given, *(landed_alias(asset) for asset in assets)]


def mark_landed(context: Context, assets: Sequence[Asset], summary: Mapping[str, Any], log: Any) -> None:
    """Emit the events of ``assets`` unless the transfer's ``summary`` says it was ``skipped``."""
    if not assets:
        return
    if summary.get("skipped"):
        log.info("Nothing new landed: no event for %s", ", ".join(a.uri for a in assets))
        return
    extra = {key: summary[key] for key in ("vendor", "job_ref", "file_count", "rows") if key in summary}
    for asset in assets:
        context["outlet_events"][landed_alias(asset)].add(asset, extra=extra)
