"""The DVCQG source adapter: the national portal's sync calls -> the contract.

Pure (imports only ``pipeline.contract`` and ``pipeline.core``): ``records`` (services,
dates, the personal-data filter, the raw record kept on Kafka) and ``translator``
(records -> contract events, per-dossier state). The HTTP intake and file mode that
feed it live in ``pipeline.intake``; docs/intake.md describes both.
"""

from pipeline.sources.dvcqg.records import PROGRESS, RATINGS, SERVICES, SNAPSHOT, BadRecord, RawRecord, scrub, split_call
from pipeline.sources.dvcqg.translator import Problem, RatingSummary, Registries, Translation, Translator

__all__ = [
    "SNAPSHOT",
    "PROGRESS",
    "RATINGS",
    "SERVICES",
    "BadRecord",
    "RawRecord",
    "scrub",
    "split_call",
    "Registries",
    "Translator",
    "Translation",
    "Problem",
    "RatingSummary",
]
