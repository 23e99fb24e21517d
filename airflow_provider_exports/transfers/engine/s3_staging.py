"""Fan-out into S3: many tasks stage a run's files, one final task commits them with the manifest.

The commit protocol is :class:`~.s3_sink.S3Sink`'s cut in two (docs/scaling-out.md):
:class:`S3StagingSink` (one mapped task per group) writes its files, completed, under the run's
directory ``<prefix>/run-<run id>/``, with the run id of the task that listed the job, so every
group and every retry writes into the same directory and overwrites only its own keys;
:class:`S3StagedCommit` (the final task) checks every staged object, then puts the manifest with
the same conditional put as a one-task run. A run that fails for good leaves the manifest, and
every object it lists, as they were.

What the groups pass to the commit travels through XCom, so it is checked before it is used: the
run id against the pattern runs make (before any prefix is built from it), every file location
against the run's own directory; and a discard never deletes what the manifest in place lists.
"""

from __future__ import annotations

import dataclasses
import logging
from collections import Counter
from collections.abc import Mapping, Sequence
from datetime import datetime, timedelta
from typing import Any

from airflow_provider_exports.exceptions import ExportConfigError, TransferError, TransferRefused
from airflow_provider_exports.transfers.engine import manifest as manifest_mod
from airflow_provider_exports.transfers.engine.s3_sink import S3Sink
from airflow_provider_exports.transfers.engine.sink import TransferContext

log = logging.getLogger(__name__)


class S3StagingSink(S3Sink):
    """One group of a fanned-out run: its files land complete under ``run-<run_id>/``, no manifest.

    Takes :class:`S3Sink`'s arguments and the listing task's ``run_id``; after the run,
    :attr:`staged_files` holds the group's file records and :meth:`staged_state` what the commit
    needs (the manifest's ETag and S3's clock when the group began).
    """

    def __init__(self, bucket: str, prefix: str = "", *, run_id: str, **kwargs: Any) -> None:
        super().__init__(bucket, prefix, **kwargs)
        # A staged run's destination travels through XCom to the commit: no customer-provided key there.
        secret = [k for k in self.extra_args if k.startswith("SSECustomerKey")]
        if secret:
            raise ExportConfigError(
                "s3_extra_args",
                f"{', '.join(secret)}: a customer-provided encryption key cannot travel between fan-out "
                "tasks; use SSE-S3 or SSE-KMS (ServerSideEncryption, SSEKMSKeyId)",
            )
        self.stage_run_id = manifest_mod.check_run_id(run_id, "run_id")
        self.staged_files: list[dict[str, Any]] = []

    def begin(self, ctx: TransferContext) -> Mapping[str, Any] | None:
        # The listing task's run id, not the runner's own: all groups share one run directory.
        return super().begin(dataclasses.replace(ctx, run_id=self.stage_run_id))

    def commit(self, manifest: Mapping[str, Any]) -> Mapping[str, Any] | None:
        """Complete this group's uploads; the manifest is the final task's."""
        assert self._writer is not None, "begin() first"
        self._writer.complete()
        self._committed = True
        self._writer.close()
        self.staged_files = [dict(f) for f in manifest.get("files") or []]
        return None

    def staged_state(self) -> dict[str, Any]:
        """What the commit needs from this group: JSON-able references only."""
        return {
            "base_etag": self._base_etag,
            "began_at": self._began_at.isoformat() if self._began_at else None,
        }

    def fan_out_destination(self) -> dict[str, Any]:
        """The destination as the commit rebuilds it (JSON-able; no secret)."""
        return {
            **self.describe(),
            "aws_conn_id": self.aws_conn_id,
            "decompress": self.decompress,
            "extra_args": self.extra_args,
            "allow_empty": self.allow_empty,
        }


