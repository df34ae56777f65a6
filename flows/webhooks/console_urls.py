"""Console pages for webhook deliveries, spread into the console's URLconf (namespace "console")."""

from django.urls import path

from . import console_views

urlpatterns = [
    path("deliveries/", console_views.delivery_list, name="deliveries"),
    path("deliveries/<int:pk>/", console_views.delivery_detail, name="delivery"),
    path("deliveries/<int:pk>/replay/", console_views.delivery_replay_one, name="delivery_replay"),
    path("deliveries/replay/", console_views.deliveries_replay_selected, name="deliveries_replay"),
    path("deliveries/replay-held/", console_views.deliveries_replay_held, name="deliveries_replay_held"),
]
