"""The deployments on a real Prefect server, as an operator runs them (README "Operations").

Starts `prefect server start` on loopback with its own PREFECT_HOME, creates the process work pool,
registers prefect.yaml's deployments with `prefect deploy --all`, starts `prefect worker start`, triggers the
daily deployment over the demo recordings of 2026-11-20 into a temporary warehouse (no network), waits for
the run to finish, and checks the warehouse. Everything it starts is stopped, whatever happens.
"""
from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from decimal import Decimal
from pathlib import Path

import httpx
import pytest

os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
os.environ.setdefault("DO_NOT_TRACK", "1")

from prefect.client.orchestration import get_client  # noqa: E402
from prefect.deployments import run_deployment  # noqa: E402
from prefect.settings import PREFECT_API_URL, temporary_settings  # noqa: E402

from pipeline import schedule  # noqa: E402
from pipeline.paths import DEMO_FIXTURES_DIR, PROJECT_ROOT, Warehouse  # noqa: E402
from pipeline.warehouse import connect  # noqa: E402

PREFECT = str(Path(sys.executable).with_name("prefect"))
SERVER_START_SECONDS = 120
RUN_SECONDS = 180
POOL = "tsi-process"  # the work pool prefect.yaml names
DAY = "2026-11-20"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start(args: list[str], env: dict, log: Path) -> subprocess.Popen:
    # A session of its own, so that stopping it stops the processes it starts (the worker's flow runs).
    return subprocess.Popen(args, env=env, cwd=PROJECT_ROOT, stdout=log.open("wb"), stderr=subprocess.STDOUT,
                            start_new_session=True)


def stop(process: subprocess.Popen) -> None:
    if process.poll() is not None:
        return
    for sig, wait in ((signal.SIGTERM, 15), (signal.SIGKILL, 10)):
        try:
            os.killpg(process.pid, sig)
        except ProcessLookupError:
            return
        try:
            process.wait(timeout=wait)
            return
        except subprocess.TimeoutExpired:
            continue


def prefect_cli(args: list[str], env: dict) -> str:
    done = subprocess.run([PREFECT, "--no-prompt", *args], env=env, cwd=PROJECT_ROOT, capture_output=True,
                          text=True, timeout=120)
    assert done.returncode == 0, f"prefect {' '.join(args)} failed:\n{done.stdout}\n{done.stderr}"
    return done.stdout


def wait_healthy(api_url: str, server: subprocess.Popen, log: Path) -> None:
    deadline = time.monotonic() + SERVER_START_SECONDS
    while time.monotonic() < deadline:
        assert server.poll() is None, f"prefect server exited:\n{log.read_text(errors='replace')[-3000:]}"
        try:
            if httpx.get(f"{api_url}/health", timeout=2).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.5)
    pytest.fail(f"prefect server not healthy after {SERVER_START_SECONDS} s:\n"
                f"{log.read_text(errors='replace')[-3000:]}")


@pytest.mark.prefect  # deselected with the other slow Prefect tests by -m "not prefect"
@pytest.mark.prefect_server
def test_daily_deployment_runs_on_a_worker_of_a_real_server(tmp_path):
    port = free_port()
    api_url = f"http://127.0.0.1:{port}/api"
    warehouse = Warehouse(tmp_path / "warehouse")
    env = {
        **os.environ,
        "PREFECT_HOME": str(tmp_path / "prefect-home"),
        "PREFECT_API_URL": api_url,
        "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
        "DO_NOT_TRACK": "1",
        "PREFECT_SERVER_UI_ENABLED": "false",
        "PREFECT_WORKER_QUERY_SECONDS": "1",  # the worker polls every second instead of every ten
        "TSI_WAREHOUSE": str(warehouse.root),  # where any run without a warehouse parameter would write
    }
    env.pop("PREFECT_PROFILES_PATH", None)
    server_log, worker_log = tmp_path / "server.log", tmp_path / "worker.log"
    processes = []
    try:
        processes.append(start([PREFECT, "server", "start", "--host", "127.0.0.1", "--port", str(port)],
                               {k: v for k, v in env.items() if k != "PREFECT_API_URL"}, server_log))
        wait_healthy(api_url, processes[0], server_log)

        prefect_cli(["work-pool", "create", POOL, "--type", "process"], env)
        prefect_cli(["deploy", "--all"], env)
        # The schedules are registered as written, in UTC; then paused, so that no scheduled run (a live
        # collection) can start if the test happens to run at 15:45 or 16:05.
        with temporary_settings(updates={PREFECT_API_URL: api_url}), get_client(sync_client=True) as client:
            daily = client.read_deployment_by_name("daily/daily")
            collect = client.read_deployment_by_name("collect/collect")
        assert [(s.schedule.cron, s.schedule.timezone, s.parameters) for s in daily.schedules] == [
            (schedule.DAILY_CRON, "UTC", {"collect": False})
        ]
        assert sorted((s.schedule.cron, s.schedule.timezone) for s in collect.schedules) == [
            (cron, "UTC") for cron in sorted(schedule.COLLECT_CRONS)
        ]
        prefect_cli(["deployment", "schedule", "pause", "--all"], env)

        processes.append(start([PREFECT, "worker", "start", "--pool", POOL, "--type", "process"], env, worker_log))

        with temporary_settings(updates={PREFECT_API_URL: api_url}):
            flow_run = run_deployment(
                "daily/daily",
                parameters={
                    "fixing_date": DAY,
                    "warehouse": str(warehouse.root),
                    "collect": True,
                    "replay_dir": str(DEMO_FIXTURES_DIR / DAY),
                    "collected_at": f"{DAY}T06:00:00+00:00",
                    "policy": {"retries": 1, "retry_delays_seconds": [0.1]},
                },
                timeout=RUN_SECONDS,
            )
            with get_client(sync_client=True) as client:
                artifact = client.read_latest_artifacts()
        assert flow_run.state is not None and flow_run.state.is_completed(), (
            f"daily run ended {flow_run.state}:\n{worker_log.read_text(errors='replace')[-4000:]}"
        )
        assert {"fixings", "collect-failures"} <= {a.key for a in artifact}
    finally:
        for process in reversed(processes):
            stop(process)

    con = connect(warehouse, read_only=True)
    try:
        h100 = con.execute(
            "select usd_per_gpu_hour, n_providers, status from fixings"
            " where index_id = 'TSI-H100-SXM-OD' and fixing_date = date '2026-11-20'"
        ).fetchall()
        n_fixings = con.execute("select count(*) from fixings where fixing_date = date '2026-11-20'").fetchall()[0][0]
        run_flows = dict(con.execute("select flow, outcome from runs").fetchall())
        daily_run_id = con.execute("select run_id from runs where flow = 'daily'").fetchall()
        published = con.execute("select count(*) from publications").fetchall()[0][0]
    finally:
        con.close()
    # The same recordings as the demo's last day (tests/test_daily_flow.py works it out by hand): eleven
    # provider values, paperspace 5.95 and do 6.74 screened out, the median of the nine left is 2.5708.
    assert h100 == [(Decimal("2.5708"), 9, "final")]
    assert n_fixings > 1 and published == 1
    assert run_flows == {"daily": "completed", "collect": "completed", "fix": "completed", "publish": "completed",
                         "site": "completed"}
    assert daily_run_id == [(str(flow_run.id),)]
