"""No views: the tests only use the project's models, migrations and
simplejwt's token classes."""

urlpatterns = []
