from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand
from django.db import transaction

from flows.models import ExternalClientApp, Flow, FlowInput, Org
from flows.webhooks.services import shopify_webhook_save

DEMO_CONSUMER_KEY = "flowgate-demo-consumer-key"
DEMO_CONSUMER_SECRET = "flowgate-demo-consumer-secret"
Format = FlowInput.Format
# name, required, format, description
DEMO_INPUTS = [
    ("EmailAddress", False, Format.EMAIL, "The recipient's email address."),
    ("IndividualId", True, Format.NONE, "The ID of the Individual DMO the flow acts on."),
    ("TelephoneNumber", False, Format.E164, "The recipient's phone number, for SMS."),
]
DEMO_SHOPIFY_MAPPING = {
    "EmailAddress": "email | contact_email | customer.email",
    "IndividualId": "customer.id",
    # Only the phones Shopify keeps in E.164 (the order's SMS number, the customer's): an address's phone is
    # whatever the buyer typed ("555-555-SHIP" in Shopify's own sample), which TelephoneNumber's format refuses,
    # and the whole order confirmation with it.
    "TelephoneNumber": "phone | customer.phone",
}


class Command(BaseCommand):
    help = "Creates (or brings up to date) the demo: admin user, org 'demo', its External Client App and On_Demand_Flow."

    def add_arguments(self, parser):
        parser.add_argument("--salesforce-url", default=None,
                            help="The org's My Domain URL (default: the local emulator, SALESFORCE_EMULATOR_URL).")
        parser.add_argument("--consumer-key", default=DEMO_CONSUMER_KEY)
        parser.add_argument("--consumer-secret", default=DEMO_CONSUMER_SECRET)
        parser.add_argument("--admin-password", default=None,
                            help="Set the 'admin' user's password. Without it, a new 'admin' gets the password "
                                 "'admin' and an existing one keeps its own.")
        parser.add_argument("--shopify-secret", default=None,
                            help="Also create the Shopify webhook 'demo' (orders/create → On_Demand_Flow) signed "
                                 "with this secret, at /hooks/shopify/demo.")
        parser.add_argument("--shopify-shop", action="append", default=None, metavar="DOMAIN",
                            help="A shop allowed to deliver to the demo webhook (repeatable; default: any shop).")

    @transaction.atomic
    def handle(self, *args, salesforce_url, consumer_key, consumer_secret, admin_password, shopify_secret=None,
               shopify_shop=None, **options):
        url = (salesforce_url or settings.SALESFORCE_EMULATOR_URL).rstrip("/")
        org = Org.objects.filter(slug="demo").first() or Org(slug="demo")
        org.name = org.name or "Demo org"
        org.my_domain_url = url
        org.is_active = True
        org.full_clean()
        org.save()

        app = ExternalClientApp.objects.filter(org=org, is_active=True).first()
        if app is None:
            app = ExternalClientApp(org=org, name="Flowgate demo")
        elif app.consumer_key.reveal() != consumer_key or app.consumer_secret.reveal() != consumer_secret:
            from django.utils import timezone

            app.rotated_at = timezone.now()
        app.consumer_key = consumer_key
        app.consumer_secret = consumer_secret
        app.save()

        flow, _ = Flow.objects.get_or_create(
            org=org, api_name="On_Demand_Flow",
            defaults={"label": "On Demand Flow", "description": "Sends the order confirmation."},
        )
        for order, (name, required, input_format, description) in enumerate(DEMO_INPUTS):
            FlowInput.objects.update_or_create(
                flow=flow, name=name,
                defaults={"type": FlowInput.Type.TEXT, "required": required, "description": description,
                          "order": order, "is_collection": False, "format": input_format},
            )

        if shopify_secret:
            shopify_webhook_save(slug="demo", name="Demo Shopify store", secret=shopify_secret,
                                 shop_domains=shopify_shop or ["*"],
                                 topics={"orders/create": (flow, DEMO_SHOPIFY_MAPPING)})

        User = get_user_model()
        admin = User.objects.filter(username="admin").first()
        if admin is None:
            # The demo's one well-known password, never forced back on a user who has changed it since.
            admin = User(username="admin", email="admin@example.com", is_staff=True, is_superuser=True)
            admin_password = admin_password or "admin"
        if admin_password is not None:
            admin.set_password(admin_password)
            admin.save()
        password_note = "password set" if admin_password is not None else "its password unchanged"
        self.stdout.write(f"Demo ready: org 'demo' at {url}, flow On_Demand_Flow, admin user 'admin' "
                          f"({password_note}).")
        if shopify_secret:
            self.stdout.write("Shopify webhook 'demo': POST orders/create deliveries to /hooks/shopify/demo.")
