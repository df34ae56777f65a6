import json

from django.core.management.base import BaseCommand, CommandError

from flows.webhooks.models import ShopifyWebhook, WebhookDelivery
from flows.webhooks.selectors import deliveries_replayable, shopify_webhook_slugs
from flows.webhooks.services import deliveries_replay

Outcome = WebhookDelivery.Outcome


class Command(BaseCommand):
    help = ("Replays held and unmappable Shopify deliveries through the normal path (the mapping run again on the "
            "stored body; an event that already fired never fires again), oldest first, in batches. Prints one "
            'JSON object: {"replayed": N, "triggered": N, "still_unmappable": N, "skipped": N}.')

    def add_arguments(self, parser):
        parser.add_argument("--webhook", metavar="SLUG", help="Only this webhook's deliveries.")
        parser.add_argument("--outcome", choices=[Outcome.HELD, Outcome.UNMAPPABLE],
                            help="Only held or only unmappable deliveries (default: both).")
        parser.add_argument("--dry-run", action="store_true",
                            help="Say what a replay would do, delivery by delivery; nothing is written or sent.")

    def handle(self, *args, webhook: str | None, outcome: str | None, dry_run: bool, **options):
        webhook_id = None
        if webhook is not None:
            found = ShopifyWebhook.objects.filter(slug=webhook).first()
            if found is None:
                slugs = ", ".join(shopify_webhook_slugs()) or "none yet"
                raise CommandError(f"No Shopify webhook {webhook!r}. The webhooks: {slugs}.")
            webhook_id = found.pk
        deliveries = deliveries_replayable(webhook_id=webhook_id, outcomes=(outcome,) if outcome else ())
        counts = deliveries_replay(deliveries=deliveries, actor_label="replay_deliveries (command line)",
                                   dry_run=dry_run)
        self.stdout.write(json.dumps(counts.as_dict()))
