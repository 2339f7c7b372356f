"""Feeding tools: replay a JSONL file, simulate live load, and the history scenario.

``replay`` and ``simulate`` talk to Kafka (kafka-python); ``lifecycle`` draws
realistic dossier lifecycles; ``scenario`` builds the deterministic test history.
Nothing here imports :mod:`pipeline.core` (except its plain ``INDICATORS`` tuple)
or :mod:`pipeline.store`.
"""
