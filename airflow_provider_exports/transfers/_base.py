"""The vendor → destination transfer operator: a source, a destination and the engine.

A public operator is a few lines: it names its ``source_type`` (the vendor's export,
:class:`~._parts.ExportSource`) and its ``destination_type`` (``_destinations.py``). Their fields
are its arguments: :class:`TransferOperator` gives each public operator an ``__init__`` whose
signature is theirs (so ``default_args``, ``.partial()`` and ``.expand()`` know them), keeping each
argument verbatim as an attribute of the same name, with the parts' ``template_fields``. When the
task runs, the parts are made from the rendered attributes: the source lists the job's files, the
destination makes the sink, the engine moves them, all or nothing, and ``on_kill`` stops it
(uploads aborted, a load rolled back).
"""

from __future__ import annotations

import inspect
import logging
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import MISSING, Field
from functools import cached_property
from typing import TYPE_CHECKING, Any, ClassVar, cast

from airflow.providers.common.compat.sdk import BaseOperator

from airflow_provider_exports.exceptions import ExportConfigError
from airflow_provider_exports.transfers._parts import Destination, ExportSource, Listing, Part, arguments
from airflow_provider_exports.transfers.engine.sink import Cancellation
from airflow_provider_exports.utils.assets import check_landed_assets, mark_landed, with_alias_outlets
from airflow_provider_exports.utils.openlineage import destination_ref

if TYPE_CHECKING:
    from airflow.providers.common.compat.sdk import Asset, Context
    from airflow.providers.openlineage.extractors import OperatorLineage

    from airflow_provider_exports.transfers.engine import TransferSummary
    from airflow_provider_exports.transfers.engine.sink import Sink


class TransferOperator(BaseOperator):
    """Move the output files of one vendor job into a destination, all or nothing; return a summary.

    Takes the arguments of its ``source_type`` and ``destination_type``, and:

    :param overwrite: move the job again even when its manifest is already at the destination.
    :param max_concurrent_files: files moved at once.
    :param allow_empty: commit a job without any data (it replaces what the destination had);
        by default such a job fails and the destination keeps what it had.
    :param landed_assets: Assets whose event is emitted only when the run landed the job, not when
        it found it already there (:mod:`~airflow_provider_exports.utils.assets`).
    """

    source_type: ClassVar[type[ExportSource[Any]]]
    destination_type: ClassVar[type[Destination] | None] = None
    #: the template fields of this kind of task, after those of its parts
    task_template_fields: ClassVar[tuple[str, ...]] = ()
    #: whether execute() marks ``landed_assets`` (a fan-out's list and stage tasks land nothing)
    marks_landed_assets: ClassVar[bool] = True
    # live clients and the run's stop signal are shared, not copied, when Airflow copies the task
    shallow_copy_attrs: Sequence[str] = ("hook", "_cancellation")

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        if "source_type" in vars(cls) or "destination_type" in vars(cls):  # the parts are named here
            parts: list[type[Part]] = [cls.source_type, *([cls.destination_type] if cls.destination_type else [])]
            by_part = {part: arguments(part, cls._kind()) for part in parts}
            names = {f.name for fields in by_part.values() for f in fields}
            parts_fields = (n for part in by_part for n in part.template_fields if n in names)
            cls.template_fields = tuple(dict.fromkeys((*parts_fields, *cls.task_template_fields)))
            cls.__init__ = _init_taking(cls, by_part)  # type: ignore[method-assign]
            cls.__doc__ = f"{(cls.__doc__ or '').rstrip()}\n\n    {_arguments_doc(cls, by_part)}\n    "

    def __init__(
        self,
        *,
        overwrite: bool = False,
        max_concurrent_files: int = 4,
        allow_empty: bool = False,
        landed_assets: Sequence[Asset] = (),
        **kwargs: Any,
    ) -> None:
        if assets := check_landed_assets(landed_assets):
            if not self.marks_landed_assets:
                raise ExportConfigError(
                    "landed_assets", f"{type(self).__name__} lands nothing itself; give it to the commit task"
                )
            kwargs["outlets"] = with_alias_outlets(kwargs.get("outlets"), assets)
        super().__init__(**kwargs)
        self.landed_assets = landed_assets
        self.overwrite = overwrite
        self.max_concurrent_files = max_concurrent_files
        self.allow_empty = allow_empty
        # made in execute (an Event cannot be deep-copied, and Airflow copies operators)
        self._cancellation: Cancellation | None = None

    @classmethod
    def _kind(cls) -> str | None:
        return cls.destination_type.kind if cls.destination_type else None

    @cached_property
    def hook(self) -> Any:
        """The vendor's hook, made from the rendered connection argument the source names."""
        hook_class = self.source_type.hook_class
        return hook_class(getattr(self, hook_class.conn_name_attr))

    def _values(self, part: type[Part]) -> dict[str, Any]:
        return {f.name: getattr(self, f.name) for f in arguments(part, self._kind())}

    @contextmanager
    def open_source(self) -> Iterator[ExportSource[Any]]:
        """The source, made from the rendered arguments; the vendor's clients released after it."""
        source = self.source_type(hook=self.hook, **self._values(self.source_type))
        try:
            yield source
        finally:
            source.hook.close()

    def make_sink(self, source: ExportSource[Any], output: Any, group: Mapping[str, Any] | None = None) -> Sink:
        """The destination's sink, with what the vendor's files need of it (staged for a ``group``)."""
        assert self.destination_type is not None
        destination = self.destination_type(**self._values(self.destination_type))
        options = source.sink_options(destination.kind, output)
        return destination.sink(allow_empty=self.allow_empty, group=group, **options)

    def execute(self, context: Context) -> dict[str, Any]:
        from airflow_provider_exports.transfers._catch_up import missed_jobs

        self._cancellation = Cancellation()
        with self.open_source() as source:
            listing = source.list_files()
            sink = self.make_sink(source, listing.output)
            missed = missed_jobs(sink, self.hook.vendor, listing.export_ref, listing.job_ref, listing.builds_on)
            caught_up = [self._catch_up(source, job_ref) for job_ref in missed]
            self._lineage = (list(listing.inputs), destination_ref(sink))
            summary = self.move(listing, sink).to_dict()
        if caught_up:
            summary["caught_up"] = caught_up
        mark_landed(context, check_landed_assets(self.landed_assets), summary, self.log)
        return summary

    def _catch_up(self, source: ExportSource[Any], job_ref: str) -> dict[str, Any]:
        """Move an earlier job of a delta export that the destination misses (see ``_catch_up.py``)."""
        self.log.warning("Job %s came before this run's and is not in the destination: moving it first", job_ref)
        try:
            earlier = source.earlier_job(job_ref).list_files()
        except Exception as exc:
            exc.add_note(
                f"Listing job {job_ref}, which came before this run's and which the destination misses (its "
                "changes must be applied first); if the vendor no longer serves it, reload from a full export."
            )
            raise
        done = self.move(earlier, self.make_sink(source, earlier.output))
        return {"job_ref": done.job_ref, "skipped": done.skipped, "file_count": done.file_count, "rows": done.rows}

    def move(self, listing: Listing, sink: Sink) -> TransferSummary:
        """Run the engine: the listed files into ``sink``, stopped by ``on_kill``."""
        from airflow_provider_exports.transfers.engine.runner import run_transfer

        assert self._cancellation is not None, "made in execute"
        return run_transfer(
            listing.files,
            sink,
            vendor=self.hook.vendor,
            export_ref=listing.export_ref,
            job_ref=listing.job_ref,
            overwrite=self.overwrite,
            max_concurrent_files=self.max_concurrent_files,
            log=cast("logging.Logger", self.log),  # Airflow's task logger speaks the same methods
            cancellation=self._cancellation,
            job_details=listing.job_details,
        )

    def get_openlineage_facets_on_complete(self, task_instance: Any) -> OperatorLineage | None:
        """The vendor job read and the prefix or table written (only called with the OpenLineage
        provider installed; it is imported here, never at module import)."""
        from airflow_provider_exports.utils.openlineage import operator_lineage

        inputs, output = getattr(self, "_lineage", None) or ([], None)
        return operator_lineage(inputs, [output] if output is not None else [])

    def on_kill(self) -> None:
        # Stop our own transfer, which aborts its uploads or rolls its load back.
        if self._cancellation is not None:
            self._cancellation.cancel_soon("the task was killed")


