"""After-the-fact analysis of stored runs: figures, history, bottlenecks, reports, and
anomaly detection with its NAB harness."""
