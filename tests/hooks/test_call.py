"""A call on the event loop: bounded by its deadline, and cancelled whenever its task is."""

from __future__ import annotations

import asyncio
import time

import pytest

from airflow_provider_exports.hooks._call import Call


async def test_a_cancel_that_lands_with_the_answer_is_not_lost():
    """A killed trigger must stop: the cancel arrives in the same loop turn as the answer."""
    call = Call("Sitecore CDP", "GET", "http://example.invalid/", deadline=time.time() + 30)
    outer: asyncio.Task[str]

    async def answer() -> str:
        await asyncio.sleep(0)
        outer.cancel()  # delivered while the answer is being returned
        return "answer"

    outer = asyncio.create_task(call.bounded(answer))
    with pytest.raises(asyncio.CancelledError):
        await outer
