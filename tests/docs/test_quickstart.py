"""The README's quickstart, as written: the demo's bundle, signed, served with --trust, and asked over HTTP.

The session's ``quickstart`` fixture runs both blocks in a scratch copy of ``examples/digits``: ``bash
tools/dev.sh demo`` (the real script, its set-up stubbed: tests/docs/shell.py), ``edgekit keygen``, ``edgekit
sign``, ``edgekit-runtime serve`` on a free port, and the ``curl`` with its whole body. Here the answers are
held to what the README shows and says.
"""

from __future__ import annotations

import json
import re

import numpy as np

from tests.conftest import DIGITS
from tests.docs.blocks import section
from tests.docs.conftest import QUICKSTART


def shown_answer() -> dict:
    """The ``json`` block the README shows as the server's answer."""
    (shown,) = re.findall(r"```json\n(.*?)```", section("README.md", QUICKSTART), flags=re.DOTALL)
    return json.loads(shown)


def test_the_demo_writes_the_bundle_the_quickstart_signs(quickstart):
    demo, *_ = quickstart.results
    assert demo.command.startswith("bash tools/dev.sh demo")
    assert "bundle: out/digits-cnn/cnn-1.0.0.edgebundle" in demo.out.splitlines()
    assert quickstart.bundle.is_file()
    assert quickstart.bundle.parent.joinpath("report.json").is_file()


def test_the_signed_bundle_is_served_with_trust_and_says_what_the_readme_says(quickstart):
    (served,) = [result for result in quickstart.results if result.server is not None]
    assert "--trust fleet.pub" in served.command
    claimed = re.search(r"`serve` prints `([^`]+)`", section("README.md", QUICKSTART))
    assert claimed is not None, "the quickstart no longer says what serve prints"
    port = served.server.url.rsplit(":", 1)[1]
    assert served.out == " ".join(claimed.group(1).split()).replace(":8080", f":{port}")


def test_the_curl_request_is_a_real_digit_and_the_answer_is_the_one_shown(quickstart):
    import edgekit_runtime
    from edgekit_runtime import LoadOptions
    from edgekit_runtime.signing import load_trusted_keys

    asked = quickstart.results[-1]
    assert asked.command.startswith("curl ")
    assert asked.response is not None
    request = json.loads(asked.response.request.content)
    (tensor,) = request["inputs"]
    test = np.load(DIGITS / "cnn_test.npz")
    assert np.array_equal(np.asarray(tensor["data"], np.float32), test["input"][0].ravel())  # "the first … a 2"
    assert int(test["label"][0]) == 2

    answer, shown = asked.response.json(), shown_answer()
    (output,) = answer["outputs"]
    (shown_output,) = shown["outputs"]
    assert {**answer, "outputs": None} == {**shown, "outputs": None}
    assert {**output, "data": None} == {**shown_output, "data": None}
    assert int(np.argmax(output["data"])) == int(np.argmax(shown_output["data"])) == 2

    model = edgekit_runtime.load(
        quickstart.bundle, LoadOptions(trusted_keys=load_trusted_keys([quickstart.public_key]))
    )
    expected = model.predict({"input": test["input"][:1]})["logits"]
    np.testing.assert_allclose(output["data"], expected.ravel(), rtol=1e-5, atol=1e-5)
