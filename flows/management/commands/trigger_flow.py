import json
import time

from django.core.management.base import BaseCommand, CommandError
from django.utils import timezone

from flows import services
from flows.inputs import InputValidationError, parse_text_values
from flows.models import Flow, Trigger
from flows.selectors import trigger_as_dict

POLL_SECONDS = 0.2


class Command(BaseCommand):
    help = ("Fires a flow: ORG_SLUG FLOW_API_NAME NAME=VALUE... Prints the trigger as JSON. Exit 0 when it "
            "succeeded, 1 when it failed or is not final yet, 2 when the inputs are invalid.")

    def add_arguments(self, parser):
        parser.add_argument("org_slug")
        parser.add_argument("flow_api_name")
        parser.add_argument("values", nargs="*", metavar="NAME=VALUE")
        parser.add_argument("--sync", action="store_true",
                            help="Dispatch in this process (same service and retry policy) instead of the worker.")
        parser.add_argument("--wait", type=float, default=0, metavar="SECONDS",
                            help="Without --sync: wait up to SECONDS for a final status.")
        parser.add_argument("--idempotency-key", default=None)

    def handle(self, *args, org_slug, flow_api_name, values, sync, wait, idempotency_key, **options):
        flow = Flow.objects.select_related("org").filter(org__slug=org_slug, api_name=flow_api_name).first()
        if flow is None:
            raise CommandError(f"No flow {flow_api_name!r} in org {org_slug!r}: see the flows in the admin.",
                               returncode=2)
        raw: dict[str, str] = {}
        problems: dict[str, list[str]] = {}
        for item in values:
            name, sep, value = item.partition("=")
            if not sep or not name:
                problems.setdefault(item, []).append("Write each input as NAME=VALUE.")
            else:
                raw[name] = value
        try:
            try:
                inputs = parse_text_values(flow.inputs.all(), raw, reserved=flow.trigger_id_input)
            except InputValidationError as invalid:
                problems = {**invalid.errors, **problems}
            if problems:
                raise InputValidationError(problems)
            trigger = services.trigger_create(flow=flow, inputs=inputs, source=Trigger.Source.CLI,
                                              actor_label="command line", idempotency_key=idempotency_key,
                                              enqueue=not sync)
        except (InputValidationError, services.IdempotencyConflict) as error:
            errors = error.errors if isinstance(error, InputValidationError) else {
                "idempotency_key": [str(error)]}
            self.stdout.write(json.dumps({"errors": errors}))
            for name, messages in errors.items():
                self.stderr.write(f"{name}: {' '.join(messages)}")
            raise SystemExit(2)

        if sync:
            trigger = self._dispatch_here(trigger)
        elif wait > 0:
            trigger = self._wait(trigger, wait)
        self.stdout.write(json.dumps(trigger_as_dict(trigger)))
        raise SystemExit(0 if trigger.status == Trigger.Status.SUCCEEDED else 1)

    def _dispatch_here(self, trigger: Trigger) -> Trigger:
        while True:
            trigger = services.trigger_dispatch(trigger_id=trigger.pk)
            if trigger.is_final:
                return trigger
            if trigger.status == Trigger.Status.SENDING:  # a worker took it first: follow it there
                return self._wait(trigger, None)
            pause = (trigger.next_attempt_at - timezone.now()).total_seconds() if trigger.next_attempt_at else 0
            self.stderr.write(f"{trigger.error_code}: retrying in {max(pause, 0):.0f} s (attempt {trigger.attempts})")
            time.sleep(max(pause, 0) + 0.05)

    def _wait(self, trigger: Trigger, seconds: float | None) -> Trigger:
        deadline = None if seconds is None else time.monotonic() + seconds
        while not trigger.is_final and (deadline is None or time.monotonic() < deadline):
            time.sleep(POLL_SECONDS)
            trigger.refresh_from_db()
        return trigger
