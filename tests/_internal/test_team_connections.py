"""``team_may_use_connection`` against a real multi-team Airflow (3.2+): no mocks of Airflow.

A subprocess with its own ``AIRFLOW_HOME`` (SQLite) runs ``airflow db migrate``; a script then sets
up what a platform engineer does: the teams (Airflow's ``airflow teams create`` code), a DAG
bundle owned by ``team_a`` and one owned by no team (``[dag_processor] dag_bundle_config_list``
with ``"team_name"``, written to the database by the dag-processor's own ``sync_bundles_to_db``),
one DAG row in each, connections in the metadata database of ``team_a``, ``team_b`` and no team,
and connections in environment variables (global, and team scoped: ``AIRFLOW_CONN__<TEAM>___<ID>``).
The same home is then asked, in a fresh process each (so ``DagModel.get_team_name``'s 3.3 cache
starts empty), with ``[core] multi_team`` on and off.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

DAGS = ("dag_a", "dag_free", "dag_missing")
"""A DAG of ``team_a``'s bundle, one of a bundle with no team, one the database does not have."""

CONNECTIONS = ("conn_a", "conn_b", "conn_free", "env_global", "env_a", "env_b", "_team_b___env_b", "missing")
"""Database connections of team_a, team_b and no team; environment variables: global, scoped to
team_a and team_b; a conn id spelling team_b's variable name through the global prefix
(``AIRFLOW_CONN_`` + ``_TEAM_B___ENV_B``); one defined nowhere."""

SCRIPT = """
import json
import sys
from argparse import Namespace


def setup():
    from airflow.cli.commands.team_command import team_create
    from airflow.dag_processing.bundles.manager import DagBundlesManager
    from airflow.models.connection import Connection
    from airflow.models.dag import DagModel
    from airflow.utils.session import create_session

    for name in ("team_a", "team_b"):
        team_create(Namespace(name=name))  # `airflow teams create <name>`
    DagBundlesManager().sync_bundles_to_db()  # what the dag-processor does at start
    with create_session() as session:
        session.add(DagModel(dag_id="dag_a", bundle_name="bundle_a"))
        session.add(DagModel(dag_id="dag_free", bundle_name="bundle_free"))
        for conn_id, team in (("conn_a", "team_a"), ("conn_b", "team_b"), ("conn_free", None)):
            session.add(Connection(conn_id=conn_id, conn_type="aws", team_name=team))


def check():
    from airflow_provider_orvideo._internal.compat import team_may_use_connection

    dags, connections = json.loads(sys.argv[2])
    print(json.dumps({d: {c: team_may_use_connection(d, c) for c in connections} for d in dags}))


{"setup": setup, "check": check}[sys.argv[1]]()
"""


def _airflow_has_multi_team() -> bool:
    from airflow.configuration import conf

    return conf.get_default_value("core", "multi_team") is not None


def _run(args: list[str], env: dict[str, str], cwd: Path) -> str:
    result = subprocess.run(args, env=env, cwd=cwd, capture_output=True, text=True, timeout=120, check=False)
    assert result.returncode == 0, f"{args[1:]} exited {result.returncode}:\n{result.stdout}\n{result.stderr}"
    return result.stdout


@pytest.mark.timeout(300)
def test_a_dag_may_use_its_teams_and_the_global_connections_only(tmp_path: Path) -> None:
    if not _airflow_has_multi_team():
        pytest.skip("this Airflow has no [core] multi_team (added in 3.2): every connection is global")
    home = tmp_path / "airflow_home"
    for folder in (home, tmp_path / "bundle_a", tmp_path / "bundle_free"):
        folder.mkdir()
    env = {k: v for k, v in os.environ.items() if not k.upper().startswith(("AIRFLOW", "_AIRFLOW"))}
    aws = json.dumps({"conn_type": "aws"})
    env.update(
        {
            "AIRFLOW_HOME": str(home),
            "AIRFLOW__CORE__MULTI_TEAM": "True",
            "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
            "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": f"sqlite:///{home / 'airflow.db'}",
            "AIRFLOW_CONN_ENV_GLOBAL": aws,
            "AIRFLOW_CONN__TEAM_A___ENV_A": aws,
            "AIRFLOW_CONN__TEAM_B___ENV_B": aws,
        }
    )
    bundles = [
        {
            "name": "bundle_a",
            "classpath": "airflow.dag_processing.bundles.local.LocalDagBundle",
            "kwargs": {"path": str(tmp_path / "bundle_a")},
            "team_name": "team_a",
        },
        {
            "name": "bundle_free",
            "classpath": "airflow.dag_processing.bundles.local.LocalDagBundle",
            "kwargs": {"path": str(tmp_path / "bundle_free")},
        },
    ]
    script = tmp_path / "teams.py"
    script.write_text(SCRIPT)
    airflow = str(Path(sys.executable).parent / "airflow")
    python = sys.executable

    _run([airflow, "db", "migrate"], env, tmp_path)
    _run(
        [python, str(script), "setup"],
        {**env, "AIRFLOW__DAG_PROCESSOR__DAG_BUNDLE_CONFIG_LIST": json.dumps(bundles)},
        tmp_path,
    )
    pairs = json.dumps([DAGS, CONNECTIONS])
    on = json.loads(_run([python, str(script), "check", pairs], env, tmp_path).splitlines()[-1])
    off_env = {**env, "AIRFLOW__CORE__MULTI_TEAM": "False"}
    off = json.loads(_run([python, str(script), "check", pairs], off_env, tmp_path).splitlines()[-1])

    def allowed(answers: dict[str, bool]) -> set[str]:
        return {conn_id for conn_id, may in answers.items() if may}

    # Multi-team: what the execution API gives the DAG's tasks (its team's and no team's), no more.
    assert allowed(on["dag_a"]) == {"conn_a", "conn_free", "env_global", "env_a"}, on
    assert allowed(on["dag_free"]) == {"conn_free", "env_global"}, on
    assert allowed(on["dag_missing"]) == {"conn_free", "env_global"}, on
    # Without it every connection is global: every existing one is allowed to every DAG.
    for dag_id in DAGS:
        assert allowed(off[dag_id]) >= {"conn_a", "conn_b", "conn_free", "env_global"}, off
