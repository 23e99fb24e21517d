"""Sources: resumable HTTP downloads from the Sitecore sandbox, expiry handling, integrity checks,
bounds on what a server sends, and names that could spoof a log or a path."""

from __future__ import annotations

import hashlib
from datetime import datetime, timedelta, timezone

import pytest

from airflow_provider_exports.exceptions import (
    LimitExceeded,
    SourceChanged,
    TransferError,
    TransferIntegrityError,
    TransferRefused,
    VendorConnectionError,
)
from airflow_provider_exports.hooks._guard import HostGuard
from airflow_provider_exports.hooks._http import HttpClient
from airflow_provider_exports.transfers.engine import HttpSourceFile
from airflow_provider_exports.transfers.engine.sources import presigned_expiry

from .conftest import FAST_RETRY

MIB = 1024 * 1024


def _digest(source) -> tuple[int, str]:
    h = hashlib.sha256()
    n = 0
    for chunk in source.iter_bytes(256 * 1024):
        h.update(chunk)
        n += len(chunk)
    return n, h.hexdigest()


def _downloads(sandbox) -> list:
    return [r for r in sandbox.sitecore.requests if r.path.startswith("/sitecore-cdp-exports/")]


def test_reads_the_whole_file_and_learns_its_size(sitecore_job):
    job = sitecore_job(rows=1000, rows_per_file=1000)
    (source,) = job.sources
    (_name, size, sha, _rows) = job.expected[0]

    assert _digest(source) == (size, sha)
    assert source.announced_size == size and job.resolver_calls == []


def test_resumes_with_range_after_cut_connections(sitecore_job, sandbox):
    job = sitecore_job("resume", target_bytes=6 * MIB)
    sandbox.sitecore.faults.drop_connection("/sitecore-cdp-exports/*", after_bytes=MIB, times=3)
    (source,) = job.sources

    assert _digest(source) == job.expected[0][1:3]
    downloads = _downloads(sandbox)
    assert len(downloads) == 4
    assert ["range" in r.headers_present for r in downloads] == [False, True, True, True]
    # every resume names the version it continues, so a changed file cannot be spliced in
    assert ["if-range" in r.headers_present for r in downloads] == [False, True, True, True]


@pytest.mark.parametrize("shift", [1000, -1000])
def test_a_resume_that_does_not_continue_where_it_stopped_is_refused(sitecore_job, sandbox, shift):
    job = sitecore_job("shifted", target_bytes=3 * MIB)
    sandbox.sitecore.faults.drop_connection("/sitecore-cdp-exports/*", after_bytes=MIB, times=1)
    # the resume's 206 (honest Content-Range) starts 1000 bytes after / before the byte asked for
    sandbox.sitecore.faults.shift_range("/sitecore-cdp-exports/*", by_bytes=shift, times=1)
    (source,) = job.sources

    with pytest.raises(TransferIntegrityError, match=f"from {MIB} on, the server sent them from {MIB + shift}"):
        _digest(source)


def test_a_file_that_changes_while_it_is_read_is_reported_as_changed(sitecore_job, sandbox):
    job = sitecore_job("changing", target_bytes=3 * MIB)
    sandbox.sitecore.faults.drop_connection("/sitecore-cdp-exports/*", after_bytes=MIB, times=1)
    (source,) = job.sources
    name = job.expected[0][0]
    resume = source.before_retry

    def vendor_rewrites_the_file_then_resume(exc):
        sandbox.sitecore.rewrite_file(job.job_ref, name)
        resume(exc)

    source.before_retry = vendor_rewrites_the_file_then_resume

    with pytest.raises(SourceChanged, match="changed at the source"):
        _digest(source)
    # the resume asked "from byte N if still the same version"; the server answered with the new whole file
    assert [r.status for r in _downloads(sandbox)] == [200, 200]


