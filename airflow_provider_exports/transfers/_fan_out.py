"""One export over many workers (docs/scaling-out.md): a list-files task lists the job's files in
groups, stage-files tasks mapped over the groups stage them, one commit task makes them visible.

The three operators are the same for every vendor: the vendor's part is its source
(:class:`~._parts.ExportSource`: how files are listed, referred to and opened again), the
destination's part its ``sink`` in staged form. Until the commit nothing is visible, so a run that
fails for good leaves the destination as the last good run left it. XCom carries references and
counts only, never a URL.
"""

from __future__ import annotations

import inspect
import math
import time
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any, ClassVar, TypeGuard, cast

from airflow.providers.common.compat.sdk import BaseOperator

from airflow_provider_exports.exceptions import (
    ExportConfigError,
    TransferError,
    TransferIntegrityError,
    TransferRefused,
)
from airflow_provider_exports.transfers._base import TransferOperator
from airflow_provider_exports.transfers._parts import Listing
from airflow_provider_exports.transfers.engine import manifest as manifest_mod
from airflow_provider_exports.transfers.engine.sink import Cancellation, Sink, TransferContext, new_run_id
from airflow_provider_exports.utils.assets import check_landed_assets, mark_landed, with_alias_outlets

if TYPE_CHECKING:
    from airflow.providers.common.compat.sdk import Asset, Context

    from airflow_provider_exports.transfers.engine.s3_staging import S3StagingSink
    from airflow_provider_exports.transfers.engine.sql.staging import SqlStagingSink

_GROUP_KEYS = ("run_id", "group", "groups", "job", "files")
#: the newest earlier jobs of a delta export a listing passes on to the commit (every group holds them)
BUILDS_ON_KEPT = 30


def make_groups(
    refs: Sequence[Mapping[str, Any]], files_per_group: int, max_groups: int | None
) -> list[list[Any]]:
    """Consecutive groups of ``files_per_group`` files, in listing order (so group order is file
    order), at most ``max_groups`` of them (groups then grow); one empty group for a job without
    files, so the run still reaches its commit."""
    if not refs:
        return [[]]
    per_group = files_per_group
    if max_groups is not None and math.ceil(len(refs) / per_group) > max_groups:
        per_group = math.ceil(len(refs) / max_groups)
    return [list(refs[i : i + per_group]) for i in range(0, len(refs), per_group)]


def check_job_refs(refs: Any) -> list[str] | None:
    """A job's ``builds_on``, as the listing passed it through XCom: ``None`` (no delta) or at most
    :data:`BUILDS_ON_KEPT` job references."""
    if refs is None:
        return None
    if not isinstance(refs, list) or len(refs) > BUILDS_ON_KEPT or not all(isinstance(r, str) for r in refs):
        raise ExportConfigError("staged", f"job.builds_on is not a list of at most {BUILDS_ON_KEPT} job references")
    return refs


def check_group(group: Any) -> dict[str, Any]:
    """One group a list-files task returned (the mapped ``group`` argument), checked."""
    if not isinstance(group, Mapping) or any(k not in group for k in _GROUP_KEYS):
        raise ExportConfigError(
            "group",
            "map the stage-files task over a list-files task's output: .expand(group=list_files.output)",
        )
    manifest_mod.check_run_id(group["run_id"], "group.run_id")
    return dict(group)


