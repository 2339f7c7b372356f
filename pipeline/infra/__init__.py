"""Local infrastructure started by the project itself: ``python -m pipeline infra up|down|status``.

``manager`` is the entry point (``up``, ``down``, ``status``, ``wait_for_kafka``); ``kafka``
runs a single-node KRaft broker from Maven Central jars; ``prometheus`` renders the configs
of Prometheus and Alertmanager; ``processes`` tracks the detached processes by pid file.
"""
