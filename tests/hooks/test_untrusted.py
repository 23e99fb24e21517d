"""Every vendor's poke and answer readers, fed answers mutated at random (a seeded fuzz).

Each returns, or raises :class:`VendorAPIError` naming what it got: never a ``KeyError``,
``TypeError`` or ``AttributeError`` from inside a hook, a sensor or a trigger, and never an event a
trigger could not send (its payload is JSON). The valid answers come from the sandboxes over HTTP;
the pokes are generators that take each answer as it comes, so the mutated ones are given to them
directly.
"""

from __future__ import annotations

import copy
import json
import random
from collections.abc import Callable
from datetime import datetime, timezone
from typing import Any

import pytest

from airflow_provider_exports.exceptions import ExportConfigError, VendorAPIError
from airflow_provider_exports.hooks import _adobe_experience_platform_records as adobe_records
from airflow_provider_exports.hooks import cordial, sitecore_cdp
from airflow_provider_exports.hooks._retry import RetryPolicy
from airflow_provider_exports.utils.waiting import PokeEvent

FAST = RetryPolicy(max_attempts=2, backoff_initial=0.01, backoff_max=0.02)
CASES = 400
#: values a vendor might put anywhere instead of what it documents
ODD_VALUES: list[Any] = [
    None, True, 0, -1, 2**70, 1.5, "", "x", "2026-11-01T00:00:00Z", "not a time", "SUCCESS", "FAILED",
    "SUCCEEDED", "success", "failed", [], {}, [{}], ["x"], {"a": 1},
]


def _odd_value(rng: random.Random) -> Any:
    return copy.deepcopy(rng.choice(ODD_VALUES))


def _mutated_once(rng: random.Random, value: Any) -> Any:
    """``value`` with one part, somewhere down its tree, replaced by an odd value or removed."""
    if not isinstance(value, (dict, list)) or not value or rng.random() < 0.15:
        return _odd_value(rng)
    if isinstance(value, dict):
        key = rng.choice(list(value))
        if rng.random() < 0.2:
            del value[key]
        else:
            value[key] = _mutated_once(rng, value[key])
        return value
    i = rng.randrange(len(value))
    value[i] = _mutated_once(rng, value[i])
    return value


def mutated(rng: random.Random, value: Any) -> Any:
    value = copy.deepcopy(value)
    for _ in range(rng.randint(1, 3)):
        value = _mutated_once(rng, value)
    return value


def drive(poke: Any, answer: Callable[[str], Any]) -> PokeEvent:
    """Run a poke (a generator of reads), answering each read of a path with ``answer(path)``."""
    body = None
    try:
        while True:
            _method, path, _params = poke.send(body)
            body = answer(path)
    except StopIteration as done:
        return done.value


def fuzz(seed: int, valid: Any, read: Callable[[Any], Any]) -> int:
    """Give ``read`` mutations of ``valid``; each must return or raise VendorAPIError. How many raised."""
    rng, refused = random.Random(seed), 0
    for case in range(CASES):
        answer = mutated(rng, valid)
        try:
            result = read(answer)
        except VendorAPIError as exc:
            refused += 1
            assert str(exc), case
            continue
        except ExportConfigError as exc:  # an id that may not go into a path; a dataset not to reuse
            refused += 1
            assert exc.field, case
            continue
        except Exception as exc:  # the defect this test is for
            raise AssertionError(f"case {case}: {type(exc).__name__}: {exc}\nanswer: {answer!r}") from exc
        if isinstance(result, PokeEvent):
            assert isinstance(result.description, str), case
            if result.state != "waiting":
                json.dumps(result.payload())  # what a trigger sends
    return refused


