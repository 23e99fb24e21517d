"""The soak's verdict on one run, from what was read back: rows and objects against the source of
truth, leftovers, vendor jobs; and the soak's summary (a table, then one JSON line).

Plain functions of plain values (no deployment), so the checks themselves are tested: a row or an
object planted twice, one taken away, a staging table left behind must each be counted.

Rows are compared as multisets (:class:`collections.Counter` of tuples): a row the destination
lacks is lost, a row it holds more often than the source gives is doubled, and a row whose content
changed is both (one lost, one doubled). Objects are compared by SHA-256.
"""

from __future__ import annotations

import hashlib
import json
from collections import Counter
from collections.abc import Callable, Iterable, Mapping
from dataclasses import asdict, dataclass, field
from typing import Any

Row = tuple[Any, ...]
COUNT_FIELDS = ("lost_rows", "doubled_rows", "lost_objects", "doubled_objects", "duplicate_jobs", "leftovers")


@dataclass
class Counts:
    """What one run (or the whole soak) lost, doubled or left behind; all zero when clean."""

    lost_rows: int = 0
    doubled_rows: int = 0
    lost_objects: int = 0
    doubled_objects: int = 0
    duplicate_jobs: int = 0
    leftovers: int = 0

    def add(self, other: Counts) -> None:
        for name in COUNT_FIELDS:
            setattr(self, name, getattr(self, name) + getattr(other, name))

    @property
    def clean(self) -> bool:
        return all(getattr(self, name) == 0 for name in COUNT_FIELDS)


@dataclass
class Verdict:
    """One destination's (or one run's) counts and what explains each non-zero count."""

    counts: Counts = field(default_factory=Counts)
    problems: list[str] = field(default_factory=list)

    def merge(self, other: Verdict) -> None:
        self.counts.add(other.counts)
        self.problems.extend(other.problems)


def digest(rows: Counter[Row]) -> tuple[int, str]:
    """``(row count, SHA-256 of the rows in a canonical order)``: equal for equal multisets."""
    h = hashlib.sha256()
    for row in sorted(rows.elements(), key=repr):
        h.update(repr(row).encode())
        h.update(b"\n")
    return sum(rows.values()), h.hexdigest()


def expected_table(
    mode: str, before: Counter[Row], source: Counter[Row], key: Callable[[Row], Row] | None = None
) -> Counter[Row]:
    """The rows a table must hold after a load of ``source`` in ``mode``: ``replace`` the source
    alone; ``append`` what was there and the source; ``merge`` (on ``key``) what was there under
    keys the source does not have, and the source."""
    if mode == "replace":
        return Counter(source)
    if mode == "append":
        return before + source
    if mode == "merge":
        if key is None:
            raise ValueError("merge needs a key")
        keys = {key(row) for row in source}
        kept = Counter({row: n for row, n in before.items() if key(row) not in keys})
        return kept + source
    raise ValueError(f"mode must be replace, append or merge, not {mode!r}")


def check_rows(table: str, expected: Counter[Row], actual: Counter[Row]) -> Verdict:
    """Lost and doubled rows of ``table``, and its count and checksum against the expected ones."""
    verdict = Verdict()
    lost = expected - actual
    doubled = actual - expected
    verdict.counts.lost_rows = sum(lost.values())
    verdict.counts.doubled_rows = sum(doubled.values())
    (want_n, want_sum), (got_n, got_sum) = digest(expected), digest(actual)
    if lost or doubled:
        example = next(iter(lost or doubled))
        verdict.problems.append(
            f"{table}: {got_n} rows (checksum {got_sum[:12]}), expected {want_n} ({want_sum[:12]}):"
            f" {sum(lost.values())} lost, {sum(doubled.values())} doubled, e.g. {example!r}"[:400]
        )
    return verdict


@dataclass(frozen=True)
class SourceFile:
    """A file the vendor served: its name (last path segment) and SHA-256."""

    name: str
    sha256: str


def check_objects(
    prefix: str,
    vendor_files: Iterable[SourceFile],
    manifest: Mapping[str, Any] | None,
    objects: Mapping[str, str],
) -> Verdict:
    """One S3 transfer's destination: ``objects`` (key -> SHA-256) under ``prefix`` must be exactly
    the manifest and the files it lists, each listed once with the vendor's bytes, and every
    vendor file listed. Anything else under the prefix (another run directory, a temporary
    manifest) is a leftover, or a doubled object when it is a second copy of a vendor file."""
    verdict = Verdict()
    wanted = Counter((f.name, f.sha256) for f in vendor_files)
    manifest_key = f"{prefix}_manifest.json"
    if manifest is None:
        verdict.counts.lost_objects += sum(wanted.values())
        verdict.problems.append(f"s3://{prefix}: no manifest ({sum(wanted.values())} vendor files not landed)")
        listed_entries: list[Mapping[str, Any]] = []
    else:
        listed_entries = list(manifest.get("files", []))
        if manifest.get("file_count") != len(listed_entries):
            verdict.counts.lost_objects += 1
            verdict.problems.append(
                f"s3://{prefix}: manifest file_count {manifest.get('file_count')} != {len(listed_entries)} listed"
            )
    listed = Counter((str(e["location"]).rsplit("/", 1)[-1], str(e["sha256"])) for e in listed_entries)
    if manifest is not None:
        missing, extra = wanted - listed, listed - wanted
        if missing:
            verdict.counts.lost_objects += sum(missing.values())
            verdict.problems.append(f"s3://{prefix}: manifest lacks {sorted(missing)[:3]}")
        if extra:
            verdict.counts.doubled_objects += sum(extra.values())
            verdict.problems.append(f"s3://{prefix}: manifest lists beyond the vendor's files {sorted(extra)[:3]}")
    locations = set()
    for entry in listed_entries:
        key = str(entry["location"])
        locations.add(key)
        if objects.get(key) != entry["sha256"]:
            verdict.counts.lost_objects += 1
            verdict.problems.append(
                f"s3://{key}: {'missing' if key not in objects else 'bytes differ from the manifest'}"
            )
    names = {name for name, _ in wanted}
    for key in sorted(set(objects) - locations - {manifest_key}):
        if key.rsplit("/", 1)[-1] in names:
            verdict.counts.doubled_objects += 1
            verdict.problems.append(f"s3://{key}: a second copy of a vendor file, outside the manifest")
        else:
            verdict.counts.leftovers += 1
            verdict.problems.append(f"s3://{key}: left over")
    return verdict


