"""Adobe Experience Platform: the operators of the target dataset and of the profile export job,
and the job's request (``CreateExportJobRequest``) built from the operator's arguments."""

from __future__ import annotations

import inspect
import json
import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from datetime import datetime
from functools import cached_property
from typing import TYPE_CHECKING, Any

from airflow.providers.common.compat.sdk import BaseOperator

from airflow_provider_exports.exceptions import ExportConfigError
from airflow_provider_exports.hooks import _adobe_experience_platform_records as records
from airflow_provider_exports.hooks._adobe_experience_platform_records import DATASET_ID
from airflow_provider_exports.hooks.adobe_experience_platform import AdobeExperiencePlatformHook
from airflow_provider_exports.operators._base import ExportJobOperator
from airflow_provider_exports.triggers.adobe_experience_platform import AdobeProfileExportJobTrigger
from airflow_provider_exports.utils.templating import is_template

if TYPE_CHECKING:
    from airflow.providers.common.compat.sdk import Context

# -- the export job request (CreateExportJobRequest) ---------------------------------------------

#: the documented values of ``filter.segments[].status`` (vendor-apis README §3.4)
SEGMENT_STATUSES = ("realized", "existing", "exited")
DEFAULT_SCHEMA_NAME = "_xdm.context.profile"
_RFC3339 = re.compile(r"\d{4}-\d{2}-\d{2}[T ]\d{2}:\d{2}:\d{2}(\.\d+)?(Z|[+-]\d{2}:\d{2})", re.IGNORECASE)


def check_rfc3339(value: Any, field_name: str) -> str | None:
    """An RFC 3339 date-time with its offset (``2026-11-22T00:00:00Z``); a datetime is written as one.

    A space for the ``T`` (RFC 3339 §5.6 allows it; Airflow renders ``{{ data_interval_start }}`` so)
    is sent as ``T``. ``None`` and empty values (and ``"None"``, what an absent template value
    renders to) give ``None``.
    """
    if value is None or value in ("", "None"):
        return None
    if isinstance(value, datetime):
        if value.tzinfo is None:
            raise ExportConfigError(field_name, f"{value!r} has no time zone")
        return value.isoformat()
    text = str(value).strip()
    if not _RFC3339.fullmatch(text):
        raise ExportConfigError(
            field_name, f"{value!r} is not an RFC 3339 date-time with an offset (e.g. 2026-11-22T00:00:00Z)"
        )
    text = text[:10] + "T" + text[11:]
    try:
        datetime.fromisoformat(text.upper().replace("Z", "+00:00"))
    except ValueError:
        raise ExportConfigError(field_name, f"{value!r} is not a valid date-time") from None
    return text


def _required_text(value: Any, field_name: str, hint: str) -> str:
    if not isinstance(value, str) or not value.strip():
        raise ExportConfigError(field_name, f"is required ({hint})")
    return value.strip()


def _fields(value: Any, field_name: str) -> str | None:
    """``fields``: a comma-separated string of dot paths, or a list of them."""
    if value is None or value == "":
        return None
    items = [value] if isinstance(value, str) else value
    if not isinstance(items, Iterable) or not all(isinstance(i, str) for i in items):
        raise ExportConfigError(field_name, f"{value!r}: give dot paths, as a list or comma-separated")
    parts = [p.strip() for item in items for p in item.split(",") if p.strip()]
    if not parts or any(" " in p for p in parts):
        raise ExportConfigError(field_name, f"{value!r}: give dot paths such as identities.id,person.name")
    return ",".join(parts)


def _bool(value: Any, field_name: str) -> bool | None:
    """``True``/``False``, or their text as a template renders it (``"True"``, ``"false"``)."""
    if value is None or isinstance(value, bool):
        return value
    if isinstance(value, str) and value.strip().lower() in ("true", "false"):
        return value.strip().lower() == "true"
    raise ExportConfigError(field_name, f"{value!r} is not true or false")


def _listed(value: Any) -> Any:
    """A list given as text: JSON (``'["a", "b"]'``, what a rendered list looks like with double
    quotes) or comma-separated."""
    if not isinstance(value, str):
        return value
    text = value.strip()
    if text.startswith("["):
        try:
            return json.loads(text)
        except ValueError:
            return json.loads(text.replace("'", '"'))
    return [s.strip() for s in text.split(",") if s.strip()]


