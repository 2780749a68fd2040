"""The real `payouts ui` (Dagster webserver and daemon) for tests, and its GraphQL API as the Launchpad uses it."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import subprocess
import time
import urllib.error
import urllib.request
from pathlib import Path

from pipelines.settings import Home
from tests.pipelines.commands import PAYOUTS

DONE = {"SUCCESS", "FAILURE", "CANCELED"}

LAUNCH = """
mutation Launch($params: ExecutionParams!) {
  launchPipelineExecution(executionParams: $params) {
    __typename
    ... on LaunchRunSuccess { run { runId status } }
    ... on RunConfigValidationInvalid { errors { message reason } }
    ... on PythonError { message stack }
    ... on PipelineNotFoundError { message }
    ... on InvalidSubsetError { message }
  }
}
"""

RUN = """
query Run($runId: ID!) {
  runOrError(runId: $runId) {
    __typename
    ... on Run { runId status jobName tags { key value } }
    ... on PythonError { message }
  }
}
"""

STEP_FAILURES = """
query Failures($runId: ID!) {
  logsForRun(runId: $runId) {
    ... on EventConnection { events { __typename ... on ExecutionStepFailureEvent { stepKey error { message } } } }
  }
}
"""

LOCATIONS = """
{
  workspaceOrError {
    __typename
    ... on Workspace {
      locationEntries {
        name
        loadStatus
        locationOrLoadError {
          __typename
          ... on RepositoryLocation { name repositories { name jobs { name } } }
          ... on PythonError { message }
        }
      }
    }
  }
}
"""


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _group_members(pgid: int) -> list[int]:
    """Live (non-zombie) processes of a process group: orphaned zombies may never be reaped in a container."""
    members = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        fields = stat[stat.rindex(")") + 2 :].split()  # after "pid (comm) ": state ppid pgrp ...
        if int(fields[2]) == pgid and fields[0] != "Z":
            members.append(int(entry.name))
    return members


class UiServer:
    """`payouts ui --port PORT` in its own process group, logging to a file; stopped by its group id."""

    def __init__(self, home: Home, log: Path, *, ready_timeout: float = 90) -> None:
        self.home = home
        self.log = log
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        env = {**os.environ, "PAYOUTS_HOME": str(home.root)}
        env.pop("DAGSTER_HOME", None)
        with log.open("wb") as out:
            # Its own session: webserver, daemon, code servers and runs are one group, stopped together.
            self.proc = subprocess.Popen(
                [PAYOUTS, "ui", "--port", str(self.port)],
                env=env,
                cwd=log.parent,  # whatever dagster writes into its working directory stays in the temp folder
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        try:
            self._wait_ready(ready_timeout)
        except BaseException:
            self.stop()
            raise

    def _wait_ready(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while True:
            if self.proc.poll() is not None:
                raise AssertionError(f"payouts ui exited with {self.proc.returncode}:\n{self.log_text()}")
            try:
                with urllib.request.urlopen(f"{self.url}/server_info", timeout=2) as response:
                    if response.status == 200:
                        break
            except (urllib.error.URLError, OSError):
                pass
            if time.monotonic() > deadline:
                raise AssertionError(f"payouts ui did not answer within {timeout:.0f} s:\n{self.log_text()}")
            time.sleep(0.5)
        # The webserver answers before its code location has loaded; the Launchpad needs the location.
        while True:
            entries = self.gql(LOCATIONS)["workspaceOrError"]["locationEntries"]
            loaded = [e["locationOrLoadError"] for e in entries if e["loadStatus"] == "LOADED"]
            broken = [e for e in loaded if e and e["__typename"] == "PythonError"]
            if broken:
                raise AssertionError(f"code location failed to load: {broken[0]['message']}")
            if entries and len(loaded) == len(entries):
                return
            if time.monotonic() > deadline:
                raise AssertionError(f"code location not loaded within {timeout:.0f} s:\n{self.log_text()}")
            time.sleep(0.5)

    def log_text(self) -> str:
        return self.log.read_text(errors="replace")[-20000:]

    def stop(self) -> None:
        """SIGTERM to the group (dagster dev shuts its children down), then SIGKILL whatever is left."""
        pgid = self.proc.pid
        with contextlib.suppress(ProcessLookupError):
            os.killpg(pgid, signal.SIGTERM)
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.proc.wait(timeout=30)
        # While shutting down, dagster dev restarts the code server it saw exit ("Restarting the code server
        # process"); that orphan would live until its heartbeat times out. Ask the group once more.
        if _group_members(pgid):
            with contextlib.suppress(ProcessLookupError):
                os.killpg(pgid, signal.SIGTERM)
        deadline = time.monotonic() + 10
        while _group_members(pgid) and time.monotonic() < deadline:
            time.sleep(0.2)
        if _group_members(pgid):
            with contextlib.suppress(ProcessLookupError):
                os.killpg(pgid, signal.SIGKILL)
        self.proc.wait(timeout=10)

    # ------------------------------------------------------------------------------------- GraphQL

    def gql(self, query: str, variables: dict | None = None) -> dict:
        body = json.dumps({"query": query, "variables": variables or {}}).encode()
        request = urllib.request.Request(f"{self.url}/graphql", body, {"Content-Type": "application/json"})
        with urllib.request.urlopen(request, timeout=30) as response:
            answer = json.load(response)
        assert not answer.get("errors"), answer["errors"]
        return answer["data"]

    def job_selector(self, job: str) -> dict:
        """The Launchpad's selector for a job, with location and repository names as the server reports them."""
        for entry in self.gql(LOCATIONS)["workspaceOrError"]["locationEntries"]:
            location = entry["locationOrLoadError"] or {}
            for repository in location.get("repositories", []):
                if job in {j["name"] for j in repository["jobs"]}:
                    return {
                        "repositoryLocationName": location["name"],
                        "repositoryName": repository["name"],
                        "pipelineName": job,
                    }
        raise AssertionError(f"no repository has a job {job}")

    def launch(self, job: str, run_config: dict | None = None, tags: dict[str, str] | None = None) -> dict:
        """Launch a run as the Launchpad does; returns the mutation's result (LaunchRunSuccess or an error)."""
        params = {
            "selector": self.job_selector(job),
            "runConfigData": run_config or {},
            "mode": "default",
            "executionMetadata": {"tags": [{"key": k, "value": v} for k, v in (tags or {}).items()]},
        }
        return self.gql(LAUNCH, {"params": params})["launchPipelineExecution"]

    def run(self, run_id: str) -> dict:
        return self.gql(RUN, {"runId": run_id})["runOrError"]

    def wait_for_run(self, run_id: str, timeout: float = 120) -> dict:
        """Poll until the run ends (the daemon's run queue dequeues and launches it)."""
        deadline = time.monotonic() + timeout
        while (run := self.run(run_id))["status"] not in DONE:
            if time.monotonic() > deadline:
                raise AssertionError(f"run {run_id} still {run['status']} after {timeout:.0f} s:\n{self.log_text()}")
            time.sleep(0.5)
        return run

    def launch_and_wait(self, job: str, run_config: dict | None = None, tags: dict[str, str] | None = None) -> dict:
        launched = self.launch(job, run_config, tags)
        assert launched["__typename"] == "LaunchRunSuccess", launched
        return self.wait_for_run(launched["run"]["runId"])

    def step_failures(self, run_id: str) -> list[str]:
        events = self.gql(STEP_FAILURES, {"runId": run_id})["logsForRun"]["events"]
        return [e["error"]["message"] for e in events if e["__typename"] == "ExecutionStepFailureEvent"]
