from django.http import HttpResponse


def _todo(request, **kwargs):
    return HttpResponse("coming soon", status=501)


trigger_list = trigger_detail = trigger_live = trigger_resend = triggers_resend_selected = _todo
triggers_resend_all = job_list = job_detail = flow_fire = dashboard = _todo
