"""Small user projects that tests/test_plugin.py copies into pytester's directory and runs.

They are not part of aiopool's own suite (some fail on purpose): nothing here is collected.
"""

collect_ignore_glob = ["*"]
