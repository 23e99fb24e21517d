"""Telling a value to check at DAG parse time from a Jinja template that is only known at run time."""

from __future__ import annotations

from typing import Any


def is_template(value: Any) -> bool:
    """``True`` for a string that Airflow will render (``"{{ ds }}"``): check it after rendering."""
    return isinstance(value, str) and "{{" in value
