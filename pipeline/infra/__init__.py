"""Local infrastructure started by the project itself: ``python -m pipeline infra up|down|status``.

``manager`` is the entry point (``up``, ``down``, ``status``, ``wait_for_kafka``); ``kafka``
runs KRaft nodes from Maven Central jars (one, or ``--brokers N``; ``--scram``/``--tls``
listeners); ``prometheus`` renders the configs
of Prometheus and Alertmanager; ``processes`` tracks the detached processes by pid file.
"""
