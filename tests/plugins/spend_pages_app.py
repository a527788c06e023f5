"""Drive the plugin's pages in-process against a real Airflow metadata database and a real spend
ledger, and print what they answered (run by ``tests/plugins/test_spend_pages.py`` in a migrated
Airflow home: ``python -m tests.plugins.spend_pages_app spec.json answers.json``).

The spec names the DAGs to register (rows in ``dag``, as the dag-processor leaves them, so the
auth manager's ``get_authorized_dag_ids`` finds them) and the requests to make: each as a user of
Airflow's simple auth manager (``tests/system/deny_auth_manager.py``: ``ORVIDEO_TEST_DENY`` denies
chosen users chosen DAGs) with a real JWT, or with no token, and with environment variables of its
own (``env``: another ledger setting for that request). The app is the one the api-server
mounts at ``/orvideo`` (:func:`~airflow_provider_orvideo.plugins.openrouter_video.build_plugin_app`).
Written to ``answers.json`` (Airflow logs to stdout): one JSON object per request, the status,
headers and body, and the provider's log records at WARNING and above while it was answered.
"""

from __future__ import annotations

import json
import logging
import os
import sys
from typing import Any

BUNDLE = "orvideo_spend_pages"


def register_dags(dag_ids: list[str]) -> None:
    from airflow.models.dag import DagModel
    from airflow.models.dagbundle import DagBundleModel
    from airflow.utils.session import create_session

    with create_session() as session:
        if session.get(DagBundleModel, BUNDLE) is None:
            session.add(DagBundleModel(name=BUNDLE))
            session.flush()
        for dag_id in dag_ids:
            if session.get(DagModel, dag_id) is None:
                session.add(
                    DagModel(
                        dag_id=dag_id,
                        bundle_name=BUNDLE,
                        fileloc="/dags/videos.py",
                        is_stale=False,
                        max_active_tasks=16,
                        max_consecutive_failed_dag_runs=0,
                        has_task_concurrency_limits=False,
                    )
                )


def token_of(user: str) -> str:
    from airflow.api_fastapi.app import create_auth_manager
    from airflow.api_fastapi.auth.managers.simple.user import SimpleAuthManagerUser

    role = "admin" if user == "admin" else "viewer"
    return str(create_auth_manager().generate_jwt(SimpleAuthManagerUser(username=user, role=role)))


class Records(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.WARNING)
        self.records: list[dict[str, str]] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append({"level": record.levelname, "message": record.getMessage()})


def main(spec_path: str, answers_path: str) -> None:
    from starlette.applications import Starlette
    from starlette.routing import Mount
    from starlette.testclient import TestClient

    from airflow_provider_orvideo.plugins.openrouter_video import URL_PREFIX, build_plugin_app

    with open(spec_path) as file:
        spec: dict[str, Any] = json.load(file)
    register_dags(spec.get("dags", []))
    records = Records()
    logger = logging.getLogger("airflow_provider_orvideo")
    logger.addHandler(records)
    app = Starlette(routes=[Mount(URL_PREFIX, app=build_plugin_app())])
    answers = []
    with TestClient(app, follow_redirects=False) as client:
        for request in spec["requests"]:
            user = request.get("user")
            headers = {"Authorization": f"Bearer {token_of(user)}"} if user else {}
            del records.records[:]
            saved = {name: os.environ.get(name) for name in request.get("env", {})}
            os.environ.update(request.get("env", {}))  # Airflow reads AIRFLOW__* at each lookup
            try:
                response = client.get(request["path"], headers=headers)
            finally:
                for name, value in saved.items():
                    if value is None:
                        os.environ.pop(name, None)
                    else:
                        os.environ[name] = value
            answers.append(
                {
                    "status": response.status_code,
                    "headers": dict(response.headers),
                    "text": response.text,
                    "logged": list(records.records),
                }
            )
    with open(answers_path, "w") as file:
        json.dump(answers, file)


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
