"""The questions the command line and the MCP server both answer, each as one function."""
