from django.core.management.base import BaseCommand, CommandError

from flows.retention import (
    DEFAULT_BATCH_SIZE,
    PurgeCounts,
    exchange_purge_older_than,
    exchanges_purgeable_count,
)


class Command(BaseCommand):
    help = ("Deletes the Exchanges (recorded requests and responses with Salesforce) older than DAYS, in short "
            "batches so the table is never locked for long. Triggers are kept. Prints the counts.")

    def add_arguments(self, parser):
        parser.add_argument("--older-than", type=int, required=True, metavar="DAYS",
                            help="Delete exchanges created more than DAYS days ago (at least 1).")
        parser.add_argument("--batch-size", type=int, default=DEFAULT_BATCH_SIZE, metavar="N",
                            help=f"Exchanges deleted per statement and transaction (default {DEFAULT_BATCH_SIZE}).")
        parser.add_argument("--dry-run", action="store_true", help="Only count what would be deleted.")

    def handle(self, *args, older_than: int, batch_size: int, dry_run: bool, verbosity: int = 1, **options):
        if older_than < 1:
            # The retention setting uses 0 for "keep forever"; on the command line 0 would read as "everything".
            raise CommandError("--older-than must be at least 1 day.")
        if batch_size < 1:
            raise CommandError("--batch-size must be at least 1.")
        if dry_run:
            counts = exchanges_purgeable_count(days=older_than)
            self.stdout.write(f"Dry run: {counts.exchanges} exchanges older than {older_than} days and "
                              f"{counts.links} batch links would be deleted; nothing was deleted.")
            return
        done = {"batches": 0, "links": 0}

        def progress(batch: PurgeCounts) -> None:
            done["batches"] += 1
            done["links"] += batch.links
            if verbosity >= 2:
                self.stdout.write(f"  batch {done['batches']}: {batch.exchanges} exchanges, {batch.links} links")

        total = exchange_purge_older_than(days=older_than, batch_size=batch_size, on_batch=progress)
        self.stdout.write(f"Deleted {total} exchanges older than {older_than} days and {done['links']} batch "
                          f"links in {done['batches']} batches.")
