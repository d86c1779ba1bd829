"""The alerts' epoch (apps.core.epochs): it moves after every committed change of an alert row.

What moves it: every save and delete of an Alert (signals, apps.py); alert_fire's
own statement, which the ORM does not see (services); and the delete of a silence,
whose alerts' silenced_by the database clears without a save. Whoever keeps what
it built from the table (the API's alerts list) reuses it until the epoch moves.
"""

from apps.core.epochs import Epoch

EPOCH = Epoch("alerts:epoch")
