"""Prometheus metric and label names the monitor exposes, in one place for dashboards."""

from __future__ import annotations

SWARM_LABEL = "swarm"

TASKS_TOTAL = "swarmperf_tasks_total"  # counter {agent, status}
TASK_LATENCY = "swarmperf_task_latency_seconds"  # summary: queued -> finished
TASK_WAIT = "swarmperf_task_wait_seconds"  # summary: queued -> started
TASK_SERVICE = "swarmperf_task_service_seconds"  # summary {agent}: started -> finished
QUEUE_DEPTH = "swarmperf_queue_depth"  # gauge {priority}
AGENT_IN_FLIGHT = "swarmperf_agent_in_flight"  # gauge {agent}
AGENT_UTILIZATION = "swarmperf_agent_utilization_ratio"  # gauge {agent}
AGENT_UP = "swarmperf_agent_up"  # gauge {agent}
BREAKER_STATE = "swarmperf_breaker_state"  # gauge {agent, state}: 1 for the current state

SYSTEM_CPU = "swarmperf_system_cpu_utilization_ratio"
SYSTEM_MEMORY = "swarmperf_system_memory_used_ratio"
SYSTEM_NET_RECEIVE = "swarmperf_system_network_receive_bytes_total"
SYSTEM_NET_TRANSMIT = "swarmperf_system_network_transmit_bytes_total"

# The series a metric folded into `__overflow__` because it reached its label-set limit.
SERIES_DROPPED = "swarmperf_metric_series_dropped_total"  # counter {metric}

STATUSES = ("succeeded", "failed", "rejected", "cancelled")
BREAKER_STATES = ("closed", "half_open", "open")
QUANTILES = (0.5, 0.9, 0.95, 0.99)
NO_AGENT = "none"  # the agent label of tasks that never reached an agent (rejected, cancelled)
