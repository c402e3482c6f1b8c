"""Clients of a live swarm's service (`swarmperf serve`): `SwarmClient`, `SyncSwarmClient`.

```python
async with SwarmClient("production") as client:
    receipts = await client.submit_many({"kind": "noop"} for _ in range(1000))
    outcome = await client.wait(receipts[0].id)
```
"""

from __future__ import annotations

from swarmperf.client._async import SwarmClient
from swarmperf.client._protocol import Submitted, TaskOutcome
from swarmperf.client._sync import SyncSwarmClient

__all__ = ["Submitted", "SwarmClient", "SyncSwarmClient", "TaskOutcome"]
