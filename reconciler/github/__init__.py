"""GitHub's side of the GitOps loop, as tested commands instead of workflow scripts.

The workflows in ``.github/workflows`` are thin: each step is a line or two calling
``reconciler ci ...`` (``reconciler.cli.commands.ci``), and the logic lives here, typed and
tested against GitHub's documented REST shapes (``tests/github_double.py``):

* ``rest``: the REST client (httpx). The token goes to ``GITHUB_API_URL`` only.
* ``comments``: the sticky plan comment, the drift and health issues, redaction.
* ``plans``: finding the reviewed plan of each merged pull request, and proving it.
* ``reports``: what an apply run says on each merged pull request.
"""
