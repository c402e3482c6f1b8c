"""Alert state survives a reopen of the store, and removed alerts stay removed."""

from __future__ import annotations

from pathlib import Path

from swarmperf.store import Store


def test_alert_states_round_trip_across_reopen(tmp_path: Path) -> None:
    db = tmp_path / "s.db"
    with Store.open(db) as store:
        store.save_alert_states("sw", {"a": {"status": "firing"}, "b": {"status": "pending"}})
        store.save_alert_states("sw", {"a": {"status": "resolved"}}, removed=["b"])
        store.save_alert_states("other", {"a": {"status": "firing"}})
    with Store.open(db) as store:
        assert store.alert_states("sw") == {"a": {"status": "resolved"}}
        assert store.alert_states("other") == {"a": {"status": "firing"}}
        assert store.alert_states("none") == {}
