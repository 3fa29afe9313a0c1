"""The core method: audio I/O, separation, routing, the restoration steps and chains, the metric
panel, and the pipeline that runs them top to bottom (`pipeline.run`, `pipeline.compare`)."""
