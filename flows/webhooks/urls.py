"""Incoming webhooks, mounted at /hooks/ (namespace "hooks")."""

from django.urls import path

from . import views

app_name = "hooks"
urlpatterns = [
    path("shopify/<str:slug>", views.shopify, name="shopify"),
]
