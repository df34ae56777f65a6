from django.core.exceptions import ImproperlyConfigured
from django.core.management.base import BaseCommand, CommandError

from flows.key_rotation import DEFAULT_BATCH_SIZE, rotate_encryption_key


class Command(BaseCommand):
    help = ("Re-encrypts every stored secret under the newest key of FLOWGATE_ENCRYPTION_KEYS (the first) and drops "
            "cached tokens, so older keys can be removed. Safe to run while the portal and workers run, and again. "
            "Exit 1, naming each row, when a secret cannot be read with any configured key.")

    def add_arguments(self, parser):
        parser.add_argument("--batch-size", type=int, default=DEFAULT_BATCH_SIZE,
                            help=f"Rows per transaction (default {DEFAULT_BATCH_SIZE}).")

    def handle(self, *args, batch_size, **options):
        if batch_size < 1:
            raise CommandError("--batch-size must be at least 1.")
        try:
            report = rotate_encryption_key(batch_size=batch_size)
        except ImproperlyConfigured as error:
            raise CommandError(str(error), returncode=1) from None
        for name, counts in report.counts.items():
            self.stdout.write(f"{name}: {counts['rotated']} re-encrypted, {counts['current']} already under the "
                              f"newest key, {counts['empty']} empty")
        if report.retried_rows:
            self.stdout.write(f"{report.retried_rows} row(s) changed while being rotated and were redone.")
        self.stdout.write(f"Cached tokens dropped for {report.cached_tokens_dropped} External Client App(s); each "
                          f"fetches a new token on its next call.")
        if report.problems:
            for problem in report.problems:
                self.stderr.write(str(problem))
            raise CommandError(
                f"{len(report.problems)} secret(s) were not re-encrypted (listed above). Keep every older key in "
                f"FLOWGATE_ENCRYPTION_KEYS until they are: put back the key they were saved with and run this "
                f"again, or enter those secrets again in the admin.", returncode=1)
        self.stdout.write(self.style.SUCCESS(
            "Every secret is under the newest key: the older keys may now be removed from FLOWGATE_ENCRYPTION_KEYS."))
