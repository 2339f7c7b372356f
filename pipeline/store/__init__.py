"""ClickHouse layer: connection, schema, idempotent writes, read-only queries, batch indicators.

Modules (imported on demand, so importing ``pipeline.store`` loads no driver):
``client`` (``connect``), ``schema`` (``ensure_schema``), ``writer`` (``FactWriter``),
``readonly`` (``check_read_only``, ``QueryRunner``, ``ClientRunner``), ``batch``
(``batch_indicators``), ``units`` (``load_units``, ``sync_units``).
"""
