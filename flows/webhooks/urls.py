from django.urls import path  # noqa: F401  (incoming webhooks, issue 4)

app_name = "hooks"
urlpatterns: list = []