def _statuses(value: Any, field_name: str) -> list[str] | None:
    if value is None:
        return None
    try:
        items = list(_listed(value))
    except (TypeError, ValueError):
        items = [value]
    bad = [v for v in items if v not in SEGMENT_STATUSES]
    if bad or not items:
        raise ExportConfigError(
            field_name, f"{value!r}: each status must be one of {', '.join(SEGMENT_STATUSES)}"
        )
    return list(dict.fromkeys(items))


def _segments(value: Any, namespace: Any, statuses: Any) -> list[dict[str, Any]]:
    """``segments``: segment ids, or ``{"segmentId", "segmentNs", "status"}`` objects."""
    if value is None or value == "" or value == []:
        return []
    try:
        items = list(_listed(value))
    except (TypeError, ValueError):
        raise ExportConfigError("segments", f"{value!r}: give segment ids or segment objects") from None
    default_status = _statuses(statuses, "segment_statuses")
    if namespace is not None and (not isinstance(namespace, str) or not namespace.strip()):
        raise ExportConfigError("segment_namespace", f"{namespace!r}: give a namespace such as ups")
    out = []
    for i, item in enumerate(items):
        if isinstance(item, str):
            item = {"segmentId": item}
        if not isinstance(item, Mapping):
            raise ExportConfigError(f"segments[{i}]", f"{item!r}: give a segment id or a segmentId/segmentNs/status object")
        unknown = set(item) - {"segmentId", "segmentNs", "status"}
        if unknown:
            raise ExportConfigError(f"segments[{i}]", f"unknown key(s) {', '.join(sorted(unknown))}")
        segment: dict[str, Any] = {
            "segmentId": _required_text(item.get("segmentId"), f"segments[{i}].segmentId", "a segment id")
        }
        ns = item.get("segmentNs", namespace)
        if ns is not None:
            segment["segmentNs"] = _required_text(ns, f"segments[{i}].segmentNs", "e.g. ups")
        status = _statuses(item["status"], f"segments[{i}].status") if "status" in item else default_status
        if status is not None:
            segment["status"] = status
        out.append(segment)
    return out


def _put(body: dict[str, Any], place: str, value: Any) -> None:
    """Set ``value`` at ``place`` (dotted keys) in ``body``, unless it is ``None``."""
    if value is None:
        return
    *parents, key = place.split(".")
    for parent in parents:
        body = body.setdefault(parent, {})
    body[key] = value


#: the arguments that go into the request as they are once checked: where, and their check
_PLACES: Mapping[str, tuple[str, Callable[[Any, str], Any]]] = {
    "segment_qualification_start": ("filter.segmentQualificationTime.startTime", check_rfc3339),
    "segment_qualification_end": ("filter.segmentQualificationTime.endTime", check_rfc3339),
    "from_ingest_timestamp": ("filter.fromIngestTimestamp", check_rfc3339),
    "empty_profiles": ("filter.emptyProfiles", _bool),
    "event_fields": ("additionalFields.eventList.fields", _fields),
    "event_from_ingest_timestamp": ("additionalFields.eventList.filter.fromIngestTimestamp", check_rfc3339),
    "event_to_ingest_timestamp": ("additionalFields.eventList.filter.toIngestTimestamp", check_rfc3339),
}


