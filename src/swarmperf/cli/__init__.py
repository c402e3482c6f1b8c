"""The command line: thin commands that parse, call `app` or a domain package, and render."""
