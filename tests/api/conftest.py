"""API fixtures: keys scoped to the acme flow, to all flows, and a client that speaks JSON with a Bearer key."""

from __future__ import annotations

import json
from typing import Any

import pytest

from flows.api.services import api_key_create
from flows.models import Flow
from tests.conftest import make_flow
from tests.webhooks.conftest import shopify_webhook  # noqa: F401  (a fixture the fuzz tests share)

VALID_INPUTS = {"IndividualId": "003Ho00002AlRM8IAN", "EmailAddress": "ada@example.com"}


class Api:
    """Django's test client with an API key and JSON bodies."""

    def __init__(self, client, key: str | None) -> None:
        self.client = client
        self.key = key

    def headers(self, extra: dict[str, str] | None = None) -> dict[str, str]:
        headers = {"Authorization": f"Bearer {self.key}"} if self.key else {}
        return {**headers, **(extra or {})}

    def post(self, path: str, body: Any = None, *, raw: bytes | None = None,
             content_type: str = "application/json", headers: dict[str, str] | None = None):
        data = raw if raw is not None else json.dumps(body)
        return self.client.post(path, data=data, content_type=content_type, headers=self.headers(headers))

    def get(self, path: str, headers: dict[str, str] | None = None):
        return self.client.get(path, headers=self.headers(headers))


@pytest.fixture
def other_flow(org) -> Flow:
    return make_flow(org, "Other_Flow")


@pytest.fixture
def scoped_key(flow) -> tuple[Any, str]:
    return api_key_create(name="ERP sync", flows=[flow])


@pytest.fixture
def api(client, scoped_key) -> Api:
    return Api(client, scoped_key[1])


@pytest.fixture
def anonymous(client) -> Api:
    return Api(client, None)


TRIGGERS = "/api/v1/flows/acme/On_Demand_Flow/triggers"
BATCH = "/api/v1/flows/acme/On_Demand_Flow/triggers/batch"
