"""Airflow provider for audience and profile exports from customer-data platforms.

Kept import-light on purpose: nothing here touches Airflow, the network or the disk.
"""

from __future__ import annotations

__version__ = "0.1.0"
__all__ = ["__version__"]
