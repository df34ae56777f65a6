"""What bench/throughput.py measures, one function per kind of run; each returns a flat dict of numbers.

Flowgate: `intake` (the API alone) and `end_to_end` (API → worker → emulator). The baselines send the same
triggers straight to the emulator with no queue, database or record: `seed_way` (a token request and an invoke
per event with plain `requests`), `simple_salesforce_way` (one simple-salesforce client reused per thread, one
call per event) and `bare_session` (a requests.Session loop: the limit for one call per event).

Latency is measured between two clocks of this one machine (epoch seconds): for Flowgate from the trigger's
`created_at` (set by the API as it accepts the trigger) to the emulator's first receipt of its IndividualId;
for a baseline from the moment its event was due to the same receipt.
"""

from __future__ import annotations

import json
import random
import time
from collections.abc import Callable
from typing import Any

import requests

from .harness import EmulatorClient, Sample, Stack, counter_delta, cpu_delta, percentile, run_load

FLOW = "On_Demand_Flow"  # what the baselines invoke: the same Salesforce flow as Flowgate's single-input flow
API_VERSION = "v65.0"
TOKEN_FORM = {"grant_type": "client_credentials", "client_id": "flowgate-demo-consumer-key",
              "client_secret": "flowgate-demo-consumer-secret"}


def make_inputs(prefix: str, count: int, seed: int, *, order_number: bool = False) -> list[dict[str, Any]]:
    """The same triggers for every contender: a deterministic customer per index (fixed seed)."""
    rng = random.Random(seed)
    inputs = []
    for n in range(count):
        customer = rng.randrange(10_000_000)
        item = {"IndividualId": f"{prefix}{n:07d}", "EmailAddress": f"customer{customer}@example.com"}
        if rng.random() < 0.7:
            item["TelephoneNumber"] = f"+4930{customer:08d}"
        if order_number:
            item["OrderNumber"] = f"#{100000 + n}"
        inputs.append(item)
    return inputs


def ms(seconds: float) -> float:
    return round(seconds * 1000, 2)


# --- Flowgate --------------------------------------------------------------------------------------


