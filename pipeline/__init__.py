"""Live TTHC (one-stop desk) service indicators for the province's IT centre."""
