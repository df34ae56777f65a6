"""The throughput benchmark's machinery, in miniature: real processes, real services, tiny counts.

Nothing here times anything: a slow machine passes. It checks that one run starts and stops every process,
sends every trigger, counts calls as the benchmark reports them, and renders its table.
"""

from __future__ import annotations

import json
import os

import pytest
import requests

from bench.harness import Stack, StackConfig, percentile
from bench.throughput import Plan, markdown, run_benchmark, summarize
from sfemu import serve_in_thread


def test_the_emulator_records_when_each_individual_first_arrived() -> None:
    with serve_in_thread() as sf:
        http = requests.Session()
        token = http.post(f"{sf.url}/services/oauth2/token", data={
            "grant_type": "client_credentials", "client_id": sf.emulator.consumer_key,
            "client_secret": sf.emulator.consumer_secret}).json()["access_token"]
        invoke = f"{sf.url}/services/data/v65.0/actions/custom/flow/On_Demand_Flow"
        for ids in (["R-1", "R-2"], ["R-1", "X-1"]):
            http.post(invoke, json={"inputs": [{"IndividualId": i} for i in ids]},
                      headers={"Authorization": f"Bearer {token}"})
        received = http.get(f"{sf.url}/_emulator/received", params={"prefix": "R-"}).json()["received"]
        assert set(received) == {"R-1", "R-2"} and received["R-1"] <= received["R-2"]
        state = http.get(f"{sf.url}/_emulator/state?individuals=0").json()
        assert "by_individual" not in state and state["invoked_inputs"] == 4
        http.post(f"{sf.url}/_emulator/forget")
        assert http.get(f"{sf.url}/_emulator/received").json()["received"] == {}
        assert sf.emulator.snapshot()["token_requests"] == 1  # counters and tokens survive forget


def test_percentile_is_nearest_rank() -> None:
    assert percentile(list(range(1, 101)), 50) == 50
    assert percentile(list(range(1, 101)), 99) == 99
    assert percentile([3.0], 99) == 3.0


@pytest.mark.integration
def test_a_micro_run_sends_every_trigger_and_stops_everything(tmp_path) -> None:
    config = StackConfig(database="flowgate_bench_smoke", broker_db=8, cache_db=9)
    lines: list[str] = []
    stacks: list[Stack] = []
    original_enter = Stack.__enter__

    def remember(self: Stack) -> Stack:
        stacks.append(self)
        return original_enter(self)

    Stack.__enter__ = remember  # type: ignore[method-assign]
    try:
        results = run_benchmark(Plan.micro(), config, log=lines.append)
    finally:
        Stack.__enter__ = original_enter  # type: ignore[method-assign]

    processes = [p.popen for p in stacks[0].processes.values()] + [w.popen for w in stacks[0].workers]
    assert all(popen.poll() is not None for popen in processes)  # every process stopped
    for flow in ("single", "batched"):
        for row in results[flow].values():
            assert row["succeeded"] == row["triggers"] and row["not_final_in_time"] == 0
    assert {row["inputs_per_call"] for row in results["single"].values()} == {1.0}
    assert results["batched"]["full"]["inputs_per_call"] > 1
    assert results["intake"]["1_client"]["errors"] == 0
    assert results["whole_run"]["token_requests"] == 1  # one token for the whole run
    seed = results["baselines"]["seed"]["full"]
    assert seed["token_requests"] == seed["succeeded"] == seed["api_calls"]
    assert results["memory"]["first"]["worker_rss_mb"] > 0
    table = markdown(results)
    assert "| **Flowgate**, one input per call |" in table
    assert set(summarize(results, "40")["met"]) == set(summarize(results, "40")["measured"])
    json.dumps(results, default=str)
    if os.environ.get("BENCH_SMOKE_PLOT"):
        from bench.throughput import plot

        plot(results, tmp_path / "plot.png")
        assert (tmp_path / "plot.png").stat().st_size > 10_000