class Flowgate:
    def __init__(self, stack: Stack) -> None:
        assert stack.seeded is not None
        self.stack = stack
        self.seeded = stack.seeded
        self.headers = {"Authorization": f"Bearer {self.seeded.api_key}", "Content-Type": "application/json"}
        self.emulator = EmulatorClient(stack.emulator_url)
        # Every trigger sent end to end in this run, warm-ups included: the whole run's cost in Salesforce calls.
        self.totals = {"succeeded": 0, "token_requests": 0, "api_calls": 0}

    def url(self, flow: str, batch: bool = False) -> str:
        return f"{self.stack.web_url}/api/v1/flows/{self.seeded.org}/{flow}/triggers" + ("/batch" if batch else "")

    def single_sender(self, flow: str, inputs: list[dict[str, Any]]) -> Callable[[requests.Session, int], Any]:
        url = self.url(flow)

        def send(session: requests.Session, index: int) -> tuple[int, Any]:
            response = session.post(url, data=json.dumps({"inputs": inputs[index]}), headers=self.headers,
                                    timeout=30)
            return response.status_code, response.json() if response.status_code < 500 else response.text[:200]

        return send

    def batch_sender(self, flow: str, inputs: list[dict[str, Any]], size: int
                     ) -> Callable[[requests.Session, int], Any]:
        url = self.url(flow, batch=True)

        def send(session: requests.Session, index: int) -> tuple[int, Any]:
            items = [{"inputs": item} for item in inputs[index * size:(index + 1) * size]]
            response = session.post(url, data=json.dumps({"items": items}), headers=self.headers, timeout=60)
            return response.status_code, response.json() if response.status_code < 500 else response.text[:200]

        return send

    def intake(self, *, prefix: str, count: int, clients: int, rate: float | None, seed: int,
               max_seconds: float) -> dict[str, Any]:
        """POST .../triggers, one trigger per request: latency of each answer and accepted triggers per second."""
        inputs = make_inputs(prefix, count, seed)
        cpu_before = self.stack.cpu()
        samples = run_load(self.single_sender(self.seeded.single_flow, inputs), count=count, clients=clients,
                           rate=rate, max_seconds=max_seconds)
        accepted = [s for s in samples if s.status == 202]
        cpu = cpu_delta(cpu_before, self.stack.cpu(), len(accepted))
        span = max(s.done for s in samples) - min(s.sent for s in samples) if samples else float("nan")
        return {
            "clients": clients, "offered_per_s": rate, "requests": len(samples), "accepted": len(accepted),
            "errors": len(samples) - len(accepted),
            "p50_ms": ms(percentile([s.latency for s in accepted], 50)),
            "p99_ms": ms(percentile([s.latency for s in accepted], 99)),
            "accepted_per_s": round(len(accepted) / span, 1) if span > 0 else float("nan"),
            **{f"cpu_{k}": v for k, v in cpu.items()},
        }

    def end_to_end(self, *, prefix: str, count: int, rate: float | None, batched: bool, seed: int,
                   clients: int, batch_size: int = 1, max_seconds: float, settle_seconds: float) -> dict[str, Any]:
        """Fires `count` triggers through the API (paced at `rate` triggers/s, or as fast as it takes them) and
        waits, bounded, until every one is final. Reports succeeded/s, event-to-Salesforce latency and the
        emulator's token requests and API calls for them."""
        flow = self.seeded.batched_flow if batched else self.seeded.single_flow
        flow_id = self.seeded.batched_flow_id if batched else self.seeded.single_flow_id
        inputs = make_inputs(prefix, count, seed, order_number=batched)
        before = self.emulator.counters()
        cpu_before = self.stack.cpu()
        started = time.time()
        if batch_size > 1:
            requests_needed = -(-count // batch_size)
            samples = run_load(self.batch_sender(flow, inputs, batch_size), count=requests_needed,
                               clients=clients, rate=rate / batch_size if rate else None, max_seconds=max_seconds)
            ids = [r["id"] for s in samples if s.status == 207 for r in s.body["results"] if "id" in r]
        else:
            samples = run_load(self.single_sender(flow, inputs), count=count, clients=clients, rate=rate,
                               max_seconds=max_seconds)
            ids = [s.body["id"] for s in samples if s.status == 202]
        fed = time.time()
        rows = self._wait_final(flow_id, ids, settle_seconds)
        settled = time.time()
        cpu = cpu_delta(cpu_before, self.stack.cpu(), len(rows))
        after = self.emulator.counters()
        received = self.emulator.received(prefix)
        delta = counter_delta(before, after)
        succeeded = [r for r in rows if r[3] == "succeeded"]
        latencies = [received[r[0]] - r[1] for r in succeeded if r[0] in received]
        first_accept = min((r[1] for r in rows), default=float("nan"))
        last_finish = max((r[2] for r in succeeded), default=float("nan"))
        span = last_finish - first_accept
        per_1000 = 1000 / len(succeeded) if succeeded else float("nan")
        self.totals["succeeded"] += len(succeeded)
        self.totals["token_requests"] += delta["token_requests"]
        self.totals["api_calls"] += delta["api_calls"]
        accept_span = max((s.done for s in samples), default=0) - min((s.sent for s in samples), default=0)
        return {
            "offered_per_s": rate, "triggers": count, "accepted": len(ids), "succeeded": len(succeeded),
            "final": len(rows), "not_final_in_time": len(ids) - len(rows),
            "feed_seconds": round(fed - started, 2), "settle_seconds": round(settled - fed, 2),
            "accepted_per_s": round(len(ids) / accept_span, 1) if accept_span > 0 else float("nan"),
            "succeeded_per_s": round(len(succeeded) / span, 1) if span > 0 else float("nan"),
            "p50_ms": ms(percentile(latencies, 50)), "p99_ms": ms(percentile(latencies, 99)),
            "max_ms": ms(max(latencies, default=float("nan"))),
            "token_requests": delta["token_requests"], "api_calls": delta["api_calls"],
            "token_requests_per_1000": round(delta["token_requests"] * per_1000, 3),
            "api_calls_per_1000": round(delta["api_calls"] * per_1000, 2),
            "inputs_per_call": round(delta["invoked_inputs"] / delta["invoke_calls"], 1)
            if delta["invoke_calls"] else float("nan"),
            "duplicates": delta["invoked_inputs"] - len(succeeded),
            "api_p50_ms": ms(percentile([s.latency for s in samples if s.status in (202, 207)], 50)),
            "api_p99_ms": ms(percentile([s.latency for s in samples if s.status in (202, 207)], 99)),
            **{f"cpu_{k}": v for k, v in cpu.items()},
        }

    def _wait_final(self, flow_id: int, ids: list[int], settle_seconds: float) -> list[tuple]:
        """(IndividualId, created_at, finished_at, status) of the final triggers among ids, once all are final
        or `settle_seconds` have passed."""
        if not ids:
            return []
        low, high = min(ids), max(ids)
        deadline = time.monotonic() + settle_seconds
        with self.stack.db() as conn:
            while True:
                (final,) = conn.execute(
                    "SELECT count(*) FROM flows_trigger WHERE flow_id = %s AND id BETWEEN %s AND %s "
                    "AND status IN ('succeeded', 'failed')", (flow_id, low, high)).fetchone()
                if final >= len(ids) or time.monotonic() > deadline:
                    break
                self.stack.check_alive()
                time.sleep(0.1)
            return conn.execute(
                "SELECT inputs->>'IndividualId', extract(epoch FROM created_at)::float8, "
                "extract(epoch FROM finished_at)::float8, status FROM flows_trigger "
                "WHERE flow_id = %s AND id BETWEEN %s AND %s AND status IN ('succeeded', 'failed')",
                (flow_id, low, high)).fetchall()

    def succeeded_total(self) -> int:
        with self.stack.db() as conn:
            return conn.execute("SELECT count(*) FROM flows_trigger WHERE status = 'succeeded'").fetchone()[0]

    def discard_queued(self) -> int:
        """After the intake runs (no worker running): their triggers and messages go, unsent."""
        self.stack.purge_queue()
        with self.stack.db() as conn:
            return conn.execute("DELETE FROM flows_trigger WHERE status = 'queued'").rowcount


# --- baselines -------------------------------------------------------------------------------------


class Baselines:
    """Straight to the emulator, no Flowgate: what the ratios are taken against."""

    NAMES = {
        "seed": "the seed's way (token + invoke per event, plain requests)",
        "simple_salesforce": "simple-salesforce (one client reused per thread, one call per event)",
        "bare": "bare requests.Session loop (the limit)",
    }

    def __init__(self, emulator_url: str) -> None:
        self.base = emulator_url
        self.token_url = f"{emulator_url}/services/oauth2/token"
        self.invoke_url = f"{emulator_url}/services/data/{API_VERSION}/actions/custom/flow/{FLOW}"
        self.emulator = EmulatorClient(emulator_url)

    def _token(self) -> str:
        response = requests.post(self.token_url, data=TOKEN_FORM, timeout=30)
        response.raise_for_status()
        return response.json()["access_token"]

    def contender(self, name: str, inputs: list[dict[str, Any]]
                  ) -> tuple[Callable[[Any, int], tuple[int, Any]], Callable[[], Any]]:
        """(send, session_factory) for run_load."""
        if name == "seed":
            def send_seed(_: Any, index: int) -> tuple[int, Any]:
                token = requests.post(self.token_url, data=TOKEN_FORM, timeout=30).json()["access_token"]
                response = requests.post(self.invoke_url, json={"inputs": [inputs[index]]},
                                         headers={"Authorization": f"Bearer {token}"}, timeout=30)
                return response.status_code, None

            return send_seed, lambda: None
        token = self._token()
        if name == "simple_salesforce":
            from simple_salesforce import Salesforce

            def client() -> Salesforce:
                sf = Salesforce(instance_url=self.base, session_id=token, version=API_VERSION.lstrip("v"))
                # simple-salesforce builds https:// URLs from the instance's host; the emulator speaks http.
                sf.base_url = f"{self.base}/services/data/{API_VERSION}/"
                return sf

            def send_sf(sf: Any, index: int) -> tuple[int, Any]:
                sf.restful(f"actions/custom/flow/{FLOW}", method="POST", json={"inputs": [inputs[index]]})
                return 200, None  # restful raises for any status >= 300

            return send_sf, client
        if name == "bare":
            def session() -> requests.Session:
                http = requests.Session()
                http.headers["Authorization"] = f"Bearer {token}"
                return http

            def send_bare(http: requests.Session, index: int) -> tuple[int, Any]:
                response = http.post(self.invoke_url, json={"inputs": [inputs[index]]}, timeout=30)
                return response.status_code, None

            return send_bare, session
        raise ValueError(name)

    def run(self, name: str, *, prefix: str, count: int, concurrency: int, rate: float | None, seed: int,
            max_seconds: float) -> dict[str, Any]:
        inputs = make_inputs(prefix, count, seed)
        before = self.emulator.counters()
        send, factory = self.contender(name, inputs)
        samples: list[Sample] = run_load(send, count=count, clients=concurrency, rate=rate, max_seconds=max_seconds,
                                         session_factory=factory)
        after = self.emulator.counters()
        received = self.emulator.received(prefix)
        delta = counter_delta(before, after)
        ok = [s for s in samples if s.status == 200]
        start = min((s.scheduled for s in samples), default=float("nan"))
        span = max((s.done for s in ok), default=float("nan")) - start
        latencies = [received[inputs[s.index]["IndividualId"]] - s.scheduled for s in ok
                     if inputs[s.index]["IndividualId"] in received]
        per_1000 = 1000 / len(ok) if ok else float("nan")
        return {
            "offered_per_s": rate, "triggers": count, "succeeded": len(ok), "errors": len(samples) - len(ok),
            "succeeded_per_s": round(len(ok) / span, 1) if span > 0 else float("nan"),
            "p50_ms": ms(percentile(latencies, 50)), "p99_ms": ms(percentile(latencies, 99)),
            "token_requests": delta["token_requests"], "api_calls": delta["api_calls"],
            "token_requests_per_1000": round(delta["token_requests"] * per_1000, 3),
            "api_calls_per_1000": round(delta["api_calls"] * per_1000, 2),
        }
