"""The object-storage destination of the vendor transfers: any store Airflow's ``ObjectStoragePath``
knows, through :class:`~airflow_provider_exports.transfers.engine.object_store_sink.ObjectStoreSink`.

The S3 operators keep their own multipart fast path; this destination is for the other stores
(``gs://``, ``abfs://``, ``file://``...) and for S3 where the S3 operator's arguments do not fit.
"""

from __future__ import annotations

from typing import Any, ClassVar

from airflow_provider_exports.transfers._base import VendorTransferOperator
from airflow_provider_exports.transfers.engine.object_store_sink import (
    DEFAULT_BLOCK_SIZE,
    ObjectStoreSink,
    check_destination,
)
from airflow_provider_exports.utils.templating import is_template


class ToObjectStorageMixin(VendorTransferOperator):
    """The object-storage destination: ``destination`` (a URI), ``destination_conn_id`` (templated),
    ``block_size``; see :class:`ObjectStoreSink`."""

    OBJECT_STORAGE_TEMPLATE_FIELDS: ClassVar[tuple[str, ...]] = ("destination", "destination_conn_id")

    def __init__(
        self,
        *,
        destination: str,
        destination_conn_id: str | None = None,
        block_size: int = DEFAULT_BLOCK_SIZE,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.destination = destination
        self.destination_conn_id = destination_conn_id
        self.block_size = block_size
        if isinstance(destination, str) and not is_template(destination):
            check_destination(destination)

    def object_store_sink(self, *, decompress: bool = False) -> ObjectStoreSink:
        return ObjectStoreSink(
            self.destination,
            conn_id=self.destination_conn_id,
            decompress=decompress,
            allow_empty=self.allow_empty,
            block_size=self.block_size,
        )
