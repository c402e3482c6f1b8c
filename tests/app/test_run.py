"""Running a spec end to end: results reach the store while the swarm still runs."""

from __future__ import annotations

import asyncio
import subprocess
import sys
from pathlib import Path

from swarmperf.app.run import run_spec
from swarmperf.spec import parse_spec_yaml
from swarmperf.store import RUN_RUNNING, Store

SPEC = """\
swarm_id: watched
strategy: power-of-two
agents:
  - id: a
    count: 2
workload:
  tasks: 1000
  kind: sleep
  size: {value: 5ms}
"""

READER = """\
import sys
from swarmperf.store import Store
with Store.open(sys.argv[1]) as store:
    run = store.latest_run("watched")
    print(run.status, store.count_results(run.id))
"""


def test_another_process_follows_a_running_swarm(tmp_path: Path) -> None:
    db = tmp_path / "swarmperf.db"

    async def main() -> tuple[str, int]:
        with Store.open(db) as store:
            job = asyncio.create_task(run_spec(parse_spec_yaml(SPEC), store=store))
            # 1,000 tasks of 5 ms on 2 agents take over 2.5 s; look in early on.
            await asyncio.sleep(0.6)
            reader = await asyncio.create_subprocess_exec(
                sys.executable, "-c", READER, str(db), stdout=subprocess.PIPE
            )
            out, _ = await reader.communicate()
            outcome = await job
            assert outcome.run_id is not None
            assert store.count_results(outcome.run_id) == 1000
            status, count = out.decode().split()
            return status, int(count)

    status, count = asyncio.run(main())
    assert status == RUN_RUNNING
    assert 0 < count < 1000
