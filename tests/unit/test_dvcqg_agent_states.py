"""The translation agent's view of the stored dossier states (``DossierStates``): loaded on
first use, and only the dossiers a batch really changed are written back — a record seen
before and already recorded as seen writes nothing to the changelog."""

from __future__ import annotations

import json

from pipeline.sources.dvcqg.batch import translate_batch
from pipeline.sources.dvcqg.translator import Translator
from pipeline.stream.translation import DossierStates
from tests.unit.test_dvcqg_translator import REG, snap


class StoredStates:
    """What ``DossierStates`` reads of a ``CaseStore``: ``load(partition, key)``."""

    def __init__(self) -> None:
        self.records: dict[tuple[int, str], bytes] = {}

    def load(self, partition: int, key: str) -> bytes | None:
        return self.records.get((partition, key))


def _message(record) -> tuple[bytes, bytes]:
    return record.data["MaHoSo"].encode(), record.to_bytes()


def test_only_changed_dossiers_are_written_back_and_a_replay_changes_nothing():
    store, translator = StoredStates(), Translator(REG)
    first = snap(2, MaHoSo="HS-1", NgayTiepNhan="20250602080000", NgayHenTra="20250605170000")
    states = DossierStates(store, 3)
    out = translate_batch(translator, [_message(first)], states)
    assert [e["event_type"] for e in out.events] == ["received"]
    written = states.changed_records()
    assert set(written) == {"HS-1"}
    store.records.update({(3, key): value for key, value in written.items()})

    # the same record read again after a crash, from the stored state: no event (the
    # translator may record that it met the record at the new status: a state change)
    again = DossierStates(store, 3)
    out = translate_batch(translator, [_message(first)], again)
    assert out.events == []
    store.records.update({(3, key): value for key, value in again.changed_records().items()})
    # once more: the translator returns the very same state, which is not written back
    third = DossierStates(store, 3)
    out = translate_batch(translator, [_message(first)], third)
    assert out.events == [] and third.changed_records() == {}
    assert third.get("HS-1") == json.loads(store.records[(3, "HS-1")])
    assert DossierStates(store, 4).get("HS-1") is None  # another partition's dossiers are not its own
