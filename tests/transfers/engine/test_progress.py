"""Progress lines: files, bytes, rate, time left, at most one per interval."""

from __future__ import annotations

import logging

from airflow_provider_exports.transfers.engine.progress import Progress, human_bytes, human_seconds


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def test_lines_every_interval_with_rate_and_time_left(caplog):
    clock = Clock()
    log = logging.getLogger("progress-test")
    progress = Progress(log, sizes=[100_000_000, None], interval=5.0, clock=clock)
    progress.start_file(1, "a.json.gz")

    with caplog.at_level(logging.INFO, logger="progress-test"):
        clock.now = 1.0
        progress.add(10_000_000)  # inside the interval: quiet
        progress.learn_size(2, 100_000_000)
        clock.now = 5.0
        progress.add(40_000_000)
        progress.start_file(2, "b.json.gz")
        clock.now = 10.0
        progress.add(50_000_000)

    lines = [r.getMessage() for r in caplog.records]
    assert lines == [
        "Transfer progress: file 1 of 2 (a.json.gz), 47.68 MiB of 190.73 MiB (25%), 10.0 MB/s, about 15 s left",
        "Transfer progress: files 1, 2 of 2, 95.37 MiB of 190.73 MiB (50%), 10.0 MB/s, about 10 s left",
    ]
    progress.finish_file(1)
    progress.finish_file(2)
    assert progress.summary_line().startswith("Transferred 2 of 2 files, 95.37 MiB in 10 s")


def test_unknown_sizes_give_no_time_left(caplog):
    progress = Progress(logging.getLogger("p2"), sizes=[None], interval=0)
    with caplog.at_level(logging.INFO, logger="p2"):
        progress.add(1024)
    assert "left" not in caplog.text and "1.00 KiB" in caplog.text


def test_human_units():
    assert human_bytes(512) == "512 B" and human_bytes(3 * 1024**3) == "3.00 GiB"
    assert human_seconds(59) == "59 s" and human_seconds(61) == "1 min 01 s" and human_seconds(3700) == "1 h 01 min"
