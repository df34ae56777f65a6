"""The JSON API, version 1, mounted at /api/v1/ (namespace "api")."""

from django.urls import path, re_path

from . import views

app_name = "api"
urlpatterns = [
    path("flows/<str:org_slug>/<str:flow_api_name>/triggers", views.trigger_create, name="trigger_create"),
    path("flows/<str:org_slug>/<str:flow_api_name>/triggers/batch", views.trigger_batch, name="trigger_batch"),
    path("triggers/<str:trigger_id>", views.trigger_detail, name="trigger"),
    path("openapi.json", views.openapi, name="openapi"),
    re_path(r"^(?P<rest>.*)$", views.not_found),  # JSON, not an HTML page, for any other path under /api/v1/
]
