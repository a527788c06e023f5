"""Airflow's simple auth manager, denying chosen users chosen DAGs (it has no per-DAG rules).

Set as ``[core] auth_manager`` of a test stack; ``ORVIDEO_TEST_DENY`` lists ``user:dag_id`` pairs
(comma separated). Everything else is the simple auth manager's own role check, so the gallery's
list of readable DAGs (``get_authorized_dag_ids``, which asks ``is_authorized_dag`` per DAG)
follows the same rule as the pages.
"""

from __future__ import annotations

import os
from typing import Any

from airflow.api_fastapi.auth.managers.simple.simple_auth_manager import SimpleAuthManager


class DagDenyingAuthManager(SimpleAuthManager):
    def is_authorized_dag(
        self, *, method: Any, user: Any, access_entity: Any = None, details: Any = None
    ) -> bool:
        pairs = (
            pair.split(":", 1) for pair in os.environ.get("ORVIDEO_TEST_DENY", "").split(",") if ":" in pair
        )
        if details is not None and (user.get_name(), details.id) in {(u, d) for u, d in pairs}:
            return False
        return bool(
            super().is_authorized_dag(method=method, user=user, access_entity=access_entity, details=details)
        )
