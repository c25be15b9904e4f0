"""The signed edge bundle: the one artifact that travels from the host to a device.

The format and its verifier live in the runtime (:mod:`edgekit_runtime.bundle`), which the device runs;
this package writes bundles (:mod:`.pack`), signs them (:mod:`.signing`) and computes what goes in them:
golden self-test data (:mod:`.golden`) and drift reference statistics (:mod:`.reference`).
"""
