"""Console pages for webhook deliveries, mounted under /console/deliveries/ (issue 4)."""

urlpatterns: list = []