def test_a_long_download_cut_again_and_again_goes_on_while_it_makes_progress(sitecore_job, sandbox):
    job = sitecore_job("long", target_bytes=6 * MIB)
    (source,) = job.sources
    assert source.max_url_refreshes == 3
    # eight cuts, and after each one the URL in hand has expired: eight fresh URLs, each bringing bytes
    # (the fault counts every request to the file: each cut is followed by one 403 with the dead URL)
    sandbox.sitecore.faults.drop_connection("/sitecore-cdp-exports/*", after_bytes=512 * 1024, times=16)
    resume = source.before_retry

    def urls_expire_at_every_cut(exc):
        if isinstance(exc, VendorConnectionError):
            sandbox.sitecore.faults.expire_urls()
        resume(exc)

    source.before_retry = urls_expire_at_every_cut

    assert _digest(source) == job.expected[0][1:3]
    assert len(job.resolver_calls) == 8


def test_the_vendors_rounded_size_is_checked_before_the_body_is_read(sitecore_job, sandbox):
    job = sitecore_job(rows=1000, rows_per_file=1000)
    real = job.sources[0]
    size = job.expected[0][1]
    fits = HttpSourceFile(real._http, real.name, None, real._resolve, url=real._url, size_range=(size - 10, size))
    too_small = HttpSourceFile(real._http, real.name, None, real._resolve, url=real._url, size_range=(0, size - 1))

    assert _digest(fits)[0] == size
    with pytest.raises(TransferIntegrityError, match="the vendor's listing allows"):
        next(too_small.iter_bytes())


def test_a_connection_that_never_delivers_gives_up(sitecore_job, sandbox):
    job = sitecore_job(rows=1000, rows_per_file=1000)
    sandbox.sitecore.faults.drop_connection("/sitecore-cdp-exports/*", after_bytes=0, times=None)
    (source,) = job.sources
    source.max_attempts = 2

    with pytest.raises(VendorConnectionError):
        _digest(source)
    assert len(_downloads(sandbox)) == 2


def test_an_expired_url_is_fetched_again(sitecore_job, sandbox):
    job = sitecore_job(rows=1000, rows_per_file=1000)
    sandbox.sitecore.faults.expire_urls()
    (source,) = job.sources

    assert _digest(source) == job.expected[0][1:3]
    assert job.resolver_calls == [job.expected[0][0]]
    assert [r.status for r in _downloads(sandbox)] == [403, 200]


def test_a_url_past_its_expiry_is_replaced_before_use(sitecore_job, sandbox):
    job = sitecore_job(rows=1000, rows_per_file=1000)
    (source,) = job.sources
    source._url = _with_amz_date(source._url, hours_ago=2)

    assert _digest(source) == job.expected[0][1:3]
    assert job.resolver_calls == [job.expected[0][0]]
    assert [r.status for r in _downloads(sandbox)] == [200]  # no request went out with the stale URL


def test_refreshes_that_bring_no_byte_are_bounded(sitecore_job, sandbox):
    job = sitecore_job(rows=1000, rows_per_file=1000)
    (source,) = job.sources
    source._resolve = lambda: source._url  # a vendor that keeps handing out the same dead URL
    sandbox.sitecore.faults.expire_urls()

    with pytest.raises(TransferError, match="3 fresh download URLs in a row expired"):
        _digest(source)
    assert [r.status for r in _downloads(sandbox)] == [403] * 4


def test_a_size_that_disagrees_with_the_listing_is_an_integrity_error(sitecore_job, sandbox):
    job = sitecore_job(rows=1000, rows_per_file=1000)
    real = job.sources[0]
    lying = HttpSourceFile(real._http, real.name, job.expected[0][1] + 1, real._resolve, url=real._url)

    with pytest.raises(TransferIntegrityError, match="listed as"):
        _digest(lying)


def test_repr_and_errors_never_show_the_url(sitecore_job, sandbox):
    job = sitecore_job(rows=1000, rows_per_file=1000)
    (source,) = job.sources
    sandbox.sitecore.faults.server_error("/sitecore-cdp-exports/*", times=None, status=500)

    assert "X-Amz" not in repr(source)
    with pytest.raises(Exception) as failure:
        _digest(source)
    assert "X-Amz" not in str(failure.value)


