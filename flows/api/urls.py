from django.urls import path  # noqa: F401  (the JSON API, issue 4)

app_name = "api"
urlpatterns: list = []
