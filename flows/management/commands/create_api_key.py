from django.core.exceptions import ValidationError
from django.core.management.base import BaseCommand, CommandError

from flows.api.services import api_key_create
from flows.models import Flow


class Command(BaseCommand):
    help = ("Creates an API key and prints it once; the key is the last line of the output. Without --flow the "
            "key may use every flow.")

    def add_arguments(self, parser):
        parser.add_argument("--name", required=True, help="Who or what uses the key; shown on its triggers.")
        parser.add_argument("--flow", action="append", default=[], metavar="ORG_SLUG/FLOW_API_NAME",
                            help="A flow the key may fire and read (repeat for several). Default: all flows.")

    def handle(self, *args, name, flow, **options):
        flows = []
        for spec in flow:
            org_slug, _, api_name = spec.partition("/")
            found = Flow.objects.filter(org__slug=org_slug, api_name=api_name).first() if api_name else None
            if found is None:
                raise CommandError(f"No flow {spec!r}: write ORG_SLUG/FLOW_API_NAME, e.g. demo/On_Demand_Flow.")
            flows.append(found)
        try:
            api_key, raw_key = api_key_create(name=name, flows=flows)
        except ValidationError as error:
            raise CommandError(" ".join(error.messages)) from None
        scope = "all flows" if api_key.all_flows else ", ".join(str(f) for f in flows)
        self.stdout.write(f"API key {api_key.name!r} ({api_key.prefix}…) created for {scope}.")
        self.stdout.write("Copy it now; it is stored hashed and cannot be shown again:")
        self.stdout.write(raw_key)
