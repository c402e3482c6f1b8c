"""Alerting: SLA rules, the alert lifecycle, notification sinks, and exports for
Prometheus and Grafana."""