class S3StagedCommit(S3Sink):
    """The final task of a fanned-out run: write the manifest over the groups' staged objects.

    :param stale_after: seconds; ``run-*/`` directories that no manifest lists and that are older
        than this before the run began are removed after the commit (what failed runs left). A
        concurrent run that has been staging for less than that keeps its objects.
    """

    def __init__(self, bucket: str, prefix: str = "", *, stale_after: float = 86400.0, **kwargs: Any) -> None:
        super().__init__(bucket, prefix, **kwargs)
        if stale_after < 0:
            raise ExportConfigError("stale_after", "must be 0 seconds or more")
        self.stale_after = stale_after

    def commit_staged(
        self, ctx: TransferContext, manifest: Mapping[str, Any], groups: Sequence[Mapping[str, Any]]
    ) -> Mapping[str, Any] | None:
        """Put ``manifest`` (every group's files) if no other run committed since the first group
        began; return ``None``, or the manifest of a run of the same job that committed first (this
        run's objects are then deleted)."""
        manifest_mod.check_run_id(ctx.run_id, "staged.run_id")  # from XCom: before any prefix is built
        self._ctx = ctx
        first = min(groups, key=lambda g: str(g.get("began_at") or ""))
        self._base_etag = first.get("base_etag")
        began = _began_at(first.get("began_at"))
        files = manifest.get("files") or []
        self._refuse_empty(len(files))
        locations = [str(f["location"]) for f in files]
        doubled = sorted(loc for loc, n in Counter(locations).items() if n > 1)
        if doubled:
            raise TransferRefused(f"files of different groups would both be stored as {doubled}")
        self._check_staged(files)
        self._replaced, current_etag, s3_now = self._read_manifest()
        if began is not None and s3_now is not None:
            began = min(began, s3_now)  # a time from XCom past S3's clock would sweep runs still staging
        self._began_at = None if began is None else began - timedelta(seconds=self.stale_after)
        if current_etag != self._base_etag:
            self._replaced = None  # the put below fails: another run committed since
        try:
            winner = self._put_manifest(manifest)
        except TransferError:  # another job's run committed since: it stays, this run's copy goes
            self._delete_staged()
            raise
        if winner is not None:
            self._delete_staged(keep=_listed(winner))
            return winner
        self._committed = True
        self._remove_replaced(manifest)
        self._report_lineage(locations)
        return None

    def discard_staged(self, ctx: TransferContext) -> Mapping[str, Any] | None:
        """Delete what ``ctx``'s run staged, except what the manifest in place lists; return that
        manifest."""
        manifest_mod.check_run_id(ctx.run_id, "staged.run_id")  # from XCom: before any prefix is built
        self._ctx = ctx
        current, _, _ = self._read_manifest()
        self._delete_staged(keep=_listed(current))
        return current

    def _check_staged(self, files: Sequence[Mapping[str, Any]]) -> None:
        """Every staged object is there with the size its group recorded, before the manifest says so."""
        assert self._ctx is not None
        present = self._sizes_in(self.run_prefix()) if files else {}
        for f in files:
            location = str(f["location"])
            size = f.get("stored_bytes") if f.get("stored_bytes") is not None else f.get("bytes")
            if not self._ours(location, self._ctx.run_id):
                raise TransferRefused(
                    f"a group's file location {ascii(location)[:200]} is outside this run's directory "
                    f"s3://{self.bucket}/{self.run_prefix()}/; nothing was committed or deleted"
                )
            if present.get(location) != size:
                raise TransferError(
                    f"s3://{self.bucket}/{location}, staged by this run, is missing or has another size "
                    "(a later run's clean-up removes run directories older than stale_after); "
                    "nothing was committed: run the whole DAG run again"
                )

    def _delete_staged(self, keep: set[str] | None = None) -> None:
        """Delete what this run staged: the objects in its own run directory (but ``keep``)."""
        for key in sorted(set(self._sizes_in(self.run_prefix())) - (keep or set())):
            try:
                self.client.delete_object(Bucket=self.bucket, Key=key)
            except Exception:
                log.warning("Could not delete s3://%s/%s", self.bucket, key, exc_info=True)

    def begin(self, ctx: TransferContext) -> Mapping[str, Any] | None:
        raise TypeError("S3StagedCommit commits staged groups: use commit_staged()")


def _listed(manifest: Mapping[str, Any] | None) -> set[str]:
    """The locations ``manifest`` lists (a discard leaves them)."""
    return {loc for loc in manifest_mod.locations(manifest) if isinstance(loc, str)}


def _began_at(value: Any) -> datetime | None:
    """When the first group began (S3's clock, from XCom): an ISO date-time with its offset, or none."""
    if value in (None, ""):
        return None
    try:
        began = datetime.fromisoformat(str(value))
    except ValueError:
        began = None
    if began is None or began.tzinfo is None:
        raise ExportConfigError("staged.began_at", f"{str(value)[:40]!r} is not a time a stage-files task recorded")
    return began

