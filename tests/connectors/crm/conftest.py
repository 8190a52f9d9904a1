"""Fakes shared by the CRM target tests: the HTTP API (``responses``) and a throttle that
records how many requests had been made each time the target asked for a turn."""
from __future__ import annotations

import pytest
import responses


class Throttle:
    def __init__(self, mock: responses.RequestsMock):
        self.mock = mock
        self.seen: list[int] = []

    def __call__(self):
        self.seen.append(len(self.mock.calls))


@pytest.fixture
def api():
    with responses.RequestsMock() as mock:
        yield mock


@pytest.fixture
def throttle(api) -> Throttle:
    return Throttle(api)
