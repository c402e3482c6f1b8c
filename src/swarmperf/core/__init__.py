"""The core: tasks and results, the priority queue, handlers, errors, events, durations,
and the small utilities every layer shares (atomic files, redaction, bounded YAML)."""
