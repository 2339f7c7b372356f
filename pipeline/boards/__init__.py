"""Grafana boards as code (``python -m pipeline grafana build|provision``).

``boards`` builds the four dashboards with grafana-foundation-sdk, ``queries`` holds
their data sources and queries, ``build`` writes ``dashboards/*.json``, ``provision``
pushes folder, data sources and boards to a Grafana through grafana-client.
"""
