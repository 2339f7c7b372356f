"""Feeding tools: replay a JSONL file, simulate live load or a year of history, and the
deterministic test scenario.

``replay`` and ``simulate`` talk to Kafka (kafka-python); ``lifecycle`` draws
realistic dossier lifecycles; ``province`` and ``calendar`` give the units in force, their
volumes and the working days; ``scenario`` builds the deterministic test history.
Nothing here uses the pipeline's rules (:mod:`pipeline.core` case logic, the batch SQL):
only plain data — the ``INDICATORS`` tuple and the units registry as read and checked by
:func:`pipeline.store.units.load_units` (file reading only, no ClickHouse).
"""