@pytest.mark.parametrize("seed", range(2))
def test_sitecore_reports_and_job_outputs(sandbox, seed):
    sandbox.sitecore.add_export("members", rows_per_file=40)
    job = sandbox.sitecore.add_job("members", rows=100, end_time=datetime(2026, 11, 2, tzinfo=timezone.utc))
    sandbox.sitecore.add_job("members", rows=10, status="FAILED", error_logs=["boom"])
    hook = sitecore_cdp.SitecoreCDPHook(retry=FAST)
    reports = hook.call("GET", sitecore_cdp.reports_path("members"))
    output_path = sitecore_cdp.api_path(sitecore_cdp.ENDPOINTS["execution_export"], ref=job)
    output = hook.call("GET", output_path)
    after = datetime(2026, 11, 1, tzinfo=timezone.utc)

    def poke(answer: Any) -> PokeEvent:
        return drive(sitecore_cdp.poke_export("members", after, sitecore_cdp.FAILED_STATUSES), lambda _: answer)

    assert fuzz(seed, reports, poke) > 0
    assert fuzz(seed, output, lambda answer: sitecore_cdp.ExportOutput.from_json(answer, "https://h/x")) > 0


@pytest.mark.parametrize("seed", range(2))
def test_cordial_job_records(sandbox, seed):
    sandbox.cordial.job_seconds = 0
    sandbox.cordial.add_audience("vip")
    hook = cordial.CordialHook(retry=FAST)
    job_id = hook.create_audience_trends_export(
        name="weekly-trends",
        audiences=["vip"],
        selected_timeframe_start="2026-11-16",
        selected_timeframe_end="2026-11-22",
        destination={"type": "S3", "aws_bucket": "lake", "aws_region": "us-east-1", "path": "trends",
                     "aws_access_key_id": "testing", "aws_secret_access_key": "testing"},
    )
    record = hook.get_job(job_id)

    assert fuzz(seed, record, lambda answer: drive(cordial.poke_job(job_id), lambda _: answer)) > 0
    assert fuzz(seed, record, lambda answer: cordial.job_record(answer, "https://h/x")) > 0

    def find_by_name(jobs: Any) -> Any:  # a retry's look for the job its create made (over HTTP)
        sandbox.cordial.faults.clear()
        sandbox.cordial.faults.answer("/v2/jobs", times=None, json=jobs, method="GET")
        return hook.find_jobs_by_name("weekly-trends", started_since=datetime(2026, 1, 1, tzinfo=timezone.utc))

    assert fuzz(seed, [record, {**record, "status": "Done"}], find_by_name) > 0


#: an export job and its Catalog batches as Adobe documents them (vendor-apis README §3)
ADOBE_JOB = {
    "id": 7,
    "status": "SUCCEEDED",
    "destination": {
        "datasetId": "ds1",
        "segmentPerBatch": True,
        "batches": [{"segmentId": "s1", "batchId": "b1"}, {"segmentId": "s2", "batchId": "b2"}],
    },
    "errors": [{"code": "0100", "msg": "a message"}],
}
ADOBE_BATCHES = {b: {b: {"status": "success", "errors": [{"code": "x", "description": "d"}]}} for b in ("b1", "b2")}


@pytest.mark.parametrize("seed", range(2))
def test_adobe_export_jobs_and_their_batches(seed):
    def poke(answers: Any) -> PokeEvent:
        def answer(path: str) -> Any:  # each read's answer by the last part of its path
            return answers.get(path.rsplit("/", 1)[-1]) if isinstance(answers, dict) else answers

        return drive(adobe_records.poke_export_job(7), answer)

    assert fuzz(seed, {"7": ADOBE_JOB, **ADOBE_BATCHES}, poke) > 0


#: a batch's Data Access listing, and the listing of the dataset file it names (vendor-apis README §3)
ADOBE_LISTINGS = {
    "batch": {"data": [{"dataSetFileId": "b1-1", "dataSetId": "ds1"}], "_page": {"limit": 100, "count": 1}},
    "file": {
        "data": [
            {"name": "part-0.parquet", "length": "12",
             "_links": {"self": {"href": "https://platform.adobe.io/data/foundation/export/files/b1-1?path=p"}}},
            {"_links": {"self": {"href": "https://platform.adobe.io/data/foundation/export/files/b1-2"}}},
        ],
        "_links": {},
    },
}


