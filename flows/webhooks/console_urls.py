"""Console pages for webhook deliveries, spread into the console's URLconf (namespace "console")."""

from django.urls import path

from . import console_views

urlpatterns = [
    path("deliveries/", console_views.delivery_list, name="deliveries"),
    path("deliveries/<int:pk>/", console_views.delivery_detail, name="delivery"),
]
