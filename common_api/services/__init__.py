"""The work behind each endpoint, free of Flask: every class here runs without a request."""