@pytest.mark.parametrize("seed", range(2))
def test_adobe_data_access_listings_over_http(sandbox, seed):
    """Served by the sandbox as a misbehaving Adobe would (one answer per listing, every page)."""
    from airflow_provider_exports.hooks.adobe_experience_platform import AdobeExperiencePlatformHook

    hook = AdobeExperiencePlatformHook(retry=FAST)

    def batch_files(listings: Any) -> Any:
        sandbox.adobe.faults.clear()
        batch, file = (listings.get("batch"), listings.get("file")) if isinstance(listings, dict) else (listings,) * 2
        sandbox.adobe.faults.answer("/data/foundation/export/batches/b1/files", times=None, json=batch)
        sandbox.adobe.faults.answer("/data/foundation/export/files/*", times=None, json=file)
        return hook.batch_files("b1")

    assert fuzz(seed, ADOBE_LISTINGS, batch_files) > 0


ADOBE_JOBS_PAGE = {
    "records": [
        {"id": 8, "status": "PROCESSING", "creationTime": 1764547200000,
         "destination": {"datasetId": "5b7c86968f7b6501e21ba9df", "segmentPerBatch": False}},
        {"id": 7, "status": "SUCCEEDED", "creationTime": 1764460800000,
         "destination": {"datasetId": "5b7c86968f7b6501e21ba9df", "batchId": "b7"}},
    ],
    "page": {"sort": "desc", "limit": 50, "count": 2},
    "link": {"next": ""},
}
ADOBE_DATASETS = {
    "5b7c86968f7b6501e21ba9df": {
        "name": "profiles",
        "schemaRef": {"id": "https://ns.adobe.com/xdm/context/profile__union"},
        "fileDescription": {"format": "parquet"},
        "created": 1764460800000,
    }
}


@pytest.mark.parametrize("seed", range(2))
def test_adobe_jobs_and_datasets_listings_over_http(sandbox, seed):
    """The job a retried task reattaches to, and the dataset a profile export reuses."""
    from airflow_provider_exports.hooks.adobe_experience_platform import AdobeExperiencePlatformHook

    hook = AdobeExperiencePlatformHook(retry=FAST)

    def find_job(page: Any) -> Any:
        sandbox.adobe.faults.clear()
        sandbox.adobe.faults.answer("/data/core/ups/export/jobs", times=None, json=page, method="GET")
        job = hook.find_export_job_since("5b7c86968f7b6501e21ba9df", 1764400000.0)
        return None if job is None else adobe_records.answered_job_id(job, "https://h/x")  # what a retry reattaches to

    def reused_dataset(listing: Any) -> Any:
        sandbox.adobe.faults.clear()
        sandbox.adobe.faults.answer("/data/foundation/catalog/dataSets", times=None, json=listing, method="GET")
        sandbox.adobe.faults.answer("/data/foundation/catalog/dataSets", times=None, status=400, method="POST",
                                    json={"title": "not created in this test"})
        return hook.get_or_create_profile_dataset("profiles")

    def create(answer: Any) -> Any:
        sandbox.adobe.faults.clear()
        sandbox.adobe.faults.answer("/data/core/ups/export/jobs", times=None, json=answer, method="POST")
        return hook.create_export_job(
            {"destination": {"datasetId": "5b7c86968f7b6501e21ba9df"}, "schema": {"name": "_xdm.context.profile"}}
        )["id"]

    assert fuzz(seed, ADOBE_JOBS_PAGE, find_job) > 0
    assert fuzz(seed, ADOBE_JOBS_PAGE["records"][0], create) > 0
    fuzz(seed, ADOBE_DATASETS, reused_dataset)  # a dataset answer that is not one is no dataset of that name