@pytest.mark.parametrize("name", ["/etc/passwd", "a/../../b", "..", ".", "a/./b", "a//b", "dir/", ""])
def test_names_must_be_relative_paths_of_plain_parts(name):
    with pytest.raises(TransferRefused, match=r"not a relative path|non-empty"):
        HttpSourceFile(None, name, None, lambda: "")  # type: ignore[arg-type]


@pytest.mark.parametrize(
    "name",
    [
        "\x1b[31mpart-00000.json.gz",  # an ANSI escape: colours (or clears) the reader's terminal
        "part.json\r\n[2026-01-01 00:00:00] INFO - all files verified",  # a forged log line
        "part-\u202egz.nosj.json",  # right-to-left override: reads as part-json.json.gz
        "part\u2066x\u2069.csv",  # isolate controls
        "part\u200e.csv",  # left-to-right mark
        "part\u061c.csv",  # Arabic letter mark
        "part\u2028next.csv",  # line separator
        "part\u2029next.csv",  # paragraph separator
        "part\x00.csv",
        "part\ud800.csv",  # a lone surrogate
    ],
)
def test_names_that_could_spoof_a_log_or_a_path_are_refused_and_shown_escaped(name):
    with pytest.raises(TransferRefused, match="control, format or line-separator") as refused:
        HttpSourceFile(None, name, None, lambda: "")  # type: ignore[arg-type]
    message = str(refused.value)
    assert ascii(name) in message and message.isascii() and message.isprintable()


@pytest.mark.parametrize("name", ["données-ü.csv", "名前/パート.json", "part 1\u00a0(copy).csv", "a-\U0001f600.csv"])
def test_names_in_any_script_with_spaces_are_accepted(name):
    assert HttpSourceFile(None, name, None, lambda: "").name == name  # type: ignore[arg-type]


def _with_amz_date(url: str, *, hours_ago: float) -> str:
    when = (datetime.now(timezone.utc) - timedelta(hours=hours_ago)).strftime("%Y%m%dT%H%M%SZ")
    base, _, query = url.partition("?")
    parts = [p for p in query.split("&") if not p.startswith(("X-Amz-Date=", "X-Amz-Expires="))]
    return f"{base}?{'&'.join([*parts, f'X-Amz-Date={when}', 'X-Amz-Expires=3600'])}"


def test_presigned_expiry_reads_sigv4_and_sigv2():
    assert presigned_expiry("https://h/p?X-Amz-Date=20260101T000000Z&X-Amz-Expires=60") == (
        datetime(2026, 1, 1, tzinfo=timezone.utc).timestamp() + 60
    )
    assert presigned_expiry("https://h/p?Expires=1700000000&Signature=x") == 1700000000.0
    assert presigned_expiry("https://h/p?X-Amz-Date=garbage&X-Amz-Expires=60") is None
    assert presigned_expiry("https://h/p") is None


# -- windowed reads: bounded ranged requests one after another --------------------------------------


def _windowed(source, window, size=None):
    return HttpSourceFile(
        source._http, source.name, size, source._resolve, url=source._url, window=window
    )


def test_a_windowed_read_asks_for_bounded_ranges_and_delivers_the_whole_file(sitecore_job, sandbox):
    job = sitecore_job("windows", target_bytes=int(3.5 * MIB))
    (_name, size, sha, _rows) = job.expected[0]
    source = _windowed(job.sources[0], MIB)

    assert _digest(source) == (size, sha)
    downloads = _downloads(sandbox)
    starts = range(0, size, MIB)
    assert [r.range for r in downloads] == [f"bytes={a}-{min(a + MIB, size) - 1}" for a in starts]
    assert [r.status for r in downloads] == [206] * len(starts)
    # every window after the first names the version it continues
    assert ["if-range" in r.headers_present for r in downloads] == [False] + [True] * (len(starts) - 1)


