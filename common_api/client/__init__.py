"""The operator's side: ``common-api`` subcommands that ask one or many components.

``http`` is the one HTTP layer (standard library only), ``options`` reads command-line
values, ``status`` judges a component's health, ``commands`` runs each subcommand and
``render`` prints tables, JSON and progress. ``common_api.cli`` wires them to argparse.
"""
