"""landed_assets: the argument's checks and the aliases it declares (the events themselves are tested
with the example DAGs: a rerun that lands nothing emits none)."""

from __future__ import annotations

import pytest
from airflow.sdk import Asset, AssetAlias

from airflow_provider_exports.exceptions import ExportConfigError
from airflow_provider_exports.transfers.sitecore_cdp_to_sql import SitecoreCDPToSqlOperator
from airflow_provider_exports.utils.assets import check_landed_assets, with_alias_outlets

TABLE = Asset("warehouse://loyalty_members")


@pytest.mark.parametrize("value", ["warehouse://loyalty_members", [TABLE, "warehouse://x"], [AssetAlias("a")]])
def test_landed_assets_are_assets(value):
    with pytest.raises(ExportConfigError) as err:
        check_landed_assets(value)
    assert err.value.field == "landed_assets" and "is not an Asset" in str(err.value)


def test_a_transfer_declares_an_alias_per_landed_asset_beside_its_outlets():
    other = Asset("s3://lake/other")
    load = SitecoreCDPToSqlOperator(
        task_id="load",
        audience_export_ref="daily_loyalty_members",
        conn_id="warehouse",
        table="loyalty_members",
        outlets=[other],
        landed_assets=[TABLE],
    )
    assert load.outlets == [other, AssetAlias(f"exports-landed:{TABLE.uri}")]
    assert with_alias_outlets(None, []) == [] and with_alias_outlets(other, []) == [other]


def test_a_fan_outs_list_and_stage_tasks_refuse_landed_assets():
    from airflow_provider_exports.transfers.sitecore_cdp_to_sql import SitecoreCDPStageFilesToSqlOperator

    with pytest.raises(ExportConfigError, match="lands nothing itself; give it to the commit task") as err:
        SitecoreCDPStageFilesToSqlOperator(
            task_id="load_files",
            audience_export_ref="daily_loyalty_members",
            conn_id="warehouse",
            table="t",
            group={},
            landed_assets=[TABLE],
        )
    assert err.value.field == "landed_assets"
