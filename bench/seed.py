"""Seeds the benchmark's database (run by bench.harness in the benchmark's environment, never by hand).

One org at the emulator with its External Client App, two flows with the On-Demand inputs, and an API key for
every flow:
- On_Demand_Flow: one input per Actions call (micro-batching off);
- Order_Confirmation: micro-batching on (window and size from the arguments), the same inputs plus OrderNumber.
The org's concurrent-call cap is raised from the default 10 to --org-cap (20: still below Salesforce's 25).
Prints one JSON line for bench.harness.Seeded.
"""

from __future__ import annotations

import argparse
import io
import json
import os
import sys

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "portal.settings")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--emulator-url", required=True)
    parser.add_argument("--org-cap", type=int, default=20)
    parser.add_argument("--batch-window-ms", type=int, default=200)
    parser.add_argument("--batch-max-inputs", type=int, default=200)
    args = parser.parse_args(argv)

    import django

    django.setup()
    from django.core.management import call_command

    from flows.models import ExternalClientApp, Flow, FlowInput, Org
    from sfemu import DEFAULT_CONSUMER_KEY, DEFAULT_CONSUMER_SECRET

    org = Org.objects.create(name="Bench", slug="bench", my_domain_url=args.emulator_url, api_version="v65.0",
                             max_concurrent_calls=args.org_cap)
    ExternalClientApp.objects.create(org=org, name="Bench", consumer_key=DEFAULT_CONSUMER_KEY,
                                     consumer_secret=DEFAULT_CONSUMER_SECRET)
    inputs = [("EmailAddress", False), ("IndividualId", True), ("TelephoneNumber", False)]
    single = Flow.objects.create(org=org, api_name="On_Demand_Flow", label="On Demand Flow")
    batched = Flow.objects.create(org=org, api_name="Order_Confirmation", label="Order Confirmation",
                                  batch_enabled=True, batch_window_ms=args.batch_window_ms,
                                  batch_max_inputs=args.batch_max_inputs)
    for flow, names in ((single, inputs), (batched, [*inputs, ("OrderNumber", True)])):
        for order, (name, required) in enumerate(names):
            FlowInput.objects.create(flow=flow, name=name, required=required, order=order)
    out = io.StringIO()
    call_command("create_api_key", name="bench", stdout=out)
    api_key = out.getvalue().strip().splitlines()[-1]
    print(json.dumps({"api_key": api_key, "org": org.slug, "single_flow": single.api_name,
                      "single_flow_id": single.pk, "batched_flow": batched.api_name,
                      "batched_flow_id": batched.pk}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
