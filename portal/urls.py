from django.contrib import admin
from django.urls import include, path
from django.views.generic import RedirectView

admin.site.site_header = "Flowgate"
admin.site.site_title = "Flowgate"
admin.site.index_title = "Orgs, flows, triggers and their exchanges with Salesforce"

urlpatterns = [
    path("", RedirectView.as_view(pattern_name="console:triggers", permanent=False)),
    path("admin/", admin.site.urls),
    path("console/", include("flows.console.urls")),
    path("api/v1/", include("flows.api.urls")),
    path("hooks/", include("flows.webhooks.urls")),
]