def test_a_windowed_read_knows_the_listed_size_and_a_small_file_takes_one_window(sitecore_job, sandbox):
    job = sitecore_job(rows=200, rows_per_file=200)
    (_name, size, sha, _rows) = job.expected[0]
    source = _windowed(job.sources[0], 64 * MIB, size=size)

    assert _digest(source) == (size, sha)
    assert [r.range for r in _downloads(sandbox)] == [f"bytes=0-{size - 1}"]


def test_a_windowed_read_resumes_inside_a_window_after_a_drop(sitecore_job, sandbox):
    job = sitecore_job("windows_drop", target_bytes=3 * MIB)
    (_name, size, sha, _rows) = job.expected[0]
    # the first window is cut after 100 kB; the resume asks for one window from there
    sandbox.sitecore.faults.drop_connection("/sitecore-cdp-exports/*", after_bytes=100_000, times=1)
    source = _windowed(job.sources[0], MIB)
    assert _digest(source) == (size, sha)
    spans = [tuple(map(int, r.range.removeprefix("bytes=").split("-"))) for r in _downloads(sandbox)]
    # the resume starts where the bytes that arrived end (at most 100 kB in), for one window
    assert spans[0] == (0, MIB - 1) and 0 <= spans[1][0] <= 100_000
    assert all(last - first < MIB for first, last in spans) and spans[-1][1] == size - 1


def test_a_file_that_changes_between_windows_is_reported_as_changed(sitecore_job, sandbox):
    job = sitecore_job("windows_change", target_bytes=3 * MIB)
    name = job.expected[0][0]
    source = _windowed(job.sources[0], MIB)
    current = source._current_url
    calls = []

    def vendor_rewrites_the_file_before_the_second_window():
        calls.append(1)
        if len(calls) == 2:
            sandbox.sitecore.rewrite_file(job.job_ref, name)
        return current()

    source._current_url = vendor_rewrites_the_file_before_the_second_window

    with pytest.raises(SourceChanged, match="changed at the source"):
        _digest(source)
    # the second window asked "if still the same version" and got the new file whole
    assert [r.status for r in _downloads(sandbox)] == [206, 200]


def test_a_window_that_does_not_start_where_asked_is_refused(sitecore_job, sandbox):
    job = sitecore_job("windows_shift", target_bytes=3 * MIB)
    sandbox.sitecore.faults.shift_range("/sitecore-cdp-exports/*", by_bytes=1000, times=1)
    with pytest.raises(TransferIntegrityError, match="from 1000"):
        _digest(_windowed(job.sources[0], MIB))


# -- bounds: no byte is read past what the listing, the vendor's rounded size or the server allow -----

ROGUE_PATH = "/sitecore-cdp-exports/rogue/part-00000.json.gz"


@pytest.fixture
def rogue(sandbox):
    """An HttpSourceFile on a path of the Sitecore sandbox that a test's ``answer`` fault serves."""
    clients: list[HttpClient] = []

    def make(**kwargs) -> HttpSourceFile:
        url = sandbox.sitecore.url + ROGUE_PATH
        # the sandbox is the connection's own host, as a Sitecore hook's guard says (tests/conftest)
        client = HttpClient("Sitecore CDP", retry=FAST_RETRY, guard=HostGuard.for_connection("Sitecore CDP", [url]))
        clients.append(client)
        return HttpSourceFile(client, "part-00000.json.gz", kwargs.pop("size", None), lambda: url, url=url, **kwargs)

    yield make
    for client in clients:
        client.close()


def _bytes_before_failure(source) -> tuple[int, BaseException]:
    """How many bytes ``source`` delivered before it failed, and the failure."""
    got = 0
    try:
        for chunk in source.iter_bytes(64 * 1024):
            got += len(chunk)
    except Exception as exc:
        return got, exc
    raise AssertionError(f"the whole body was read ({got} bytes) and nothing refused it")


