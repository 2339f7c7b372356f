"""Alerting: Prometheus rules generated from the targets file (:mod:`.rules`)."""
