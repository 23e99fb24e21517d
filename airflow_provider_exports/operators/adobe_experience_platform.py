"""Adobe Experience Platform: the target dataset and the profile export job.

:class:`AdobeCreateProfileDatasetOperator` finds or creates, through Catalog, the dataset on the
profile union schema that an export job writes into. :class:`AdobeCreateProfileExportJobOperator`
builds ``POST /data/core/ups/export/jobs`` from its arguments (checked when the DAG is parsed where
they are literals, else after rendering), pushes the job id to XCom before it waits, waits for the
job and then its Catalog batches (in the worker or deferred, with the same trigger), and cancels the
job when the task is killed or its wait times out. A try after a worker died reattaches to the
job the run already created instead of creating a second one.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from functools import cached_property
from typing import TYPE_CHECKING, Any

from airflow.providers.common.compat.sdk import BaseOperator

from airflow_provider_exports.exceptions import ExportConfigError
from airflow_provider_exports.hooks.adobe_experience_platform import (
    DEFAULT_SCHEMA_NAME,
    AdobeExperiencePlatformHook,
    export_job_request,
)
from airflow_provider_exports.operators._base import ExportJobOperator
from airflow_provider_exports.triggers.adobe_experience_platform import AdobeProfileExportJobTrigger
from airflow_provider_exports.utils.templating import is_template

if TYPE_CHECKING:
    from airflow.providers.common.compat.sdk import Context

#: the operator arguments that make up the request body, in the order of the docs
REQUEST_ARGUMENTS: tuple[str, ...] = (
    "dataset_id",
    "schema_name",
    "fields",
    "merge_policy_id",
    "merge_policy_version",
    "segments",
    "segment_namespace",
    "segment_statuses",
    "segment_qualification_start",
    "segment_qualification_end",
    "from_ingest_timestamp",
    "empty_profiles",
    "event_fields",
    "event_from_ingest_timestamp",
    "event_to_ingest_timestamp",
    "segment_per_batch",
    "evaluate_segments",
)
# What a templated argument stands for in the parse-time check (so the literal ones around it can
# be checked): something valid where the argument is required or others depend on it, else absent.
_STAND_INS: Mapping[str, Any] = {
    "dataset_id": "dataset",
    "schema_name": DEFAULT_SCHEMA_NAME,
    "merge_policy_id": "policy",
    "segments": ["segment"],
}
#: seconds by which Adobe's clock may differ from ours when a retry looks for the job the run created
#: (Vendor is silent on the clock behind ``creationTime``)
CLOCK_SKEW_SECONDS = 60.0


def _known_at_parse_time(value: Any) -> bool:
    """Whether ``value`` holds no template and no XCom reference anywhere."""
    if is_template(value) or hasattr(value, "operator") or hasattr(value, "resolve"):
        return False
    if isinstance(value, Mapping):
        return all(_known_at_parse_time(v) for v in value.values())
    if isinstance(value, (list, tuple)):
        return all(_known_at_parse_time(v) for v in value)
    return True


class AdobeCreateProfileDatasetOperator(BaseOperator):
    """Find or create the dataset on the profile union schema that profile exports write into.

    Idempotent: a dataset with the same name is reused (the oldest, when Catalog has several), not
    duplicated; one of that name on another schema fails the task. Returns the dataset id.

    :param dataset_name: the dataset's name. (templated)
    :param description: its description, when it is created. (templated)
    :param adobe_aep_conn_id: the Airflow connection id. (templated)
    """

    template_fields: Sequence[str] = ("dataset_name", "description", "adobe_aep_conn_id")
    shallow_copy_attrs: Sequence[str] = ("hook",)

    def __init__(
        self,
        *,
        dataset_name: str,
        description: str | None = None,
        adobe_aep_conn_id: str = AdobeExperiencePlatformHook.default_conn_name,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.dataset_name = dataset_name
        self.description = description
        self.adobe_aep_conn_id = adobe_aep_conn_id
        if not is_template(dataset_name):
            _check_dataset_name(dataset_name)

    @cached_property
    def hook(self) -> AdobeExperiencePlatformHook:
        return AdobeExperiencePlatformHook(self.adobe_aep_conn_id)

    def execute(self, context: Context) -> str:
        name = _check_dataset_name(self.dataset_name)
        dataset_id, created = self.hook.get_or_create_profile_dataset(name, description=self.description or None)
        self.log.info("%s dataset %s (%s)", "Created" if created else "Reusing", dataset_id, name)
        return dataset_id


def _check_dataset_name(value: Any) -> str:
    if not isinstance(value, str) or not value.strip():
        raise ExportConfigError("dataset_name", "is required (the name of the profile export dataset)")
    return value.strip()


class AdobeCreateProfileExportJobOperator(ExportJobOperator):
    """Create a profile export job into a dataset, wait for it and its batches; return the batch ids.

    The request (``CreateExportJobRequest``, vendor-apis README §3.4) is built from the arguments;
    ``None`` leaves a field out (Adobe's default applies). Every argument is templated; literal ones
    are checked when the DAG is parsed, the others after rendering: the dataset id and the schema
    name are required, times are RFC 3339 with an offset, segment statuses are ``realized``,
    ``existing`` or ``exited``.

    The job id is pushed to XCom (key ``job_id``) before the wait. With ``wait_for_completion``
    (default) the task waits until the job ``SUCCEEDED`` and its Catalog batch(es) reached
    ``success`` and returns the batch ids (one, or one per segment with ``segment_per_batch``); a
    ``FAILED`` job fails the task, not retried, with every ``errors[]`` entry's code and message.
    ``on_kill``, a deferred task the user kills (Airflow 3.3+) and a wait that reaches ``timeout``
    cancel the job (``DELETE``). A retry reattaches to the job the run already created (an active
    job into the same dataset created since the DAG run started) instead of creating another.

    :param dataset_id: the target dataset (e.g. the dataset operator's ``output``). (templated)
    :param schema_name: ``schema.name`` (default ``_xdm.context.profile``). (templated)
    :param fields: dot paths to export, a list or comma-separated (default: all). (templated)
    :param merge_policy_id: the merge policy; ``merge_policy_version`` its version. (templated)
    :param segments: segment ids, or ``{"segmentId", "segmentNs", "status"}`` objects (default: all
        profiles). (templated)
    :param segment_namespace: ``segmentNs`` of segments given by id (Adobe's default: ``ups``). (templated)
    :param segment_statuses: statuses of segments given by id (Adobe's default: realized, existing). (templated)
    :param segment_qualification_start: ``filter.segmentQualificationTime.startTime``. (templated)
    :param segment_qualification_end: ``filter.segmentQualificationTime.endTime``. (templated)
    :param from_ingest_timestamp: ``filter.fromIngestTimestamp``. (templated)
    :param empty_profiles: ``filter.emptyProfiles``. (templated)
    :param event_fields: ExperienceEvent fields (``additionalFields.eventList.fields``). (templated)
    :param event_from_ingest_timestamp: ``additionalFields.eventList.filter.fromIngestTimestamp``. (templated)
    :param event_to_ingest_timestamp: ``additionalFields.eventList.filter.toIngestTimestamp``. (templated)
    :param segment_per_batch: one batch per segment (``destination.segmentPerBatch``). (templated)
    :param evaluate_segments: ``evaluationInfo.segmentation``. (templated)
    :param adobe_aep_conn_id: the Airflow connection id. (templated)
    :param wait_for_completion: wait for the job (default); otherwise return its id at once.
    :param deferrable: wait in the triggerer (default: ``[operators] default_deferrable``).
    :param poll_interval: seconds between pokes at the job.
    :param timeout: seconds the wait may last; then the job is cancelled and the task fails.
    """

    vendor = AdobeExperiencePlatformHook.vendor
    template_fields: Sequence[str] = (*REQUEST_ARGUMENTS, "adobe_aep_conn_id")
    template_fields_renderers = {"segments": "json"}
    shallow_copy_attrs: Sequence[str] = ("hook",)

    def __init__(
        self,
        *,
        dataset_id: str,
        schema_name: str = DEFAULT_SCHEMA_NAME,
        fields: str | Sequence[str] | None = None,
        merge_policy_id: str | None = None,
        merge_policy_version: int | str | None = None,
        segments: Sequence[str | Mapping[str, Any]] | str | None = None,
        segment_namespace: str | None = None,
        segment_statuses: Sequence[str] | str | None = None,
        segment_qualification_start: str | None = None,
        segment_qualification_end: str | None = None,
        from_ingest_timestamp: str | None = None,
        empty_profiles: bool | str | None = None,
        event_fields: str | Sequence[str] | None = None,
        event_from_ingest_timestamp: str | None = None,
        event_to_ingest_timestamp: str | None = None,
        segment_per_batch: bool | str = False,
        evaluate_segments: bool | str | None = None,
        adobe_aep_conn_id: str = AdobeExperiencePlatformHook.default_conn_name,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.dataset_id = dataset_id
        self.schema_name = schema_name
        self.fields = fields
        self.merge_policy_id = merge_policy_id
        self.merge_policy_version = merge_policy_version
        self.segments = segments
        self.segment_namespace = segment_namespace
        self.segment_statuses = segment_statuses
        self.segment_qualification_start = segment_qualification_start
        self.segment_qualification_end = segment_qualification_end
        self.from_ingest_timestamp = from_ingest_timestamp
        self.empty_profiles = empty_profiles
        self.event_fields = event_fields
        self.event_from_ingest_timestamp = event_from_ingest_timestamp
        self.event_to_ingest_timestamp = event_to_ingest_timestamp
        self.segment_per_batch = segment_per_batch
        self.evaluate_segments = evaluate_segments
        self.adobe_aep_conn_id = adobe_aep_conn_id
        # The literal arguments are checked now; the templated ones stand in with valid values.
        export_job_request(
            **{
                name: getattr(self, name) if _known_at_parse_time(getattr(self, name)) else _STAND_INS.get(name)
                for name in REQUEST_ARGUMENTS
            }
        )

    @cached_property
    def hook(self) -> AdobeExperiencePlatformHook:
        return AdobeExperiencePlatformHook(self.adobe_aep_conn_id)

    def request_body(self) -> dict[str, Any]:
        """The ``POST /export/jobs`` body from the rendered arguments."""
        return export_job_request(**{name: getattr(self, name) for name in REQUEST_ARGUMENTS})

    def find_job(self, context: Context) -> str | None:
        ti = context.get("ti")
        dag_run = context.get("dag_run")
        started = getattr(dag_run, "start_date", None)
        if ti is None or int(getattr(ti, "try_number", 1) or 1) <= 1 or started is None:
            return None  # a first try has no job of its own to find
        dataset_id = self.request_body()["destination"]["datasetId"]
        job = self.hook.find_export_job_since(dataset_id, started.timestamp() - CLOCK_SKEW_SECONDS)
        return None if job is None else str(job["id"])

    def create_job(self, context: Context) -> str:
        body = self.request_body()
        job = self.hook.create_export_job(body)
        self.log.info(
            "Export job %s into dataset %s: %s",
            job.get("id"),
            body["destination"]["datasetId"],
            ", ".join(sorted(k for k in body if k not in ("destination", "schema"))) or "all profiles",
        )
        return str(job["id"])

    def make_trigger(self, job_id: str, deadline: float) -> AdobeProfileExportJobTrigger:
        return AdobeProfileExportJobTrigger(
            export_job_id=job_id,
            adobe_aep_conn_id=self.adobe_aep_conn_id,
            cancel_on_kill=True,
            poll_interval=self.poll_interval,
            deadline=deadline,
        )

    def cancel_job(self, job_id: str) -> None:
        try:
            self.hook.cancel_export_job(job_id)
        except Exception:  # best effort: never hide why the task is ending
            self.log.warning("Could not cancel export job %s", job_id, exc_info=True)
        else:
            self.log.info("Cancelled export job %s", job_id)
