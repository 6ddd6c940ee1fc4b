"""The pytest plugin (registered through the `pytest11` entry point).

Inactive for now: the integration lands with the test-runner issue.
"""
