"""Flask and werkzeug glue the views share: the bodies every answer and error has, and the
OpenAPI document of an app."""
