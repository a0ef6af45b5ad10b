"""pytest plugin (pytest11 entry point): fixtures for users' test suites; inert until used."""