def _init_taking(cls: type[TransferOperator], by_part: Mapping[type[Part], list[Field[Any]]]) -> Callable[..., None]:
    """The ``__init__`` of an operator naming its parts: their fields as keyword arguments, each
    kept verbatim as an attribute of the same name, checked by its part where already known. A name
    both parts take (Cordial's ``aws_conn_id`` into S3) is one argument, given to both."""
    taken = list({f.name: f for fields in by_part.values() for f in fields}.values())

    def __init__(self: TransferOperator, **kwargs: Any) -> None:
        # Airflow's apply_defaults has already refused a call without a required argument
        values = {f.name: kwargs.pop(f.name, f.default) for f in taken}
        super(cls, self).__init__(**kwargs)
        for name, value in values.items():
            setattr(self, name, value)
        for part, fields in by_part.items():
            part.check({f.name: values[f.name] for f in fields})

    def parameter(f: Field[Any]) -> inspect.Parameter:
        default = inspect.Parameter.empty if f.default is MISSING else f.default
        return inspect.Parameter(f.name, inspect.Parameter.KEYWORD_ONLY, default=default, annotation=f.type)

    __init__.__signature__ = inspect.Signature(  # type: ignore[attr-defined]
        [
            inspect.Parameter("self", inspect.Parameter.POSITIONAL_ONLY),
            *map(parameter, taken),
            inspect.Parameter("kwargs", inspect.Parameter.VAR_KEYWORD, annotation="Any"),
        ]
    )
    __init__.__qualname__ = f"{cls.__qualname__}.__init__"
    return __init__


def _arguments_doc(cls: type[TransferOperator], by_part: Mapping[type[Part], list[Field[Any]]]) -> str:
    """The class docstring's last line: whose arguments the operator takes, by name."""

    def named(klass: type) -> str:
        return f":class:`{klass.__module__}.{klass.__qualname__}`"

    listed = [f"{named(part)} ({', '.join(f'``{f.name}``' for f in fields)})" for part, fields in by_part.items()]
    return f"Takes the arguments of {', '.join(listed)} and {named(cls.__mro__[1])}."
