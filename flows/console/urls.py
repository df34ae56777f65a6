from django.urls import path

from ..webhooks import console_urls as delivery_urls
from . import views

app_name = "console"
urlpatterns = [
    path("", views.trigger_list, name="triggers"),
    path("triggers/<int:pk>/", views.trigger_detail, name="trigger"),
    path("triggers/<int:pk>/live/", views.trigger_live, name="trigger_live"),
    path("triggers/<int:pk>/resend/", views.trigger_resend, name="trigger_resend"),
    path("triggers/<int:pk>/mark-delivered/", views.trigger_mark_delivered, name="trigger_mark_delivered"),
    path("triggers/resend/", views.triggers_resend_selected, name="triggers_resend"),
    path("triggers/resend-all/", views.triggers_resend_all, name="triggers_resend_all"),
    path("jobs/", views.job_list, name="jobs"),
    path("jobs/<int:pk>/", views.job_detail, name="job"),
    path("flows/<int:pk>/fire/", views.flow_fire, name="flow_fire"),
    path("dashboard/", views.dashboard, name="dashboard"),
    *delivery_urls.urlpatterns,
]
