from django.contrib import admin
from django.urls import include, path
from django.views.generic import RedirectView

from portal.login import ThrottledAdminAuthenticationForm

admin.site.site_header = "Flowgate"
admin.site.site_title = "Flowgate"
admin.site.index_title = "Orgs, flows, triggers and their exchanges with Salesforce"
admin.site.login_form = ThrottledAdminAuthenticationForm
# The nav sidebar repeats the index and takes 300 px: without it every list fits 1,280 px with its filters.
admin.site.enable_nav_sidebar = False

# Refusals get a page in the portal's look with a way back (portal/errors.py), not a bare "403 Forbidden".
handler403 = "portal.errors.permission_denied"

urlpatterns = [
    path("", RedirectView.as_view(pattern_name="console:triggers", permanent=False)),
    path("admin/", admin.site.urls),
    path("console/", include("flows.console.urls")),
    path("api/v1/", include("flows.api.urls")),
    path("hooks/", include("flows.webhooks.urls")),
]