class ListFilesOperator(TransferOperator):
    """The list-files task: the vendor's job and files, as groups of references for ``.expand()``.

    Takes the arguments of its ``source_type``, and:

    :param files_per_group: files each mapped stage-files task moves (default 1).
    :param max_groups: at most this many groups (groups grow to fit); keep it within Airflow's
        ``[core] max_map_length`` (1024 by default).

    Returns a list of groups, each ``{"run_id", "group", "groups", "job", "files"}``: ``job`` holds
    the vendor, export and job references and the job's details for the manifest, ``files`` each
    file's stored name, size and vendor references (:meth:`~._parts.ExportSource.file_ref`).
    """

    marks_landed_assets = False

    def __init__(self, *, files_per_group: int = 1, max_groups: int | None = None, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.files_per_group = files_per_group
        self.max_groups = max_groups
        if files_per_group < 1:
            raise ExportConfigError("files_per_group", f"{files_per_group!r}: give at least 1")
        if max_groups is not None and max_groups < 1:
            raise ExportConfigError("max_groups", f"{max_groups!r}: give at least 1, or None")

    def execute(self, context: Context) -> list[dict[str, Any]]:  # type: ignore[override]
        with self.open_source() as source:
            listing = source.list_files()
            refs = [
                {
                    "name": f.name,
                    "size": f.size,
                    "size_range": list(f.size_range) if f.size_range else None,
                    "attributes": dict(f.attributes),
                    "ref": source.file_ref(f),
                }
                for f in listing.files
            ]
        names = [f.name for f in listing.files]
        doubled = sorted({n for n in names if names.count(n) > 1})
        if doubled or manifest_mod.MANIFEST_NAME in names:
            raise TransferRefused(
                f"the export lists these names twice or reserved: {doubled or [manifest_mod.MANIFEST_NAME]}"
            )
        job = {
            "vendor": source.hook.vendor,
            "export_ref": listing.export_ref,
            "job_ref": listing.job_ref,
            "details": dict(listing.job_details),
            "listed_at": time.time(),
            "builds_on": None if listing.builds_on is None else list(listing.builds_on[:BUILDS_ON_KEPT]),
        }
        groups = make_groups(refs, self.files_per_group, self.max_groups)
        run_id = new_run_id()
        self.log.info(
            "%s job %s: %d file(s) in %d group(s), run %s",
            source.hook.vendor,
            listing.job_ref,
            len(refs),
            len(groups),
            run_id,
        )
        return [
            {"run_id": run_id, "group": i, "groups": len(groups), "job": job, "files": files}
            for i, files in enumerate(groups)
        ]


class StageFilesOperator(TransferOperator):
    """The stage-files task, mapped over groups: move one group's files into staging (S3 objects
    under the run directory, or a staging table), for :class:`FanOutCommitOperator`. The source's
    arguments must name the group's job; what it takes to read a file (a presigned URL) is asked of
    the vendor here, never taken from XCom. A retry redoes that group's files only.

    Takes the arguments of its ``source_type`` and ``destination_type``, and:

    :param group: one group of a list-files task's output (``.expand(group=list_files.output)``).

    Returns ``{"run_id", "group", "groups", "job", "destination", "skipped", "files", ...}`` with
    each file's record (stored location, bytes, SHA-256, rows) and what the commit needs.
    """

    marks_landed_assets = False

    task_template_fields: ClassVar[tuple[str, ...]] = ("group",)

    def __init__(self, *, group: Any, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.group = group

    def execute(self, context: Context) -> dict[str, Any]:
        self._cancellation = Cancellation()
        group = check_group(self.group)
        job = group["job"]
        with self.open_source() as source:
            files, output = source.group_files(group)
            sink = cast("S3StagingSink | SqlStagingSink", self.make_sink(source, output, group))
            summary = self.move(Listing(files, job["export_ref"], job["job_ref"], job["details"]), sink)
        return {
            "run_id": group["run_id"],
            "group": group["group"],
            "groups": group["groups"],
            "job": job,
            "destination": {**sink.fan_out_destination(), "overwrite": self.overwrite},
            "skipped": summary.skipped,
            "files": [] if summary.skipped else sink.staged_files,
            **sink.staged_state(),
        }


class FanOutCommitOperator(BaseOperator):
    """Commit a fanned-out run once every group is staged: the S3 manifest, or the SQL transaction.

    :param staged: every stage-files task's result: ``stage_files.output``. (templated)
    :param landed_assets: Assets whose event is emitted only when the commit landed the job, not
        when it was already committed (:mod:`~airflow_provider_exports.utils.assets`).
    :param stale_after: seconds; what other runs staged more than this before this run and never
        committed (failed runs) is removed after the commit: S3 run directories, SQL staging tables.

    The destination (bucket and prefix, or connection, table and mode) is the one the stage-files
    tasks staged into: read from their results, and checked against the stage-files task's own
    arguments in the DAG (``stage_destination``, taken from ``staged`` when the DAG is parsed and
    rendered as that task renders them), so a result changed in XCom cannot point the commit
    elsewhere. Returns the run's summary, as a one-task transfer does (``skipped`` when the job was
    already committed).
    """

    template_fields: Sequence[str] = ("staged", "stage_destination")

    def __init__(
        self, *, staged: Any, stale_after: float = 86400.0, landed_assets: Sequence[Asset] = (), **kwargs: Any
    ) -> None:
        if assets := check_landed_assets(landed_assets):
            kwargs["outlets"] = with_alias_outlets(kwargs.get("outlets"), assets)
        super().__init__(**kwargs)
        self.landed_assets = landed_assets
        self.staged = staged
        self.stale_after = stale_after
        self.stage_destination = stage_destination(staged)
        self._cancellation: Cancellation | None = None
        if stale_after < 0:
            raise ExportConfigError("stale_after", "must be 0 seconds or more")

    def execute(self, context: Context) -> dict[str, Any]:
        self._cancellation = Cancellation()
        groups = self._checked_groups()
        first = groups[0]
        job, destination = first["job"], first["destination"]
        check_destination(destination, self.stage_destination)
        ctx = TransferContext(
            job["vendor"],
            job["export_ref"],
            job["job_ref"],
            run_id=first["run_id"],
            cancellation=self._cancellation,
        )
        commit = self._commit_s3 if destination["kind"] == "s3" else self._commit_sql
        summary = commit(ctx, groups, destination)
        mark_landed(context, check_landed_assets(self.landed_assets), summary, self.log)
        return summary

    def on_kill(self) -> None:
        if self._cancellation is not None:
            self._cancellation.cancel_soon("the task was killed")

    def _checked_groups(self) -> list[dict[str, Any]]:
        groups = sorted(
            (dict(g) for g in self.staged or []), key=lambda g: int(cast("Any", g.get("group", -1)))
        )
        if not groups or any(not isinstance(g.get("destination"), Mapping) for g in groups):
            raise ExportConfigError(
                "staged", "give the stage-files tasks' results: staged=stage_files.output"
            )
        first = groups[0]
        manifest_mod.check_run_id(first["run_id"], "staged.run_id")
        for g in groups:
            for key in ("run_id", "groups", "job", "destination"):
                if g[key] != first[key]:
                    raise ExportConfigError(
                        "staged",
                        f"groups {first['group']} and {g['group']} differ in {key}: one run's groups only",
                    )
        numbers = [int(g["group"]) for g in groups]
        if numbers != list(range(int(first["groups"]))):
            raise ExportConfigError(
                "staged",
                f"groups {numbers} were staged, the listing made {first['groups']}: commit them all at once",
            )
        return groups

    def _commit_s3(
        self, ctx: TransferContext, groups: list[dict[str, Any]], dest: Mapping[str, Any]
    ) -> dict[str, Any]:
        from airflow_provider_exports.transfers.engine.s3_staging import S3StagedCommit

        sink = S3StagedCommit(
            dest["bucket"],
            dest["prefix"],
            aws_conn_id=dest["aws_conn_id"],
            decompress=dest["decompress"],
            extra_args=dest["extra_args"],
            allow_empty=dest["allow_empty"],
            stale_after=self.stale_after,
            bucket_argument="s3_bucket",
        )
        if all(g["skipped"] for g in groups):
            current, _, _ = sink._read_manifest()
            if _same_job(current, ctx):
                self.log.info("%s job %s is already at %s; skipping", ctx.vendor, ctx.job_ref, sink.uri())
                return _summary(current, sink, skipped=True)
        if any(g["skipped"] for g in groups):
            # the manifest changed while the groups staged: only the same job may be there now
            current = sink.discard_staged(ctx)
            if _same_job(current, ctx):
                return _summary(current, sink, skipped=True)
            raise TransferError(
                f"s3://{dest['bucket']}/{dest['prefix']} changed while this run staged {ctx.vendor} job "
                f"{ctx.job_ref}; its staged files were discarded: run the whole DAG run again"
            )
        manifest = _manifest(ctx, groups, sink)
        winner = sink.commit_staged(ctx, manifest, groups)
        if winner is not None:
            self.log.info(
                "A concurrent run (%s) committed %s job %s first",
                winner.get("run_id"),
                ctx.vendor,
                ctx.job_ref,
            )
            return _summary(winner, sink, skipped=True)
        self.log.info(
            "Committed %d file(s) of %d group(s) to %s; manifest at %s",
            len(manifest["files"]),
            len(groups),
            sink.uri(),
            sink.manifest_location(),
        )
        return _summary(manifest, sink, skipped=False)

    def _commit_sql(
        self, ctx: TransferContext, groups: list[dict[str, Any]], dest: Mapping[str, Any]
    ) -> dict[str, Any]:
        from airflow_provider_exports.transfers._catch_up import missed_jobs
        from airflow_provider_exports.transfers.engine.sql.staging import SqlStagedCommit

        for g in groups:  # the manifest records each file's rows; the commit checks each group's total
            listed = sum(int(f.get("rows") or 0) for f in g["files"])
            if not g["skipped"] and listed != int(g.get("rows") or 0):
                raise TransferIntegrityError(
                    f"group {g['group']} reports {g.get('rows')} row(s) but its files {listed}: nothing "
                    "was committed"
                )
        sink = SqlStagedCommit(
            dest["table"],
            conn_id=dest["conn_id"],
            mode=dest["mode"],
            key_columns=dest["key_columns"],
            removed_when=dest.get("removed_when"),
            create_table=dest["create_table"],
            on_schema_change=dest.get("on_schema_change", "append_new_columns"),
            allow_empty=dest["allow_empty"],
            manifest_table=dest["manifest_table"],
            lock_timeout=dest["lock_timeout"],
            stale_after=self.stale_after,
        )
        manifest = _manifest(ctx, groups, sink)
        builds_on = check_job_refs(groups[0]["job"].get("builds_on"))
        if missed := missed_jobs(sink, ctx.vendor, ctx.export_ref, ctx.job_ref, builds_on):
            raise TransferRefused(
                f"{ctx.vendor} job {ctx.job_ref} builds on jobs {dest['table']} does not hold: {missed} (oldest "
                "first); nothing was committed. Apply them first (the transfer operator, not fanned out, "
                "does so itself)"
            )
        try:
            existing = sink.begin(ctx)
            if _same_job(existing, ctx) and not dest["overwrite"]:
                self.log.info("%s job %s is already in %s; skipping", ctx.vendor, ctx.job_ref, dest["table"])
                sink.abort()
                sink.drop_stages(ctx.run_id)
                return _summary(existing, sink, skipped=True)
            if any(g["skipped"] for g in groups):
                raise TransferError(
                    f"some groups found {ctx.vendor} job {ctx.job_ref} already in {dest['table']}, which no longer "
                    "holds it: run the whole DAG run again"
                )
            sink.gather(groups)
            winner = sink.commit(manifest)
        except BaseException:
            # the staging tables stay: a retry of this task commits them
            ctx.cancellation.cancel("the commit stopped")
            sink.abort()
            raise
        sink.drop_stages(ctx.run_id)
        if winner is not None:
            return _summary(winner, sink, skipped=True)
        self.log.info(
            "Committed %d file(s), %s row(s) of %d group(s) into %s",
            len(manifest["files"]),
            manifest.get("total_rows"),
            len(groups),
            dest["table"],
        )
        return _summary(manifest, sink, skipped=False)


def _same_job(manifest: Mapping[str, Any] | None, ctx: TransferContext) -> TypeGuard[Mapping[str, Any]]:
    return manifest_mod.same_job(manifest, vendor=ctx.vendor, export_ref=ctx.export_ref, job_ref=ctx.job_ref)


def _manifest(ctx: TransferContext, groups: Sequence[Mapping[str, Any]], sink: Sink) -> dict[str, Any]:
    """The run's manifest: every group's files, committed into what ``sink`` describes."""
    job = groups[0]["job"]
    return manifest_mod.build_manifest(
        vendor=ctx.vendor,
        export_ref=ctx.export_ref,
        job_ref=ctx.job_ref,
        run_id=ctx.run_id,
        destination=sink.describe(),
        files=[manifest_mod.FileRecord(**f) for g in groups for f in g["files"]],
        started_at=float(job["listed_at"]),
        finished_at=time.time(),
        job_details=job["details"],
    )


def _summary(manifest: Mapping[str, Any], sink: Sink, *, skipped: bool) -> dict[str, Any]:
    from airflow_provider_exports.transfers.engine.runner import _summary_from_manifest

    return _summary_from_manifest(manifest, sink, skipped=skipped).to_dict()


#: a stage-files operator's arguments that say where it writes, by the destination key its results
#: give them under, per kind of destination (``SqlSink`` and ``S3Sink`` keep the rest at their defaults)
DESTINATION_ARGS = {
    "s3": {
        "s3_bucket": "bucket",
        "s3_key_prefix": "prefix",
        "aws_conn_id": "aws_conn_id",
        "s3_extra_args": "extra_args",
        "allow_empty": "allow_empty",
        "overwrite": "overwrite",
    },
    "sql": {
        arg: arg
        for arg in (
            *("conn_id", "table", "mode", "key_columns", "create_table", "on_schema_change"),
            *("allow_empty", "overwrite"),
        )
    },
}
#: what a SQL commit's sink takes at its defaults, whatever a result says
SQL_FIXED = ("manifest_table", "lock_timeout")


def stage_destination(staged: Any) -> dict[str, Any] | None:
    """Where the stage-files task behind ``staged`` (its ``.output``) writes, from its own arguments
    in the DAG: ``{"task_id", "kind", "args": {destination key: argument}}``; ``None`` for results
    given as they are (a list in the DAG file). Arguments left out count at their defaults."""
    operator = getattr(staged, "operator", None)
    if operator is None:
        return None
    cls = getattr(operator, "operator_class", type(operator))  # a mapped task, or a task
    if not (isinstance(cls, type) and issubclass(cls, StageFilesOperator)):
        raise ExportConfigError(
            "staged", f"{operator.task_id!r} is not a stage-files task: give staged=stage_files.output"
        )
    given = getattr(operator, "partial_kwargs", None)
    kind = cls._kind()
    assert kind is not None, "a stage-files task names its destination"
    args: dict[str, Any] = {}
    for arg, key in DESTINATION_ARGS[kind].items():
        if given is not None and arg in given:
            args[key] = given[arg]
        elif given is None and hasattr(operator, arg):
            args[key] = getattr(operator, arg)
        elif (default := _default_of(cls, arg)) is not inspect.Parameter.empty:
            args[key] = default
    removed_when = cls.source_type.removed_when
    return {
        "task_id": operator.task_id,
        "kind": kind,
        "args": args,
        "removed_when": list(removed_when) if removed_when else None,
    }


def _default_of(cls: type, arg: str) -> Any:
    """The default of ``arg`` in the ``__init__`` of ``cls`` or the first class of its MRO that takes it."""
    for klass in cls.__mro__:
        init = vars(klass).get("__init__")
        if init is None:
            continue
        parameter = inspect.signature(init).parameters.get(arg)
        if parameter is not None:
            return parameter.default
    return inspect.Parameter.empty


def check_destination(destination: Mapping[str, Any], expected: Mapping[str, Any] | None) -> None:
    """Refuse a destination from XCom that is not the one the stage-files task's arguments name."""
    if expected is None:
        return
    wanted: dict[str, Any] = {"kind": expected["kind"], **expected["args"]}
    if expected["kind"] == "sql":
        from airflow_provider_exports.transfers.engine.sql import SqlSink

        wanted.update({key: _default_of(SqlSink, key) for key in SQL_FIXED})
    for key, value in wanted.items():
        found = destination.get(key)
        if _comparable(key, found) != _comparable(key, value):
            raise ExportConfigError(
                "staged.destination",
                f"{key} is {ascii(found)[:80]} in the stage-files results, but task "
                f"{expected['task_id']!r} is given {ascii(value)[:80]}: the commit follows the DAG, "
                "not values changed in XCom",
            )
    # whether the job is a delta is the files' to say: XCom may only choose none or the vendor's mark
    if destination.get("removed_when") not in (None, expected.get("removed_when")):
        raise ExportConfigError(
            "staged.destination",
            f"removed_when is {ascii(destination.get('removed_when'))[:80]} in the stage-files results; "
            f"the source of task {expected['task_id']!r} marks removed rows only as "
            f"{expected.get('removed_when')!a}",
        )


def _comparable(key: str, value: Any) -> Any:
    if key == "prefix":
        return str(value or "").strip("/")
    if key == "extra_args":
        return dict(value or {}) if value is None or isinstance(value, Mapping) else value
    if key == "key_columns":
        return list(value) if isinstance(value, (list, tuple)) else value
    return value
