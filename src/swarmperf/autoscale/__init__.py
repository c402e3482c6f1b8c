"""Autoscaling: workload patterns, forecasts, scaling policies and their replay on traces."""
