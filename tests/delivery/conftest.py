"""The fake Bitrix24 portal and amoCRM account of the CRM tests, on the test's ticking clock; a
test module configures its targets through the ``bitrix`` and ``amo`` fixtures."""
from __future__ import annotations

import pytest
import responses

from tests.delivery.crm_portals import AMO, WEBHOOK, FakeAmoCRM, FakeBitrix24


@pytest.fixture
def portal(bitrix, clock):
    with responses.RequestsMock(assert_all_requests_are_fired=False) as mocked:
        yield FakeBitrix24(WEBHOOK, clock.hub.now).install(mocked)


@pytest.fixture
def account(amo, clock):
    with responses.RequestsMock(assert_all_requests_are_fired=False) as mocked:
        yield FakeAmoCRM(AMO, clock.hub.now).install(mocked)
