"""Every seeded report test runs twice: once with every day read from the tables, once with
every day read from its snapshot (built after seeding), so both paths give the known answers."""
from __future__ import annotations

import pytest

from tests.helpers import snapshot_every_day


@pytest.fixture(params=["tables", "snapshots"])
def settle(request):
    """Called by a seeding fixture once its leads are stored."""
    return snapshot_every_day if request.param == "snapshots" else lambda hub: None
