"""The command line: click commands and TOML suites."""
