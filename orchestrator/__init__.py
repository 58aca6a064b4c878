"""orchestrator: the public face (state API, runtime, config, CLI, dev stack)."""