def _unannounced(sandbox, body: bytes, **kwargs) -> None:
    """The rogue path answers ``body`` chunked: no Content-Length says how long it is."""
    sandbox.sitecore.faults.answer(ROGUE_PATH, body=body, headers={"transfer-encoding": "chunked"}, **kwargs)


def test_a_body_longer_than_the_listed_size_stops_at_the_size(sandbox, rogue):
    _unannounced(sandbox, b"x" * (8 * MIB))
    got, failure = _bytes_before_failure(rogue(size=MIB))

    assert isinstance(failure, TransferIntegrityError)
    assert "more than 1,048,576 bytes, but the listing gives 1,048,576" in str(failure)
    assert got <= MIB  # main read all 8 MiB, then compared


def test_a_body_longer_than_the_vendors_rounded_size_stops_at_its_top(sandbox, rogue):
    _unannounced(sandbox, b"x" * (8 * MIB))
    got, failure = _bytes_before_failure(rogue(size_range=(MIB - 1024, MIB)))

    assert isinstance(failure, TransferIntegrityError)
    assert "the vendor's listing allows at most 1,048,576" in str(failure)
    assert got <= MIB


def test_a_file_nothing_bounds_stops_at_max_file_bytes(sandbox, rogue, monkeypatch):
    monkeypatch.setenv("AIRFLOW__EXPORTS__MAX_FILE_BYTES", str(2 * MIB))
    _unannounced(sandbox, b"x" * (8 * MIB))
    got, failure = _bytes_before_failure(rogue())

    assert isinstance(failure, LimitExceeded) and failure.limit == "max_file_bytes"
    assert "part-00000.json.gz" in str(failure) and "AIRFLOW__EXPORTS__MAX_FILE_BYTES" in str(failure)
    assert got <= 2 * MIB


def test_a_file_within_max_file_bytes_is_read_whole(sandbox, rogue, monkeypatch):
    monkeypatch.setenv("AIRFLOW__EXPORTS__MAX_FILE_BYTES", str(2 * MIB))
    body = b"y" * (2 * MIB)
    _unannounced(sandbox, body)

    assert b"".join(rogue().iter_bytes()) == body


def test_a_resume_is_bounded_by_the_total_the_first_answer_announced(sitecore_job, sandbox):
    job = sitecore_job("announced", target_bytes=2 * MIB)
    size = job.expected[0][1]
    # the first answer announces the file's size and is cut; the resume's answer ignores Range and
    # If-Range and sends a body of no announced length, far longer than the file
    sandbox.sitecore.faults.drop_connection("/sitecore-cdp-exports/*", after_bytes=MIB, times=1)
    sandbox.sitecore.faults.answer(
        "/sitecore-cdp-exports/*", body=b"z" * (16 * MIB), headers={"transfer-encoding": "chunked"}
    )
    got, failure = _bytes_before_failure(job.sources[0])

    assert isinstance(failure, TransferIntegrityError)
    assert f"but the server announced {size:,}" in str(failure)
    assert got <= size


def test_a_windowed_read_of_unknown_total_stops_at_max_file_bytes(sandbox, rogue, monkeypatch):
    window = 64 * 1024
    monkeypatch.setenv("AIRFLOW__EXPORTS__MAX_FILE_BYTES", str(4 * window))
    # every window is answered in full with an unknown total (`/*`): the server never says the end
    for i in range(8):
        sandbox.sitecore.faults.answer(
            ROGUE_PATH,
            status=206,
            body=b"w" * window,
            headers={"Content-Range": f"bytes {i * window}-{(i + 1) * window - 1}/*"},
        )
    got, failure = _bytes_before_failure(rogue(window=window))

    assert isinstance(failure, LimitExceeded) and failure.limit == "max_file_bytes"
    assert got <= 4 * window
    # it stopped in the fifth window: the last three were never asked for
    assert len(sandbox.sitecore.requests_to(ROGUE_PATH)) == 5
