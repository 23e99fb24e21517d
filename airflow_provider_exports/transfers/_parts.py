"""The two parts every transfer operator is made of (``_base.py``): the vendor's export
(:class:`ExportSource`) and where it lands (:class:`Destination`), each a dataclass of the
operator's arguments.
"""

from __future__ import annotations

import dataclasses
from abc import ABC, abstractmethod
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, ClassVar, Generic, TypeVar

from airflow_provider_exports.utils.templating import is_template

if TYPE_CHECKING:
    from airflow_provider_exports.hooks._base import ExportsVendorHook
    from airflow_provider_exports.transfers.engine.sink import Sink
    from airflow_provider_exports.transfers.engine.sources import SourceFile
    from airflow_provider_exports.utils.openlineage import LineageRef

#: field metadata: the kinds of destination whose operators take a source field as an argument
#: (no entry: every operator of the source takes it)
_INTO = "into"

HookT = TypeVar("HookT", bound="ExportsVendorHook[Any]")


def only_into(*kinds: str, default: Any) -> Any:
    """A source field that only the operators into ``kinds`` of destination take as an argument."""
    return field(default=default, metadata={_INTO: kinds})


def arguments(part: type, kind: str | None) -> list[dataclasses.Field[Any]]:
    """The fields of ``part`` that an operator into a destination of ``kind`` (``None``: a
    list-files task, which writes nowhere) takes as arguments."""
    return [f for f in dataclasses.fields(part) if kind in f.metadata.get(_INTO, (kind,))]


def given(value: Any) -> bool:
    """Whether ``value`` is known when the DAG is parsed: neither a template nor another task's
    output (those are checked once the task runs)."""
    return not is_template(value) and not hasattr(value, "operator")


@dataclass
class Listing:
    """One job's files as its source lists them, and what a transfer records of the job."""

    files: Sequence[SourceFile]
    export_ref: str
    job_ref: str
    job_details: Mapping[str, Any] = field(default_factory=dict)
    #: what the job is, named for OpenLineage (``utils/openlineage.py``)
    inputs: Sequence[LineageRef] = ()
    #: what the source reads its sink options from (:meth:`ExportSource.sink_options`)
    output: Any = None
    #: a delta export's earlier jobs this one's changes build on, newest first (``None``: not a delta)
    builds_on: Sequence[str] | None = None


class Part(ABC):
    """A source or a destination: its fields are operator arguments, declared once."""

    template_fields: ClassVar[tuple[str, ...]]

    @classmethod
    @abstractmethod
    def check(cls, arguments: Mapping[str, Any]) -> None:
        """Refuse, naming the field, what is wrong among the arguments known when the DAG is parsed."""


@dataclass(kw_only=True)
class ExportSource(Part, Generic[HookT]):
    """The vendor side of a transfer: one export job, its files, and how to open them again from a
    fan-out group's references. Presigned URLs are fetched when a file is opened, never stored."""

    #: the vendor's hook; its ``conn_name_attr`` names the source's connection argument
    hook_class: ClassVar[type[ExportsVendorHook[Any]]]
    #: ``(column, value)`` marking rows that ``merge`` removes (a delta export), where the vendor has them
    removed_when: ClassVar[tuple[str, str] | None] = None

    #: the operator's own hook (not an argument: made from the connection argument)
    hook: HookT = field(repr=False, metadata={_INTO: ()})

    @abstractmethod
    def list_files(self) -> Listing:
        """Find the job and list its files."""

    def earlier_job(self, job_ref: str) -> ExportSource[HookT]:
        """The source of one of the jobs a listing :attr:`~Listing.builds_on` (sources that name
        such jobs say how to list one)."""
        raise NotImplementedError(f"{type(self).__name__} lists no earlier jobs")

    def file_ref(self, file: SourceFile) -> dict[str, Any]:
        """What a stage-files task needs to open ``file`` again (JSON; never a URL): by default
        its attributes."""
        return dict(file.attributes)

    @abstractmethod
    def group_files(self, group: Mapping[str, Any]) -> tuple[list[SourceFile], Any]:
        """A fan-out group's files, opened again from their references (a group naming another job
        is refused); and the output :meth:`sink_options` reads."""

    @abstractmethod
    def sink_options(self, kind: str, output: Any) -> dict[str, Any]:
        """What the vendor's files need of a sink of ``kind``, given the job's ``output``."""


class Destination(Part):
    """Where a transfer lands, and the sink it writes through."""

    #: ``s3``, ``sql`` or ``object_storage``: the stage-files results name it, the commit dispatches on it
    kind: ClassVar[str]

    @abstractmethod
    def sink(self, *, allow_empty: bool, group: Mapping[str, Any] | None = None) -> Sink:
        """The sink of one run, staged for a fan-out ``group`` (its files kept apart for
        :class:`~._fan_out.FanOutCommitOperator`). A destination also takes, as keyword arguments,
        the options a source's files need of it (:meth:`ExportSource.sink_options`)."""