def check_delivered(prefix: str, delivered: Iterable[SourceFile], objects: Mapping[str, str]) -> Verdict:
    """Files a vendor writes into the bucket itself (Cordial): each file of the run's jobs is
    there with its bytes, and nothing else is under ``prefix``."""
    verdict = Verdict()
    want = {f"{prefix}{f.name}": f.sha256 for f in delivered}
    for key, sha in sorted(want.items()):
        if objects.get(key) != sha:
            verdict.counts.lost_objects += 1
            verdict.problems.append(f"s3://{key}: {'missing' if key not in objects else 'bytes differ'}")
    for key in sorted(set(objects) - set(want)):
        verdict.counts.doubled_objects += 1
        verdict.problems.append(f"s3://{key}: not a file of this run's jobs")
    return verdict


def check_untouched(prefix: str, objects: Mapping[str, str], tables: Mapping[str, tuple[Counter[Row], Counter[Row]]]) -> Verdict:
    """A run that failed for good must leave its destination as it was: nothing under its (new)
    prefix, every table as before (``tables``: name -> (before, after))."""
    verdict = Verdict()
    for key in sorted(objects):
        verdict.counts.leftovers += 1
        verdict.problems.append(f"s3://{key}: written by a run that failed")
    for table, (before, after) in tables.items():
        verdict.merge(check_rows(table, before, after))
    return verdict


def check_leftovers(staging_tables: Iterable[str], registry_rows: int, open_uploads: Iterable[str]) -> Verdict:
    """Between runs nothing may be left: no staging table, no row in the staging registry, no open
    multipart upload."""
    verdict = Verdict()
    for table in sorted(staging_tables):
        verdict.counts.leftovers += 1
        verdict.problems.append(f"staging table {table} left over")
    if registry_rows:
        verdict.counts.leftovers += registry_rows
        verdict.problems.append(f"{registry_rows} row(s) left in the staging registry")
    for upload in sorted(open_uploads):
        verdict.counts.leftovers += 1
        verdict.problems.append(f"multipart upload {upload} left open")
    return verdict


def check_jobs(vendor: str, created: int, expected: int, cancelled: int) -> Verdict:
    """One vendor job per export task of the run: a retry finds its job again rather than creating
    a second; a job cancelled on purpose (a cleared task) does not count."""
    verdict = Verdict()
    extra = created - cancelled - expected
    if extra > 0:
        verdict.counts.duplicate_jobs = extra
        verdict.problems.append(f"{vendor}: {created} jobs created ({cancelled} cancelled), {expected} expected")
    return verdict


# -- the summary


@dataclass
class RunRecord:
    """One soak run: what was drawn, what happened, and its verdict."""

    number: int
    dag_id: str
    run_id: str
    faults: list[str]
    injected: list[str]
    state: str
    retried: bool
    verified: bool
    verdict: Verdict
    seconds: float


def summary(runs: list[RunRecord], seed: int) -> dict[str, Any]:
    total = Counts()
    for run in runs:
        total.add(run.verdict.counts)
    injected = Counter(kind for run in runs for kind in run.injected)
    return {
        "seed": seed,
        "runs": len(runs),
        "verified": sum(run.verified for run in runs),
        "faults_injected": dict(sorted(injected.items())),
        **asdict(total),
    }


def table(runs: list[RunRecord]) -> str:
    """One line per run, then its problems indented."""
    header = f"{'#':>3}  {'dag':<38} {'faults (injected*)':<52} {'state':<8} {'ok':<4} {'s':>5}"
    lines = [header, "-" * len(header)]
    for run in runs:
        faults = ", ".join(f + ("*" if f in run.injected else "") for f in run.faults) or "-"
        state = run.state + ("+retry" if run.retried else "")
        ok = "yes" if run.verified and run.verdict.counts.clean else "NO"
        lines.append(f"{run.number:>3}  {run.dag_id:<38} {faults:<52} {state:<8} {ok:<4} {run.seconds:>5.0f}")
        lines.extend(f"       {problem}" for problem in run.verdict.problems)
    return "\n".join(lines)


def json_line(runs: list[RunRecord], seed: int) -> str:
    return json.dumps(summary(runs, seed), sort_keys=False)


def passed(runs: list[RunRecord]) -> bool:
    """Exit 0 only when nothing was lost, doubled or left behind, and every run was verified."""
    result = summary(runs, 0)
    return bool(runs) and all(result[name] == 0 for name in COUNT_FIELDS) and result["verified"] == len(runs)
