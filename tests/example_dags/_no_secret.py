"""One check for the example DAG tests: no secret in a run's task log, XComs, rendered fields or triggers."""

from __future__ import annotations

import json
from collections.abc import Iterable


def assert_no_secret(run, task_log: str, secrets: Iterable[str], **more_texts: str) -> None:
    """Fail naming where any of ``secrets`` shows: the task log, the run's XComs, its rendered
    template fields, the trigger rows the run left, and ``more_texts`` (name=text)."""
    from airflow.models.renderedtifields import RenderedTaskInstanceFields
    from airflow.models.trigger import Trigger
    from airflow.models.xcom import XComModel
    from airflow.utils.session import create_session

    with create_session() as session:
        xcoms = [json.dumps(x.value) for x in session.query(XComModel).filter_by(run_id=run.run_id)]
        rendered = [
            json.dumps(r.rendered_fields, default=str)
            for r in session.query(RenderedTaskInstanceFields).filter_by(run_id=run.run_id)
        ]
        triggers = [json.dumps(t.kwargs, default=str) for t in session.query(Trigger)]
    assert xcoms and rendered, "the run left XComs and rendered fields to check"
    secrets = [s for s in secrets if s]
    places = {
        "task log": task_log,
        "xcom": "\n".join(xcoms),
        "rendered": "\n".join(rendered),
        "trigger rows": "\n".join(triggers),
        **more_texts,
    }
    for where, text in places.items():
        leaked = [s for s in secrets if s in text]
        assert not leaked, f"{where} shows {leaked}"
