"""Pure core: case rules, outcomes, windows and targets (no I/O; imports only pipeline.contract)."""
