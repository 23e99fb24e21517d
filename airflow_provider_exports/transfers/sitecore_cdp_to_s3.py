"""Land a Sitecore CDP audience export job's files in S3, streamed, all or nothing."""

from __future__ import annotations

from airflow_provider_exports.transfers._base import TransferOperator
from airflow_provider_exports.transfers._destinations import S3Destination
from airflow_provider_exports.transfers._fan_out import FanOutCommitOperator, StageFilesOperator
from airflow_provider_exports.transfers._sitecore_cdp import SitecoreCDPExport, SitecoreCDPListFilesOperator


class SitecoreCDPToS3Operator(TransferOperator):
    """Stream the output files of a Sitecore CDP audience export job into S3 (delta exports under
    ``added/`` and ``removed/``, told apart as ``delta`` says)."""

    source_type = SitecoreCDPExport
    destination_type = S3Destination


class SitecoreCDPStageFilesToS3Operator(StageFilesOperator):
    """The stage-files task into S3, mapped over :class:`SitecoreCDPListFilesOperator`'s groups."""

    source_type = SitecoreCDPExport
    destination_type = S3Destination


__all__ = [
    "FanOutCommitOperator",
    "SitecoreCDPListFilesOperator",
    "SitecoreCDPStageFilesToS3Operator",
    "SitecoreCDPToS3Operator",
]
