"""The fleet side of the device (issue 7): the models it keeps, and the deploy state machine.

:mod:`.models` keeps bundles by hash with a crash-safe record of which is current; :mod:`.deploy` takes a
new bundle through fetch, verify and self-test, switch, a health watch, and commit or rollback, writing
each step down first so that a restart mid-deploy ends serving a verified model.
"""
