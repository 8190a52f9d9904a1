"""Retraining: `hub score train` by hand, and nightly by the scheduler at scoring.model.retrain_at
(in the team's time zone), then the open leads are rescored."""
from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest
from click.testing import CliRunner
from sqlalchemy import func, select

from hub.pipeline.score import last_retrain_time, training_due
from hub.runtime import cli, scheduler
from hub.store.models import ScoreModel

from tests.pipeline.test_score import SCORING, seed_history

MSK = timezone(timedelta(hours=3))


@pytest.fixture
def config_document(config_document):
    config_document["scoring"] = SCORING
    return config_document


def models(hub) -> int:
    with hub.db.read() as session:
        return session.scalar(select(func.count()).select_from(ScoreModel))


def test_last_retrain_time_is_in_the_teams_zone():
    at_night = datetime(2026, 12, 2, 2, 0, tzinfo=MSK)
    assert last_retrain_time("03:00", "Europe/Moscow", at_night) == datetime(2026, 12, 1, 3, 0, tzinfo=MSK)
    after = datetime(2026, 12, 2, 3, 0, tzinfo=MSK)
    assert last_retrain_time("03:00", "Europe/Moscow", after) == after


def test_the_scheduler_retrains_nightly(hub, run_jobs):
    moments = iter([datetime(2026, 12, 1, 12, 0, tzinfo=MSK)])
    now = {"at": next(moments)}
    hub.clock = lambda: now["at"]
    assert training_due(hub)  # never trained
    assert scheduler.tick(hub)["score_training"] is True
    run_jobs()
    assert models(hub) == 1 and not training_due(hub)
    now["at"] = datetime(2026, 12, 2, 2, 59, tzinfo=MSK)
    assert scheduler.tick(hub)["score_training"] is False
    now["at"] = datetime(2026, 12, 2, 3, 0, tzinfo=MSK)
    assert scheduler.tick(hub)["score_training"] is True
    run_jobs()
    assert models(hub) == 2


def test_no_nightly_training_without_retrain_at(hub):
    hub.config["scoring"]["model"]["retrain_at"] = None
    assert not training_due(hub) and scheduler.tick(hub)["score_training"] is False


def test_hub_score_train(hub, monkeypatch):
    seed_history(hub)
    result = CliRunner().invoke(cli.main, ["score", "train"])
    assert result.exit_code == 0, result.output
    assert "trained on 20 closed leads (8 converted, 12 lost): in use" in result.output
    hub.config["scoring"]["model"]["min_closed"] = 100
    result = CliRunner().invoke(cli.main, ["score", "train"])
    assert "not used until 100 closed leads; rules meanwhile" in result.output
    assert models(hub) == 2
    assert CliRunner().invoke(cli.main, ["score", "rescore"]).exit_code == 0


def test_hub_score_train_without_scoring(config_document, request):
    del config_document["scoring"]
    request.getfixturevalue("hub")
    result = CliRunner().invoke(cli.main, ["score", "train"])
    assert result.exit_code == 1 and "no scoring: section" in result.output


def test_only_the_newest_models_are_kept(hub, monkeypatch):
    from hub.pipeline import score, score_model

    monkeypatch.setattr(score_model, "KEPT", 3)
    for _ in range(5):
        score.train(hub)
    with hub.db.read() as session:
        assert list(session.scalars(select(ScoreModel.id).order_by(ScoreModel.id))) == [3, 4, 5]