def export_job_request(
    *,
    dataset_id: Any,
    schema_name: Any = DEFAULT_SCHEMA_NAME,
    fields: Any = None,
    merge_policy_id: Any = None,
    merge_policy_version: Any = None,
    segments: Any = None,
    segment_namespace: Any = None,
    segment_statuses: Any = None,
    segment_qualification_start: Any = None,
    segment_qualification_end: Any = None,
    from_ingest_timestamp: Any = None,
    empty_profiles: Any = None,
    event_fields: Any = None,
    event_from_ingest_timestamp: Any = None,
    event_to_ingest_timestamp: Any = None,
    segment_per_batch: Any = False,
    evaluate_segments: Any = None,
) -> dict[str, Any]:
    """A ``POST /export/jobs`` body from the arguments of :class:`AdobeCreateProfileExportJobOperator`
    (see there); every problem raises :class:`ExportConfigError` naming the argument."""
    arguments = dict(locals())  # by name, for _PLACES
    body: dict[str, Any] = {}
    _put(body, "fields", _fields(fields, "fields"))
    if merge_policy_id not in (None, ""):
        _put(body, "mergePolicy.id", _required_text(merge_policy_id, "merge_policy_id", "a merge policy id"))
        if merge_policy_version not in (None, ""):
            try:
                version = int(merge_policy_version)
            except (TypeError, ValueError):
                raise ExportConfigError("merge_policy_version", f"{merge_policy_version!r} is not a number") from None
            _put(body, "mergePolicy.version", version)
    elif merge_policy_version not in (None, ""):
        raise ExportConfigError("merge_policy_version", "needs merge_policy_id")
    if chosen := _segments(segments, segment_namespace, segment_statuses):
        if len(chosen) > 1 and "mergePolicy" not in body:
            # segmentation.yaml (A-SEG), POST /export/jobs, on mergePolicy: "Include this parameter
            # when there are multiple segment definitions being exported" (the guide, A-SEJ: "...
            # multiple segments being exported").
            raise ExportConfigError(
                "merge_policy_id",
                f"is required when several segments are exported ({len(chosen)} given); Adobe: "
                "\"Include this parameter when there are multiple segment definitions being exported\"",
            )
        _put(body, "filter.segments", chosen)
    elif segment_statuses is not None or segment_namespace is not None:
        raise ExportConfigError("segments", "segment_statuses and segment_namespace need segments")
    for name, (place, check) in _PLACES.items():
        _put(body, place, check(arguments[name], name))
    dataset = _required_text(dataset_id, "dataset_id", "the target dataset's id")
    _put(body, "destination.datasetId", DATASET_ID.check(dataset, "dataset_id"))
    _put(body, "destination.segmentPerBatch", True if _bool(segment_per_batch, "segment_per_batch") else None)
    _put(body, "schema.name", _required_text(schema_name, "schema_name", f"e.g. {DEFAULT_SCHEMA_NAME}"))
    _put(body, "evaluationInfo.segmentation", _bool(evaluate_segments, "evaluate_segments"))
    return body


#: the operator arguments that make up the request body, in the order of the docs
REQUEST_ARGUMENTS = tuple(inspect.signature(export_job_request).parameters)
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
DATASET_NAME_HINT = "the name of the profile export dataset"


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
            _required_text(dataset_name, "dataset_name", DATASET_NAME_HINT)

    @cached_property
    def hook(self) -> AdobeExperiencePlatformHook:
        return AdobeExperiencePlatformHook(self.adobe_aep_conn_id)

    def execute(self, context: Context) -> str:
        name = _required_text(self.dataset_name, "dataset_name", DATASET_NAME_HINT)
        dataset_id, created = self.hook.get_or_create_profile_dataset(name, description=self.description or None)
        self.log.info("%s dataset %s (%s)", "Created" if created else "Reusing", dataset_id, name)
        return dataset_id


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
    :param merge_policy_id: the merge policy; ``merge_policy_version`` its version; required with
        more than one segment (Adobe: "Include this parameter when there are multiple segment
        definitions being exported"). (templated)
    :param segments: segment ids, or ``{"segmentId", "segmentNs", "status"}`` objects (default: all
        profiles); several need ``merge_policy_id``. (templated)
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
        given = locals()  # the arguments by name
        request = {name: given[name] for name in REQUEST_ARGUMENTS}
        super().__init__(**kwargs)
        for name, value in request.items():
            setattr(self, name, value)  # each one is a template field
        self.adobe_aep_conn_id = adobe_aep_conn_id
        # The literal arguments are checked now; the templated ones stand in with valid values.
        export_job_request(
            **{
                name: value if _known_at_parse_time(value) else _STAND_INS.get(name)
                for name, value in request.items()
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
        return None if job is None else records.answered_job_id(job, self.hook.url(records.EXPORT_JOBS))

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
