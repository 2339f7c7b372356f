"""The DVCQG-compatible intake: HTTP sync endpoint and file mode (``docs/intake.md``).
``calls`` holds the request logic (accounts, sessions, checks); ``server`` the aiohttp
application, the Kafka producer and the two commands."""
