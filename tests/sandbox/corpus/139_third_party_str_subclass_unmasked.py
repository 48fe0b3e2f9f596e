# ruff: noqa - a hostile script, kept as written
# threat: 5 read the app's secrets or change the app
# technique: a host namespace holds a third-party secret type that derives from str and masks its str()/repr() (tuning.vault_token, class hvac.secrets.MaskedToken); reading the attribute hands its raw text over as plain data
# why: HostBridge._plain copies any instance of a str (int, float) subclass by value before the origin check; render.py shows the same value as <MaskedToken object>
# red team: 6d8a476, wide allowlist
token = app.state.tuning.vault_token
shown = str(app.state.tuning)
result = "ESCAPED " + token if "vlt-canary" in token else token
